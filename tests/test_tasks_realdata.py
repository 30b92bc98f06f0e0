"""Tests of the real-data tasks `forecast` and `chars`: series, splits in time order, train-only
normalisation and vocabulary, seeding, CSV and text-file errors, metrics, docs and experiments."""

from __future__ import annotations

import importlib.util
import itertools
import math
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from pydantic import ValidationError
from rnnlab_tasks import register_datasets
from rnnlab_tasks._stream import time_split
from rnnlab_tasks.chars import CharLanguageModel, bits_per_char, encode, python_help_corpus
from rnnlab_tasks.forecast import TimeSeriesForecast, mackey_glass, read_csv_column

from rnnlab.base import Dataset
from rnnlab.cli import cli
from rnnlab.errors import DataError
from rnnlab.plugins import make_plugin_manager

ROOT = Path(__file__).resolve().parents[1]
Forecast, Chars = TimeSeriesForecast, CharLanguageModel


def take(ds: Dataset, split: str, batch_size: int, n: int = 1) -> list[tuple[torch.Tensor, ...]]:
    return list(itertools.islice(ds.batches(split, batch_size), n))


def write_csv(tmp_path: Path, text: str, name: str = "series.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def ramp_csv(tmp_path: Path, n: int = 200) -> Path:
    """A CSV whose value is its position, so every window says where in time it came from."""
    rows = "\n".join(f"{i},{i * 0.5}" for i in range(n))
    return write_csv(tmp_path, f"t,load\n{rows}\n")


def test_hook_registers_forecast_and_chars() -> None:
    found: dict[str, type | str] = {}
    register_datasets(lambda name, cls: found.__setitem__(name, cls))
    assert {"forecast", "chars"} <= set(found)
    registry = make_plugin_manager(load=["rnnlab_tasks"]).registry()
    assert registry.get("dataset", "forecast") is Forecast
    assert registry.get("dataset", "chars") is Chars


def test_time_split_is_contiguous_and_in_order() -> None:
    bounds = time_split(1000, 0.15, 0.1)
    assert bounds == {"train": (0, 750), "val": (750, 900), "test": (900, 1000)}
    assert time_split(10, 0.01, 0.01) == {"train": (0, 8), "val": (8, 9), "test": (9, 10)}


# --- forecast: the series ---------------------------------------------------------------------


def test_mackey_glass_satisfies_the_delay_equation() -> None:
    dt, tau = 0.1, 17.0
    x = mackey_glass(600, tau, dt, dt, 3)  # every integration step
    d = round(tau / dt)
    i = torch.arange(d + 1, x.shape[0] - 1)
    slope = (x[i + 1] - x[i - 1]) / (2 * dt)
    lag = x[i - d]
    rhs = 0.2 * lag / (1 + lag**10) - 0.1 * x[i]
    assert float((slope - rhs).abs().max()) < 1e-3


def test_mackey_glass_is_seeded_chaotic_and_fast() -> None:
    start = time.perf_counter()
    a = mackey_glass(4000, 17.0, 0.1, 1.0, 12345)  # a seed no other test uses: not cached
    assert time.perf_counter() - start < 1.0
    assert torch.equal(a, mackey_glass(4000, 17.0, 0.1, 1.0, 12345))
    assert not torch.allclose(a, mackey_glass(4000, 17.0, 0.1, 1.0, 1))
    assert 0.2 < float(a.min()) < 0.6 and 1.1 < float(a.max()) < 1.5  # the familiar attractor
    assert float(a.std()) > 0.15


def test_sines_are_seeded_and_noisy() -> None:
    a = Forecast(Forecast.Params(series="sines", length=500), seed=0)
    b = Forecast(Forecast.Params(series="sines", length=500), seed=7)  # run seed: same series
    c = Forecast(Forecast.Params(series="sines", length=500, series_seed=1), seed=0)
    assert torch.equal(a.streams["val"], b.streams["val"])
    assert not torch.equal(a.streams["val"], c.streams["val"])
    assert a.label() == "forecast sines T=50"


# --- forecast: windows, splits, normalisation ------------------------------------------------


def test_windows_follow_the_series_in_time_order(tmp_path: Path) -> None:
    params = Forecast.Params(series="csv", path=str(ramp_csv(tmp_path)), column="load")
    ds = Forecast(params.model_copy(update={"seq_len": 8, "horizon": 3}), seed=0)
    assert (ds.input_size, ds.output_size, ds.seq_len) == (1, 3, 8)
    assert ds.label() == "forecast series:load T=8 k=3"

    def position(z: torch.Tensor) -> torch.Tensor:  # back to the row number
        return torch.round((z.double() * ds.std + ds.mean) / 0.5).long()

    bounds = time_split(200, 0.15, 0.15)
    for split in ("val", "test"):
        lo, hi = bounds[split]
        xs, ys = zip(*ds.batches(split, 16), strict=True)
        x, y = torch.cat(xs, dim=1), torch.cat(ys)
        starts = torch.arange(lo, hi - 11 + 1)  # every window inside the block, stride 1
        assert x.shape == (8, starts.numel(), 1) and y.shape == (starts.numel(), 3)
        assert torch.equal(position(x[..., 0]), starts + torch.arange(8)[:, None])
        assert torch.equal(position(y), starts[:, None] + 8 + torch.arange(3))
    for x, y in take(ds, "train", 32, 20):  # train never reaches val
        assert int(position(y).max()) < bounds["train"][1]
        assert torch.equal(position(y)[:, 0], position(x[-1, :, 0]) + 1)


def test_normalisation_is_fitted_on_train_only(tmp_path: Path) -> None:
    values = [math.sin(i / 3) for i in range(70)] + [100.0 + i for i in range(30)]
    path = write_csv(tmp_path, "y\n" + "\n".join(map(str, values)) + "\n")
    ds = Forecast(Forecast.Params(series="csv", path=str(path), seq_len=5), seed=0)
    train = torch.tensor(values[:70], dtype=torch.float64)
    assert ds.mean == pytest.approx(float(train.mean()))
    assert ds.std == pytest.approx(float(train.std()))
    assert abs(float(ds.streams["train"].mean())) < 1e-5
    assert float(ds.streams["train"].std()) == pytest.approx(1.0, abs=1e-5)
    assert float(ds.streams["test"].min()) > 50  # the jump later in time is not hidden by scaling


def test_forecast_is_deterministic_under_a_seed() -> None:
    params = Forecast.Params(length=800, seq_len=20)
    a, b, c = (take(Forecast(params, seed=s), "train", 16, 3) for s in (4, 4, 5))
    assert all(
        torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a, b, strict=True)
    )
    assert not torch.equal(a[0][0], c[0][0])


