"""Time-series forecasting: Mackey-Glass, a noisy sum of sines, or a column of the user's CSV."""

from __future__ import annotations

import csv
import difflib
import functools
import math
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import Tensor

import rnnlab
from rnnlab import DataError
from rnnlab_tasks._stream import StreamDataset, time_split

WASHOUT = 500.0
"""Time units of Mackey-Glass integrated and thrown away before the first sample."""
BETA, GAMMA, EXPONENT = 0.2, 0.1, 10.0
"""The constants of the Mackey-Glass equation (the chaotic regime of the classic benchmark)."""


def mackey_glass(length: int, tau: float, dt: float, sample_every: float, seed: int) -> Tensor:
    """A Mackey-Glass series, ``[length]`` float64, integrated by 4th-order Runge-Kutta.

    dx/dt = BETA x(t - tau) / (1 + x(t - tau)^10) - GAMMA x(t), with a fixed step ``dt``. The
    history x(t) for t in [-tau, 0] is 1.2 plus uniform noise in [-0.1, 0.1] at every step,
    drawn from ``seed``. The delayed term is read from the stored trajectory (``tau`` is a whole
    number of steps); the half-step value RK4 needs is the mean of its two neighbours. The first
    ``WASHOUT`` time units are discarded, then one sample is kept every ``sample_every``.
    """
    return torch.tensor(_mackey_glass(length, tau, dt, sample_every, seed), dtype=torch.float64)


@functools.cache
def _mackey_glass(
    length: int, tau: float, dt: float, sample_every: float, seed: int
) -> tuple[float, ...]:
    d, sub, skip = round(tau / dt), round(sample_every / dt), round(WASHOUT / dt)
    g = torch.Generator().manual_seed(seed)
    x = (1.2 + 0.2 * (torch.rand(d + 1, generator=g, dtype=torch.float64) - 0.5)).tolist()
    h = dt
    for i in range(d, d + skip + length * sub):  # x[i] is the state at step i - d
        now, a, b = x[i], x[i - d], x[i - d + 1]
        m = 0.5 * (a + b)
        fa = BETA * a / (1.0 + a**EXPONENT)
        fm = BETA * m / (1.0 + m**EXPONENT)
        fb = BETA * b / (1.0 + b**EXPONENT)
        k1 = fa - GAMMA * now
        k2 = fm - GAMMA * (now + 0.5 * h * k1)
        k3 = fm - GAMMA * (now + 0.5 * h * k2)
        k4 = fb - GAMMA * (now + h * k3)
        x.append(now + h / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4))
    return tuple(x[d + skip + sub :: sub][:length])  # a tuple: the cached value is immutable


def sum_of_sines(length: int, periods: tuple[float, ...], noise: float, seed: int) -> Tensor:
    """sum_k sin(2 pi t / periods[k] + phase_k) + noise * N(0, 1) for t = 0 .. length - 1.

    The phases are uniform in [0, 2 pi) and the noise is Gaussian, both drawn from ``seed``.
    """
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length, dtype=torch.float64)
    phases = 2 * math.pi * torch.rand(len(periods), generator=g, dtype=torch.float64)
    clean = torch.zeros(length, dtype=torch.float64)
    for period, phase in zip(periods, phases.tolist(), strict=True):
        clean += torch.sin(2 * math.pi * t / period + phase)
    return clean + noise * torch.randn(length, generator=g, dtype=torch.float64)


def read_csv_column(path: Path, column: str | None, delimiter: str) -> Tensor:
    """One numeric column of a CSV file with a header row, ``[rows]`` float64.

    Raises:
        DataError: The file is missing or unreadable, has no header, lacks the column (or has
            several columns and none was named), or a value is not a finite number; the message
            names the file, the column, the row and the value.
    """
    if not path.is_file():
        raise DataError(
            f"CSV file not found: {path} (dataset.path; a relative path is read from "
            f"{Path.cwd()}); check the path"
        )
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, delimiter=delimiter)
            rows = [(reader.line_num, row) for row in reader if row]  # skip blank lines
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read CSV file {path}: {exc}") from exc
    if not rows:
        raise DataError(f"CSV file {path} is empty; it needs a header row and numeric rows")
    header = [h.strip() for h in rows[0][1]]
    shown = ", ".join(repr(h) for h in header)
    if column is None:
        if len(header) != 1:
            raise DataError(
                f"CSV file {path} has {len(header)} columns ({shown}); set dataset.column to "
                "the one to forecast"
            )
        column = header[0]
    if column not in header:
        close = difflib.get_close_matches(column, header, n=1)
        hint = f". Did you mean {close[0]!r}?" if close else ""
        raise DataError(
            f"column {column!r} (dataset.column) not found in CSV file {path}; its header row "
            f"has: {shown}{hint}"
        )
    k = header.index(column)
    values: list[float] = []
    for row_no, (line, row) in enumerate(rows[1:], start=1):
        raw = row[k].strip() if k < len(row) else ""
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            what = "is empty" if not raw else f"{raw!r} is not a finite number"
            raise DataError(
                f"CSV file {path}, data row {row_no} (line {line}), column {column!r}: the value "
                f"{what}; fix or remove that row (the column must hold one number per row)"
            )
        values.append(value)
    return torch.tensor(values, dtype=torch.float64)


