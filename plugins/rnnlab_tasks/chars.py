"""Character-level language modelling on CPython's own help texts or on the user's text file."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import torch
from pydantic import Field, model_validator
from torch import Tensor

import rnnlab
from rnnlab import DataError
from rnnlab_tasks._stream import StreamDataset, time_split

UNKNOWN = "<unk>"
"""The last vocabulary entry: every character of val or test that train never shows."""


@functools.cache
def python_help_corpus() -> str:
    """The help texts that ship inside CPython (``pydoc_data.topics``), joined in key order.

    Raises:
        DataError: This Python lacks ``pydoc_data`` (some distributions strip it).
    """
    try:
        from pydoc_data.topics import topics
    except ImportError as exc:
        raise DataError(
            f"this Python has no pydoc_data.topics ({exc}), the default corpus of 'chars'; "
            "set dataset.path to a UTF-8 text file"
        ) from exc
    return "\n".join(topics[key] for key in sorted(topics))


def read_text(path: Path) -> str:
    """A UTF-8 text file's contents.

    Raises:
        DataError: The file is missing, unreadable or not UTF-8; the message names the file
            (and the offending byte) and the fix.
    """
    if not path.is_file():
        raise DataError(
            f"text file not found: {path} (dataset.path; a relative path is read from "
            f"{Path.cwd()}); check the path, or remove dataset.path to use the built-in corpus"
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read text file {path}: {exc}") from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"text file {path} is not UTF-8: byte {data[exc.start]:#04x} at offset {exc.start}; "
            "convert it (e.g. iconv -t UTF-8) and try again"
        ) from exc


def encode(text: str, vocab: str) -> Tensor:
    """Indices of ``text``'s characters in the sorted string ``vocab``; others get ``len(vocab)``.

    Example:
        >>> encode("cab?", "abc").tolist()
        [2, 0, 1, 3]
    """
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    known = np.frombuffer(vocab.encode("utf-32-le"), dtype=np.uint32)
    if known.size == 0:
        return torch.zeros(codes.size, dtype=torch.long)
    idx = np.minimum(np.searchsorted(known, codes), known.size - 1)
    idx = np.where(known[idx] == codes, idx, known.size)
    return torch.from_numpy(idx.astype(np.int64))


def bits_per_char(loss: float) -> float:
    """Bits per character from a mean cross-entropy in nats: ``loss / ln 2``."""
    return loss / math.log(2)


class CharLanguageModel(StreamDataset):
    """Character-level language modelling: predict the next character at every step.

    The corpus is split into three contiguous blocks (train, then val, then test, by the
    fractions given; never shuffled character by character). The vocabulary is every character of
    the train block, sorted, plus ``<unk>`` for characters that appear only in val or test.
    Inputs are one-hot (``input_size`` = ``output_size`` = vocabulary size); at every step t the
    target is character t + 1, so a window holds ``seq_len + 1`` characters. Train windows start
    at uniformly random positions (seeded by the run seed); val and test are cut into consecutive,
    non-overlapping windows, so every character is predicted once.

    The loss is the cross-entropy averaged over every step (nats). Bits per character, the metric
    of Pascanu et al. (2013), Table 1, is ``val/loss / ln 2``. Accuracy is the fraction of next
    characters predicted correctly (arg-max). The baseline loss is the val cross-entropy of the
    train block's character frequencies (a unigram model, add-one smoothed).

    Target (:meth:`target_steps`): the last step of each window, the one prediction that can use
    the whole window; the target curve ``grad/target/*`` measures how far back its gradient
    reaches, which the total curve cannot show (every step's own loss feeds it).

    Default corpus: the help texts that ship inside CPython (``pydoc_data.topics``, about 465,000
    characters, topics in sorted order), so it needs no download; it changes a little between
    Python versions. ``path`` reads any UTF-8 text file instead.
    """

    class Params(rnnlab.Params):
        """Parameters of character-level language modelling."""

        seq_len: int = Field(default=100, ge=1, description="Characters per input sequence T.")
        path: str | None = Field(
            default=None,
            description="A UTF-8 text file (default: CPython's pydoc_data.topics help texts).",
        )
        val_fraction: float = Field(
            default=0.05, gt=0, lt=1, description="Fraction of the text, after train, for val."
        )
        test_fraction: float = Field(
            default=0.05, gt=0, lt=1, description="Fraction of the text, at the end, for test."
        )

        @model_validator(mode="after")
        def _leave_training_data(self) -> CharLanguageModel.Params:
            if self.val_fraction + self.test_fraction >= 0.9:
                raise ValueError("val_fraction + test_fraction must be below 0.9")
            return self

    params: Params
    kind = rnnlab.TaskKind.CLASSIFY_EVERY

    def __init__(self, params: CharLanguageModel.Params | None = None, seed: int = 0) -> None:
        """Create the task: read the corpus, split it, build the vocabulary and encode it.

        Args:
            params: The task's parameters; defaults to ``CharLanguageModel.Params()``.
            seed: The run seed; it orders the train windows only.

        Raises:
            DataError: The text file is missing or not UTF-8, or a split is shorter than one
                window.
        """
        super().__init__(params, seed)
        p = self.params
        if p.path is None:
            text, self.source = python_help_corpus(), "pydoc_data.topics"
        else:
            path = Path(p.path).expanduser()
            text, self.source = read_text(path), str(path)
        bounds = time_split(len(text), p.val_fraction, p.test_fraction)
        a, b = bounds["train"]
        self.vocab = "".join(sorted(set(text[a:b])))
        codes = encode(text, self.vocab)
        self.seq_len = p.seq_len
        self.window = p.seq_len + 1
        self.eval_stride = p.seq_len
        self.input_size = self.output_size = len(self.vocab) + 1  # + <unk>
        fix = "use a longer text, or lower seq_len or the val/test fractions"
        source = f"text {self.source}"
        self.set_streams({s: codes[lo:hi] for s, (lo, hi) in bounds.items()}, source, fix)
        counts = torch.bincount(self.streams["train"], minlength=self.output_size) + 1.0
        log_p = (counts / counts.sum()).log()
        val_targets = self.windows("val", self.eval_stride)[:, 1:]
        self.baseline_loss = float(-log_p[val_targets].mean())

    def decode(self, indices: Tensor) -> str:
        """The characters of ``indices`` (``<unk>`` for the unknown index)."""
        return "".join(self.vocab[i] if i < len(self.vocab) else UNKNOWN for i in indices.tolist())

    def target_steps(self) -> slice:
        """The window's last step (the default, declared here because it is this task's choice)."""
        return slice(-1, None)

    def make_batch(self, windows: Tensor) -> tuple[Tensor, Tensor]:
        """Windows ``[B, T + 1]`` -> one-hot ``x`` ``[T, B, V]`` and next characters ``[T, B]``."""
        symbols = windows.t()
        x = torch.nn.functional.one_hot(symbols[:-1], self.input_size).float()
        return x, symbols[1:].contiguous()

    def derived_metrics(self, scores: dict[str, float]) -> dict[str, float]:
        """``<split>/bpc`` = ``<split>/loss`` / ln 2: bits per character."""
        return {
            f"{key.removesuffix('/loss')}/bpc": bits_per_char(value)
            for key, value in scores.items()
            if key.endswith("/loss")
        }

    def label(self) -> str:
        """``"chars T=<seq_len>"``, or ``"chars <file name> T=<seq_len>"`` for a user's text."""
        p = self.params
        name = "" if p.path is None else f" {Path(p.path).name}"
        return f"chars{name} T={self.seq_len}"