def test_forecast_accuracy_nrmse_and_baseline() -> None:
    ds = Forecast(Forecast.Params(length=800, seq_len=20, horizon=2, tolerance=0.1), seed=0)
    y = torch.zeros(4, 2)
    near = torch.tensor([[0.05, -0.05], [0.05, 0.2], [0.0, 0.0], [-0.3, 0.0]])
    assert float(ds.accuracy(near, y)) == 0.5  # a window counts only if every step is close
    assert ds.derived_metrics({"val/loss": 0.04, "val/accuracy": 0.5}) == {
        "val/nrmse": pytest.approx(0.2)
    }
    xs, ys = zip(*ds.batches("val", 64), strict=True)
    persistence = torch.cat([(x[-1] - y).square() for x, y in zip(xs, ys, strict=True)])
    assert ds.baseline_loss == pytest.approx(float(persistence.mean()))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"series": "csv"},
        {"path": "x.csv"},
        {"column": "load"},
        {"tau": 17.05},
        {"sample_every": 0.25},
        {"val_fraction": 0.5, "test_fraction": 0.4},
        {"horizon": 0},
        {"delimiter": ";;"},
    ],
)
def test_forecast_params_reject_bad_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Forecast.Params.model_validate(kwargs)


# --- forecast: the user's CSV -----------------------------------------------------------------


def test_csv_single_column_needs_no_name_and_delimiter_works(tmp_path: Path) -> None:
    one = write_csv(tmp_path, "load\n1\n2.5\n\n3e1\n", "one.csv")
    assert read_csv_column(one, None, ",").tolist() == [1.0, 2.5, 30.0]
    semi = write_csv(tmp_path, "a;b\n1;2\n3;4\n", "semi.csv")
    assert read_csv_column(semi, "b", ";").tolist() == [2.0, 4.0]