class TimeSeriesForecast(StreamDataset):
    """Forecasting: predict the next ``horizon`` values of a univariate series from a window.

    Each input is a window of ``seq_len`` consecutive values (1 channel); the target is the
    ``horizon`` values that follow it (``[B, horizon]``; one-step-ahead by default), predicted
    from the output at the last step. The loss is the MSE in normalised units: the series is
    standardised with the mean and standard deviation of the train block only, so the val loss is
    the squared RMSE relative to the training standard deviation, and the normalised RMSE is
    ``sqrt(val/loss)``.

    Series: ``mackey_glass`` (dx/dt = 0.2 x(t-tau) / (1 + x(t-tau)^10) - 0.1 x(t), chaotic at
    the default tau=17; integrated by 4th-order Runge-Kutta with step ``dt``, a seeded random
    history, 500 time units of washout, one sample every ``sample_every``); ``sines`` (a sum of
    unit sines with the given periods and random phases, plus Gaussian noise of std ``noise``);
    ``csv`` (column ``column`` of the CSV file ``path``, which must have a header row). The series
    is the same for every run seed (generated from ``series_seed``).

    The series is split in time order: train is the beginning, then val, then test (the
    fractions given); no window crosses a boundary. Train windows start at uniformly random
    positions (seeded by the run seed); val and test take every window in order (stride 1).

    Accuracy is the fraction of windows whose every forecast value lies within ``tolerance``
    training standard deviations of the truth (0.1 by default). The baseline loss is the val MSE
    of the persistence forecast (repeat the last value of the window); predicting the mean scores
    about 1.

    Target: the forecast at the window's end, the whole loss, so the target curve
    ``grad/target/*`` is the total curve ``grad/*``.
    """

    class Params(rnnlab.Params):
        """Parameters of the forecasting task."""

        series: Literal["mackey_glass", "sines", "csv"] = Field(
            default="mackey_glass", description="Which series: generated, or a CSV column."
        )
        seq_len: int = Field(default=50, ge=1, description="Window length T (input steps).")
        horizon: int = Field(
            default=1, ge=1, description="Values predicted after the window (k-step ahead)."
        )
        length: int = Field(
            default=4000, ge=10, description="Samples of a generated series (not csv)."
        )
        series_seed: int = Field(
            default=0, ge=0, description="Seed of a generated series; the same for every run."
        )
        tau: float = Field(default=17.0, gt=0, description="Mackey-Glass delay tau.")
        dt: float = Field(default=0.1, gt=0, le=1, description="Mackey-Glass integration step.")
        sample_every: float = Field(
            default=1.0, gt=0, description="Mackey-Glass time units between samples."
        )
        periods: tuple[float, ...] = Field(
            default=(17.0, 41.0, 97.0), min_length=1, description="Periods of the sines."
        )
        noise: float = Field(default=0.1, ge=0, description="Std of the noise on the sines.")
        path: str | None = Field(default=None, description="The CSV file (series: csv).")
        column: str | None = Field(
            default=None, description="Header of the CSV column (may be omitted if only one)."
        )
        delimiter: str = Field(
            default=",", min_length=1, max_length=1, description="The CSV field delimiter."
        )
        val_fraction: float = Field(
            default=0.15, gt=0, lt=1, description="Fraction of the series, after train, for val."
        )
        test_fraction: float = Field(
            default=0.15, gt=0, lt=1, description="Fraction of the series, at the end, for test."
        )
        tolerance: float = Field(
            default=0.1, gt=0, description="Accuracy counts a forecast within this many train stds."
        )

        @model_validator(mode="after")
        def _consistent(self) -> TimeSeriesForecast.Params:
            if self.val_fraction + self.test_fraction >= 0.9:
                raise ValueError("val_fraction + test_fraction must be below 0.9")
            if self.series == "csv" and self.path is None:
                raise ValueError("series 'csv' needs dataset.path, the CSV file to read")
            if self.series != "csv" and (self.path is not None or self.column is not None):
                raise ValueError(
                    f"path and column are read only for series 'csv', not {self.series!r}; "
                    "add series: csv"
                )
            for name, value in (("tau", self.tau), ("sample_every", self.sample_every)):
                steps = value / self.dt
                if steps < 0.5 or abs(steps - round(steps)) > 1e-6:
                    raise ValueError(f"{name}={value} must be a whole multiple of dt={self.dt}")
            return self

    params: Params
    kind = rnnlab.TaskKind.REGRESSION_LAST

    def __init__(self, params: TimeSeriesForecast.Params | None = None, seed: int = 0) -> None:
        """Create the task: generate or read the series, split it and normalise it.

        Args:
            params: The task's parameters; defaults to ``TimeSeriesForecast.Params()``.
            seed: The run seed; it orders the train windows only.

        Raises:
            DataError: The CSV file is missing or malformed, or a split is shorter than one
                window.
        """
        super().__init__(params, seed)
        p = self.params
        self.input_size = 1
        self.output_size = p.horizon
        self.seq_len = p.seq_len
        self.window = p.seq_len + p.horizon
        self.tolerance_std = p.tolerance
        raw = self._raw_series(p)
        bounds = time_split(raw.shape[0], p.val_fraction, p.test_fraction)
        source = f"series {self.source}"
        fix = "use a longer series, or lower seq_len, horizon or the val/test fractions"
        self.set_streams({s: raw[lo:hi] for s, (lo, hi) in bounds.items()}, source, fix)
        train = self.streams["train"]  # the normalisation sees the train block only
        self.mean, self.std = float(train.mean()), float(train.std())
        if not self.std > 0:
            raise DataError(
                f"{source} is constant over its train split: nothing to forecast; choose "
                "a column that varies"
            )
        self.streams = {
            s: ((stream - self.mean) / self.std).to(torch.float32)
            for s, stream in self.streams.items()
        }
        x, y = self.make_batch(self.windows("val", 1))
        self.baseline_loss = float((x[-1] - y).square().mean())  # persistence

    def _raw_series(self, p: TimeSeriesForecast.Params) -> Tensor:
        if p.series == "mackey_glass":
            self.source = f"mackey_glass tau={p.tau:g}"
            return mackey_glass(p.length, p.tau, p.dt, p.sample_every, p.series_seed)
        if p.series == "sines":
            self.source = "sines"
            return sum_of_sines(p.length, p.periods, p.noise, p.series_seed)
        assert p.path is not None
        path = Path(p.path).expanduser()
        values = read_csv_column(path, p.column, p.delimiter)
        self.source = f"{path}" + (f" column {p.column!r}" if p.column else "")
        self.column_label = f"{path.stem}:{p.column}" if p.column else path.stem
        return values

    def make_batch(self, windows: Tensor) -> tuple[Tensor, Tensor]:
        """Windows ``[B, T + horizon]`` -> ``x`` ``[T, B, 1]`` and ``y`` ``[B, horizon]``."""
        x = windows[:, : self.seq_len].t().unsqueeze(-1).contiguous()
        return x, windows[:, self.seq_len :].contiguous()

    def accuracy(self, out: Tensor, y: Tensor) -> Tensor:
        """The fraction of windows whose every forecast is within ``tolerance`` train stds."""
        return ((out - y).abs() < self.tolerance_std).all(dim=-1).float().mean()

    def derived_metrics(self, scores: dict[str, float]) -> dict[str, float]:
        """``<split>/nrmse`` = sqrt(``<split>/loss``): the RMSE over the training std."""
        return {
            f"{key.removesuffix('/loss')}/nrmse": math.sqrt(value)
            for key, value in scores.items()
            if key.endswith("/loss") and value >= 0
        }

    def label(self) -> str:
        """E.g. ``"forecast mackey_glass T=50"``, with ``" k=<horizon>"`` when above 1."""
        p = self.params
        name = self.column_label if p.series == "csv" else p.series
        return f"forecast {name} T={self.seq_len}" + (f" k={p.horizon}" if p.horizon > 1 else "")
