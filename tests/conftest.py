"""Shared fixtures: real plugin discovery, real MLflow stores, fake installed distributions."""

from __future__ import annotations

import importlib
import os
import shutil
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from rnnlab.plugins import Registry, make_plugin_manager

MakeDist = Callable[..., Path]


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> None:
    """Tiny models gain nothing from threads, and on a shared 2-core machine extra threads spin."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def registry() -> Registry:
    """The registry of every installed plugin (built-ins through their entry points)."""
    return make_plugin_manager(load=None, strict=False, trace=False).registry()


@pytest.fixture
def fake_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MakeDist:
    """Install a throwaway distribution (dist-info + modules) on sys.path for one test.

    ``fake_dist("mydist", {"ep": "mod"}, {"mod": "source"})`` returns the folder, which a
    subprocess can use as PYTHONPATH; the entry points are real ``rnnlab`` entry points.
    """
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))

    def make(
        name: str, entry_points: dict[str, str], modules: dict[str, str], version: str = "1.0"
    ) -> Path:
        # the folder name must be normalised: "a-b-1.0.dist-info" would read as distribution "a"
        info = root / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
        (info / "entry_points.txt").write_text(f"[rnnlab]\n{lines}\n")
        for module, source in modules.items():
            (root / f"{module}.py").write_text(textwrap.dedent(source))
            monkeypatch.delitem(sys.modules, module, raising=False)  # no stale copy from a test
        importlib.invalidate_caches()
        return root

    return make


@pytest.fixture
def mlflow_uri(rnnlab_mlflow: str) -> str:
    """A real MLflow sqlite store in a temporary folder (rnnlab's own pytest plugin fixture)."""
    return rnnlab_mlflow


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    """Write a YAML config into the test's folder and return its path."""

    def write(text: str, name: str = "run.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


FAULTY = '''
import os
import signal
import time
from typing import Literal

import torch
import rnnlab
from rnnlab.base import Cell


class Faulty(Cell):
    """A tanh cell that misbehaves on request, after a number of steps."""

    class Params(rnnlab.Params):
        fault: Literal["none", "raise", "abort", "nan", "slow", "kill", "kill_once"] = "none"
        after: int = 30

    def __init__(self, input_size, hidden_size, params=None):
        super().__init__(input_size, hidden_size, params)
        self.linear = torch.nn.Linear(input_size + hidden_size, hidden_size)
        self.calls = 0

    def forward(self, x_t, state):
        self.calls += 1
        fault = self.params.fault
        if self.calls > self.params.after:
            if fault == "raise":
                raise RuntimeError("the faulty cell raised")
            if fault == "abort":
                os.abort()
            if fault == "kill_once" and not os.path.exists("killed-once"):
                open("killed-once", "w").close()  # in the sweep's folder, the workers' cwd
                fault = "kill"
            if fault == "kill":
                os.kill(os.getpid(), signal.SIGKILL)  # a lost process, as the OOM killer does
            if fault == "nan":
                return state[0] * float("nan"), (state[0] * float("nan"),)
        if fault == "slow":
            time.sleep(0.002)
        h = torch.tanh(self.linear(torch.cat((x_t, state[0]), dim=-1)))
        return h, (h,)


@rnnlab.hookimpl
def register_cells(register):
    register("faulty", Faulty)
'''


@pytest.fixture
def sweep_env(
    fake_dist,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    rnnlab_mlflow_template: Path,
) -> dict[str, str]:
    """A folder with the faulty-cell plugin installed, MLflow's store and the journal in it.

    The store is a copy of an empty, migrated one (rnnlab's ``rnnlab_mlflow_template``: MLflow's
    migrations take seconds, once per session); a test marked ``no_store`` starts without one
    (it checks that nothing, the store included, is created).

    No GPU is visible (``CUDA_VISIBLE_DEVICES=""``, here and in the subprocesses ``env`` is for):
    these tests assert CPU slots (``cpu 0``) and ``rnnlab.device`` ``cpu``, which ``device: auto``
    and ``workers: auto`` would not give on a GPU machine."""
    site = fake_dist("rnnlab-faulty", {"faulty": "faulty_plugin"}, {"faulty_plugin": FAULTY})
    monkeypatch.chdir(tmp_path)
    if request.node.get_closest_marker("no_store") is None:
        shutil.copy(rnnlab_mlflow_template, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    env = {
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
        "MLFLOW_TRACKING_URI": uri,
        "CUDA_VISIBLE_DEVICES": "",
    }
    return env


# device: cpu, not auto: tests assert the rnnlab.device tag, and auto is cuda on a GPU machine
BUILTIN_CELLS = [
    "antisymmetric",
    "cornn",
    "exprnn",
    "gru",
    "indrnn",
    "lem",
    "lipschitz",
    "lru",
    "lstm",
    "mingru",
    "minlstm",
    "rnn",
    "simple",
    "unicornn",
]
"""Every cell rnnlab ships, sorted (as registries and listings name them)."""
CELL_LIST = ", ".join(BUILTIN_CELLS)

TINY = (
    "name: tiny\n"
    "seed: 0\n"
    "dataset: {name: adding, seq_len: 12, val_size: 64}\n"
    "cell: {name: lstm, hidden_size: 8}\n"
    "remedies: [clip]\n"
    "train: {steps: 6, batch_size: 16, lr: 0.01, eval_every: 3, probe_every: 2, log_every: 2,"
    " device: cpu}\n"
)