@pytest.mark.parametrize(
    ("text", "column", "expected"),
    [
        ("a,load\n1,2\n3,x7\n", "load", ["data row 2 (line 3)", "column 'load'", "'x7'"]),
        ("a,load\n1,2\n3,\n", "load", ["data row 2 (line 3)", "is empty"]),
        ("a,load\n1,nan\n", "load", ["data row 1 (line 2)", "'nan' is not a finite number"]),
        ("a,load\n1,2\n", "laod", ["column 'laod'", "'a', 'load'", "Did you mean 'load'?"]),
        ("a,load\n1,2\n", None, ["has 2 columns", "set dataset.column"]),
        ("", "load", ["is empty"]),
    ],
)
def test_csv_errors_name_file_row_column_and_value(
    tmp_path: Path, text: str, column: str | None, expected: list[str]
) -> None:
    path = write_csv(tmp_path, text)
    with pytest.raises(DataError) as info:
        read_csv_column(path, column, ",")
    message = str(info.value)
    assert str(path) in message and all(part in message for part in expected), message


def test_missing_csv_file_is_a_clear_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(DataError, match="CSV file not found: .*nope.csv.*dataset.path"):
        Forecast(Forecast.Params(series="csv", path=str(missing)))


def test_csv_too_short_for_a_window_says_how_to_fix(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "v\n" + "\n".join(str(i) for i in range(40)) + "\n")
    with pytest.raises(DataError, match="the val split has 6 items.*lower seq_len"):
        Forecast(Forecast.Params(series="csv", path=str(path), seq_len=10))


def test_a_constant_column_is_refused(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "v\n" + "3\n" * 300)
    with pytest.raises(DataError, match="constant over its train split"):
        Forecast(Forecast.Params(series="csv", path=str(path), seq_len=5))


def test_rnnlab_run_with_a_bad_csv_exits_2_before_recording(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    write_csv(tmp_path, "when,load\n" + "\n".join(f"{i},{i}" for i in range(60)) + "\n9,ten\n")
    (tmp_path / "run.yaml").write_text(
        "dataset: {name: forecast, series: csv, path: series.csv, column: load, seq_len: 5}\n"
        "cell: {name: rnn, hidden_size: 4}\ntrain: {steps: 2}\n"
    )
    result = CliRunner().invoke(cli, ["run", "run.yaml"])
    assert result.exit_code == 2, result.output
    assert "data row 61 (line 62), column 'load'" in result.output and "'ten'" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "mlflow.db").exists()


# --- chars ---------------------------------------------------------------------------------------


def test_encode_maps_unknown_characters_to_the_last_index() -> None:
    assert encode("cab?", "abc").tolist() == [2, 0, 1, 3]
    assert encode("é€𝄞x", "x€").tolist() == [2, 1, 2, 0]


def test_default_corpus_is_cpythons_help_text() -> None:
    from pydoc_data.topics import topics

    text = python_help_corpus()
    assert len(text) > 100_000 and text.startswith(topics[sorted(topics)[0]])
    ds = Chars(Chars.Params(seq_len=50))
    assert sum(s.numel() for s in ds.streams.values()) == len(text)
    assert ds.input_size == ds.output_size == len(ds.vocab) + 1
    assert ds.label() == "chars T=50"
    assert 3.5 < bits_per_char(ds.baseline_loss or 0.0) < 6.0  # unigram: ~4.7 bits


def test_a_python_without_pydoc_data_asks_for_a_text_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pydoc_data.topics", None)  # import fails
    python_help_corpus.cache_clear()
    try:
        with pytest.raises(DataError, match="no pydoc_data.topics.*set dataset.path"):
            Chars()
    finally:
        python_help_corpus.cache_clear()


def text_task(tmp_path: Path, text: str, **options: object) -> CharLanguageModel:
    path = tmp_path / "book.txt"
    path.write_text(text, encoding="utf-8")
    return Chars(Chars.Params(path=str(path), **options), seed=0)


def test_contiguous_split_and_train_only_vocabulary(tmp_path: Path) -> None:
    text = "abcab" * 36 + "xyzzy" * 2 + "abQ" * 3 + "!"  # 180 train, 10 val, 10 test
    ds = text_task(tmp_path, text, seq_len=4, val_fraction=0.05, test_fraction=0.05)
    assert ds.vocab == "abc" and ds.output_size == 4  # x, y, z, Q, ! never seen in train
    assert ds.decode(ds.streams["train"]) == text[:180]
    assert ds.decode(ds.streams["val"]) == "<unk>" * 10
    assert ds.decode(ds.streams["test"]) == "ab<unk>ab<unk>ab<unk><unk>"
    assert ds.label() == "chars book.txt T=4"


