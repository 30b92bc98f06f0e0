"""MLflow's UI as a person sees it (issue 21), in headless Chromium: the deep link rnnlab prints
opens the sweep's runs page with its parent run, whose trials' child runs show by name once it is
expanded; a trial's run page shows its gradient_flow.png inline. A real sweep, a real
`mlflow ui` (sys.executable -m mlflow) on loopback, Chromium over the DevTools pipe of
tests/test_report_browser.py. MLflow's UI is a JavaScript app: every step waits for what it needs
to see, with generous timeouts (the machine is shared)."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from rnnlab._names import ui_links
from rnnlab.cli import cli
from tests.servers import free_port
from tests.test_report_browser import DevTools, chromium

WAIT_S = 120.0
SWEEP = """\
name: browsed
dataset: {name: adding, seq_len: 6, val_size: 16, test_size: 16}
cell: {name: rnn, hidden_size: 4}
train: {steps: 4, batch_size: 4, eval_every: 2, probe_every: 2, log_every: 1, device: cpu}
sweep:
  workers: 1
  seeds: [0]
  space:
    cell: [{name: rnn}, {name: gru}]
"""
EXPAND = """(() => {
  const name = %s;
  const link = [...document.querySelectorAll('a')].find(a => a.textContent.trim() === name);
  if (!link) return 'no link';
  const row = link.closest('[role=row]') || link.parentElement.parentElement;
  const button = row && row.querySelector('button');
  if (!button) return 'no button';
  button.click();
  return 'clicked';
})()"""
IMAGE = """(() => [...document.images].filter(i => i.complete && i.naturalWidth > 0
    && (i.src.includes('gradient_flow.png') || i.src.startsWith('blob:')))
  .map(i => [i.naturalWidth, i.naturalHeight]))()"""
CLICK_TEXT = """(() => {
  const name = %s;
  const items = [...document.querySelectorAll('body *')].filter(
      e => e.textContent.trim() === name);
  if (!items.length) return false;
  const target = items[items.length - 1];  // the innermost: document order puts it last
  for (const kind of ['mousedown', 'mouseup', 'click'])
    target.dispatchEvent(new MouseEvent(kind, {bubbles: true, cancelable: true, view: window}));
  return true;
})()"""


@contextlib.contextmanager
def mlflow_ui(uri: str, cwd: Path) -> Iterator[str]:
    """`mlflow ui` on the store, on a free loopback port; its process group ends with it."""
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = (cwd / "mlflow-ui.log").open("wb")
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    proc = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        deadline = time.monotonic() + WAIT_S
        while True:
            assert proc.poll() is None, (cwd / "mlflow-ui.log").read_text()
            try:
                opener.open(base + "/health", timeout=2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "mlflow ui did not answer"
                time.sleep(0.5)
        yield base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)
        log.close()


class Browser:
    """One Chromium tab: open a URL, read its text, run a script, wait for a condition."""

    def __init__(self, folder: Path, size: tuple[int, int] = (1500, 900)) -> None:
        self.profile = tempfile.TemporaryDirectory(prefix="chromium-profile-")
        self.devtools = DevTools(chromium(), Path(self.profile.name), folder / "chromium.log", size)
        target = self.devtools.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.devtools.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        for domain in ("Page", "Runtime"):
            self.devtools.call(f"{domain}.enable", self.session)
        self.devtools.call(
            "Emulation.setDeviceMetricsOverride", self.session, width=size[0], height=size[1],
            deviceScaleFactor=1, mobile=False,
        )  # fmt: skip

    def open(self, url: str) -> None:
        self.devtools.call("Page.navigate", self.session, url=url)

    def js(self, expression: str) -> Any:
        result = self.devtools.call(
            "Runtime.evaluate", self.session, expression=expression, returnByValue=True
        )["result"]
        return result.get("value")

    def text(self) -> str:
        return str(self.js("document.body ? document.body.innerText : ''") or "")

    def wait(self, expression: str, what: str) -> Any:
        deadline = time.monotonic() + WAIT_S
        while True:
            value = self.js(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"MLflow's UI never showed {what}; it shows:\n{self.text()}")
            time.sleep(1)

    def screenshot(self, path: Path) -> None:
        shot = self.devtools.call("Page.captureScreenshot", self.session, format="png")
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        self.devtools.close()
        self.profile.cleanup()


def has_text(text: str) -> str:
    return f"document.body && document.body.innerText.includes({json.dumps(text)})"


def show_runs(browser: Browser, runs_url: str, parent: str, children: list[str]) -> None:
    """Open the runs page, wait for the parent run, expand it, wait for its children."""
    browser.open(runs_url)
    browser.wait(has_text(parent), f"the parent run {parent!r}")
    deadline = time.monotonic() + WAIT_S
    while not all(browser.js(has_text(c)) for c in children):
        browser.js(EXPAND % json.dumps(parent))
        if time.monotonic() > deadline:
            raise AssertionError(f"the child runs {children} never showed:\n{browser.text()}")
        time.sleep(2)


def show_flow_png(browser: Browser, run_url: str) -> list[list[int]]:
    """Open a run's artifacts, select gradient_flow.png, wait for the image to be drawn."""
    browser.open(run_url + "/artifacts")
    browser.wait(has_text("gradient_flow.png"), "the artifact gradient_flow.png")
    deadline = time.monotonic() + WAIT_S
    while True:
        browser.js(CLICK_TEXT % json.dumps("gradient_flow.png"))
        images = browser.js(IMAGE)
        if images:
            return list(images)
        if time.monotonic() > deadline:
            raise AssertionError(f"gradient_flow.png never showed inline:\n{browser.text()}")
        time.sleep(2)


@pytest.mark.slow  # ~45 s on 2 cores: in the slow CI step and nox -s science
def test_the_deep_link_shows_the_sweep_and_the_run_page_its_gradient_flow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chromium()  # skip (or, in CI, fail) before the sweep when there is no browser
    (tmp_path / "browsed.yaml").write_text(SWEEP)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    result = CliRunner().invoke(cli, ["sweep", str(tmp_path / "browsed.yaml")])
    assert result.exit_code == 0, result.output
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("browsed")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("rnnlab.role") == "sweep"]
    children = sorted(r.info.run_name for r in runs if r.data.tags.get("rnnlab.role") == "trial")
    assert len(children) == 2
    with mlflow_ui(uri, tmp_path) as base:
        runs_url, parent_url = ui_links(base, experiment.experiment_id, parent.info.run_id)
        browser = Browser(tmp_path)
        try:
            show_runs(browser, runs_url, parent.info.run_name, children)
            child = next(r for r in runs if r.info.run_name == children[0])
            run_url = ui_links(base, experiment.experiment_id, child.info.run_id)[1]
            assert run_url is not None
            images = show_flow_png(browser, run_url)
            assert any(w > 100 and h > 100 for w, h in images), images
            browser.open(str(parent_url))
            browser.wait(has_text(parent.info.run_name), "the parent run's page")
        finally:
            browser.close()
