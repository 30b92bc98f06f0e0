"""Sequential (and permuted) MNIST, read from the standard IDX files in a local folder."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch
from pydantic import Field
from torch import Tensor

from rnnlab import DataError
from rnnlab_tasks._images import ImageParams, ImageSequenceDataset

FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
"""The image and label file of each stored part (each may also end in ``.gz``)."""
ALL_FILES: tuple[str, ...] = (*FILES["train"], *FILES["test"])
IMAGES_MAGIC = 0x0803  # unsigned bytes, 3 dimensions
LABELS_MAGIC = 0x0801  # unsigned bytes, 1 dimension
SIDE = 28


def _default_root() -> str:
    return os.environ.get("RNNLAB_MNIST_DIR", "~/.rnnlab/mnist")


def find_file(folder: Path, name: str) -> Path | None:
    """The path of ``name`` or ``name.gz`` in ``folder`` (plain first), or None."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Read an IDX file of unsigned bytes (optionally gzipped) into an array.

    Args:
        path: The file.
        magic: The expected magic number (``0x0803`` for images, ``0x0801`` for labels).

    Raises:
        DataError: The file cannot be read, has another magic number, or its size does not match
            its header. The message names the file.
    """
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"cannot read MNIST file {path}: {exc}") from exc
    if len(raw) < 4:
        raise DataError(f"malformed IDX file {path}: only {len(raw)} bytes")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise DataError(
            f"malformed IDX file {path}: magic number {found:#010x}, expected {magic:#010x}"
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"malformed IDX file {path}: truncated header")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise DataError(
            f"malformed IDX file {path}: header says {shape} = {expected} bytes of data, "
            f"found {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


class SequentialMNIST(ImageSequenceDataset):
    """Sequential MNIST (784 steps of one pixel) and permuted MNIST, from local IDX files.

    Images are 28x28, pixel values divided by 255. In ``"pixel"`` mode a sequence has 784 steps of
    one pixel (row-major order); in ``"row"`` mode 28 steps of one 28-pixel row. With ``permute``
    the time steps are reordered by a fixed random permutation drawn from ``permutation_seed`` (the
    same for every run seed): permuted MNIST. The class is predicted at the last step.
    Target: that last step, the whole loss, so the target curve ``grad/target/*`` is the total
    curve ``grad/*``.

    The four standard files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each optionally gzipped) are read from
    ``root``; MNIST is never downloaded. The last ``val_size`` training images form the val set,
    the rest train; test is the t10k set. Train batches are reshuffled every epoch by a generator
    seeded from the run seed; val and test iterate once, in order.
    """

    class Params(ImageParams):
        """Parameters of sequential MNIST."""

        root: str = Field(
            default_factory=_default_root,
            min_length=1,
            description=(
                "Folder with the four MNIST IDX files (default: $RNNLAB_MNIST_DIR, else "
                "~/.rnnlab/mnist)."
            ),
        )
        val_size: int = Field(
            default=5000, ge=1, description="Images at the end of the training file used for val."
        )

    params: Params
    name = "mnist"
    side = SIDE
    scale = 1.0 / 255.0

    def __init__(self, params: SequentialMNIST.Params | None = None, seed: int = 0) -> None:
        """Create the task; the files are checked now and read on first use.

        Args:
            params: The task's parameters; defaults to ``SequentialMNIST.Params()``.
            seed: The run seed; it orders the train batches only.

        Raises:
            DataError: Some of the four files are missing from ``root``.
        """
        super().__init__(params, seed)
        p = self.params
        self.root = Path(p.root).expanduser()
        self.val_size = p.val_size
        found = {name: find_file(self.root, name) for name in ALL_FILES}
        missing = [name for name, path in found.items() if path is None]
        if missing:
            raise DataError(
                f"MNIST files missing in {self.root}: {', '.join(missing)}. Download the four "
                f"files ({', '.join(f'{n}.gz' for n in ALL_FILES)}) from the MNIST site "
                f"(http://yann.lecun.com/exdb/mnist/ or a mirror) and put them in {self.root} "
                "(gzipped or not), or set dataset.root (or the RNNLAB_MNIST_DIR environment "
                "variable) to the folder that holds them."
            )
        self.paths: dict[str, Path] = {n: path for n, path in found.items() if path is not None}
        self._parts: dict[str, tuple[Tensor, Tensor]] = {}

    def _read_part(self, part: str) -> tuple[Tensor, Tensor]:
        if part not in self._parts:
            image_name, label_name = FILES[part]
            images = read_idx(self.paths[image_name], IMAGES_MAGIC)
            labels = read_idx(self.paths[label_name], LABELS_MAGIC)
            if images.shape[1:] != (SIDE, SIDE):
                raise DataError(
                    f"malformed IDX file {self.paths[image_name]}: images are "
                    f"{images.shape[1]}x{images.shape[2]}, expected {SIDE}x{SIDE}"
                )
            if labels.shape[0] != images.shape[0]:
                raise DataError(
                    f"MNIST files disagree: {self.paths[image_name]} has {images.shape[0]} "
                    f"images, {self.paths[label_name]} has {labels.shape[0]} labels"
                )
            self._parts[part] = (
                torch.from_numpy(images.copy()),
                torch.from_numpy(labels.astype(np.int64)),
            )
        return self._parts[part]

    def load_split(self, split: str) -> tuple[Tensor, Tensor]:
        """The images and labels of ``split``; val is the end of the training file."""
        if split == "test":
            return self._read_part("test")
        images, labels = self._read_part("train")
        n_train = images.shape[0] - self.val_size
        if n_train < 1:
            raise DataError(
                f"val_size={self.val_size} leaves no training images: "
                f"{self.paths[FILES['train'][0]]} holds only {images.shape[0]}"
            )
        if split == "val":
            return images[n_train:], labels[n_train:]
        return images[:n_train], labels[:n_train]