def test_val_windows_are_consecutive_and_targets_are_the_next_character(tmp_path: Path) -> None:
    text = "".join(chr(ord("a") + (i * 7) % 26) for i in range(1000))
    ds = text_task(tmp_path, text, seq_len=10, val_fraction=0.1, test_fraction=0.1)
    xs, ys = zip(*ds.batches("val", 3), strict=True)
    x, y = torch.cat(xs, dim=1), torch.cat(ys, dim=1)
    assert x.shape == (10, 9, 27) and y.shape == (10, 9)  # 100 chars: 9 windows of 10 + 1
    inputs = x.argmax(-1)
    assert torch.equal(inputs[1:], y[:-1])  # y_t is x_{t+1}
    read = "".join(ds.decode(inputs[:, i]) for i in range(9))
    assert read == text[800:890]  # non-overlapping, in order: every character once
    for x, y in take(ds, "train", 8, 5):
        assert x.shape == (10, 8, 27) and torch.equal(x.argmax(-1)[1:], y[:-1])


def test_chars_are_deterministic_under_a_seed(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("the quick brown fox jumps over the lazy dog. " * 40)
    params = Chars.Params(path=str(path), seq_len=12)
    a, b, c = (take(Chars(params, s), "train", 8, 3) for s in (1, 1, 2))
    assert all(torch.equal(p[1], q[1]) for p, q in zip(a, b, strict=True))
    assert not torch.equal(a[0][1], c[0][1])


def test_bits_per_char() -> None:
    ds = Chars(Chars.Params(seq_len=5))
    x, y = take(ds, "val", 4)[0]
    uniform = torch.zeros(*y.shape, ds.output_size)  # equal logits: ln V nats per character
    loss = float(ds.loss(uniform, y))
    assert loss == pytest.approx(math.log(ds.output_size))
    assert bits_per_char(loss) == pytest.approx(math.log2(ds.output_size))
    assert ds.derived_metrics({"val/loss": math.log(2) * 1.5, "val/accuracy": 0.1}) == {
        "val/bpc": pytest.approx(1.5)
    }


def test_text_file_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="text file not found: .*missing.txt.*dataset.path"):
        Chars(Chars.Params(path=str(tmp_path / "missing.txt")))
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"caf" + b"\xe9 " * 50)
    with pytest.raises(DataError, match=r"latin.txt is not UTF-8: byte 0xe9 at offset 3"):
        Chars(Chars.Params(path=str(latin)))
    with pytest.raises(DataError, match="the val split has 1 items"):
        text_task(tmp_path, "short text here", seq_len=5)


# --- docs and experiments --------------------------------------------------------------------


def test_docs_tasks_md_is_generated_from_the_classes() -> None:
    spec = importlib.util.spec_from_file_location("make_tasks", ROOT / "docs" / "make_tasks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    expected = module.render()
    assert "## `forecast`" in expected and "## `chars`" in expected
    assert (ROOT / "docs" / "tasks.md").read_text(encoding="utf-8") == expected, (
        "docs/tasks.md is out of date: run python docs/make_tasks.py"
    )


@pytest.mark.parametrize(("name", "trials"), [("forecast", 18), ("chars", 9)])
def test_experiment_files_are_valid_sweeps(registry, name: str, trials: int) -> None:
    from rnnlab.sweep import load_sweep

    plan = load_sweep(ROOT / "experiments" / f"{name}.yaml", registry)
    assert plan.grid and plan.total == trials
    assert plan.base.dataset.name == name
    assert all(p.run is not None for p in plan.points)  # nothing incompatible
    assert {p.data["cell"]["name"] for p in plan.points} == {"rnn", "lstm", "gru"}


@pytest.mark.parametrize(
    ("dataset", "derived"),
    [
        ({"name": "chars", "seq_len": 8}, "val/bpc"),
        ({"name": "forecast", "seq_len": 8, "length": 300}, "val/nrmse"),
    ],
)
def test_every_evaluation_logs_the_derived_metric(registry, dataset, derived) -> None:
    from rnnlab.run import NullTracker, Source, resolve, train
    from rnnlab.testing import TINY_TRAIN

    data = {"name": "d", "dataset": dataset, "cell": {"name": "gru", "hidden_size": 4}}
    tracker = NullTracker(keep_artifacts=False)
    result = train(
        resolve(Source(path=None, data={**data, "train": dict(TINY_TRAIN)}), registry), tracker
    )
    assert result.outcome == "completed", result.message
    losses = dict(tracker.history["val/loss"])
    values = dict(tracker.history[derived])
    assert values.keys() == losses.keys() == {0, 2, 4}
    for step, loss in losses.items():
        expected = loss / math.log(2) if derived == "val/bpc" else math.sqrt(loss)
        assert values[step] == pytest.approx(expected, rel=1e-9)
    assert result.metrics[derived] == pytest.approx(values[4])
