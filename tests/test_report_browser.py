"""The report as a person sees it: rendered by headless Chromium, with no console errors.

Chromium (Debian's ``chromium`` package; ``.ci/run`` installs it) is driven over the DevTools
protocol on a pipe (``--remote-debugging-pipe``: commands on fd 3, replies on fd 4, each a JSON
message ending in a NUL byte), with nothing but the standard library. That is what makes the
error check precise: on its stderr (``--enable-logging=stderr``) headless Chromium logs every
console message as ``INFO:CONSOLE`` whatever its level, so ``console.error`` looks like
``console.log`` there, and it prints nothing at all for an image that fails to load. Over the
protocol each arrives with its level: ``Runtime.consoleAPICalled`` (type ``error``),
``Runtime.exceptionThrown``, ``Log.entryAdded`` (level ``error``: failed loads, blocked
resources, ...) and ``Network.loadingFailed``.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import matplotlib.image
import pytest
from click.testing import CliRunner

from rnnlab.cli import cli
from tests.test_sweep import write

# as the machine notes' probe ran it as root; the network flags keep Chromium from dialling out
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--mute-audio",
    "--enable-logging=stderr",
    "--v=0",
)
TIMEOUT = 60.0  # seconds for any one step; a start takes about one


def chromium() -> str:
    """Debian's Chromium, or a skip that says where it comes from; in CI (``CI`` set, as
    ``.ci/run`` sets it) a missing browser fails the test instead, as a missing PostgreSQL does."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        reason = "no chromium on PATH; .ci/run installs it (apt-get install chromium)"
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail(f"{reason}; CI is set, so this is an error, not a skip")
        pytest.skip(reason)
    return found


@dataclass
class Rendering:
    """What Chromium made of a page."""

    errors: list[str]  # console errors, uncaught exceptions, failed loads
    dom: str  # document.documentElement.outerHTML after the load event
    images: list[list[int]]  # [naturalWidth, naturalHeight] of every <img>, 0 if it failed
    screenshot: Path
    stderr: str
    returncode: int | None = None
    events: list[dict[str, Any]] = field(default_factory=list)


def errors_in(events: list[dict[str, Any]]) -> list[str]:
    """The DevTools events that a person with the console open would see as errors."""
    found = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            texts = [str(a.get("value", a.get("description", ""))) for a in params["args"]]
            found.append(f"console.{params['type']}: {' '.join(texts)}")
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            text = details.get("exception", {}).get("description", details["text"])
            found.append(f"uncaught: {text}")
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            entry = params["entry"]
            found.append(f"log ({entry['source']}): {entry['text']} {entry.get('url', '')}")
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            found.append(f"failed load: {params['errorText']} ({params['type']})")
    return found


class DevTools:
    """One headless Chromium, spoken to over ``--remote-debugging-pipe``."""

    def __init__(self, binary: str, profile: Path, log: Path, size: tuple[int, int]) -> None:
        commands, self._commands = os.pipe()
        self._replies, replies = os.pipe()
        # the browser reads commands on fd 3 and writes replies on fd 4; bash puts them there,
        # from copies numbered 10 and up, which cannot be 3 or 4 themselves
        commands_read = fcntl.fcntl(commands, fcntl.F_DUPFD, 10)
        replies_write = fcntl.fcntl(replies, fcntl.F_DUPFD, 10)
        script = f'exec "$0" "$@" 3<&{commands_read} 4>&{replies_write} '
        script += f"{commands_read}<&- {replies_write}>&-"
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            [
                "bash",
                "-c",
                script,
                binary,
                *FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={size[0]},{size[1]}",
                "--remote-debugging-pipe",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            pass_fds=(commands_read, replies_write),
            start_new_session=True,  # its own process group: the renderers end with it
        )
        for fd in (commands, replies, commands_read, replies_write):
            os.close(fd)
        self._buffer = b""
        self._last_id = 0
        self.events: list[dict[str, Any]] = []

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from Chromium")
            ready, _, _ = select.select([self._replies], [], [], left)
            if ready:
                chunk = os.read(self._replies, 1 << 20)
                if not chunk:
                    raise ConnectionError(f"Chromium exited ({self.process.poll()})")
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send one command and return its result; events that arrive meanwhile are kept."""
        self._last_id += 1
        message: dict[str, Any] = {"id": self._last_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == self._last_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, since: int = 0) -> dict[str, Any]:
        """The first event called ``method`` from ``events[since]`` on, received or to come."""
        deadline = time.monotonic() + TIMEOUT
        seen = [e for e in self.events[since:] if e.get("method") == method]
        while not seen:
            event = self._receive(deadline)
            self.events.append(event)
            if event.get("method") == method:
                seen.append(event)
        return seen[0]

    def close(self) -> int | None:
        """Ask the browser to quit; kill its process group if it does not."""
        with contextlib.suppress(OSError, TimeoutError, ConnectionError, RuntimeError):
            self.call("Browser.close")
        try:
            code: int | None = self.process.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            code = None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # helpers left behind, if any
        if code is None:
            self.process.wait(timeout=TIMEOUT)
        os.close(self._commands)
        os.close(self._replies)
        self._log.close()
        return code


SETTLE = """new Promise(done => requestAnimationFrame(() => requestAnimationFrame(() =>
    Promise.all(Array.from(document.images, i => i.decode().then(
        () => [i.naturalWidth, i.naturalHeight], () => [0, 0]))).then(done))))"""


def render(page: Path, out: Path, size: tuple[int, int] = (1400, 1800)) -> Rendering:
    """Load ``page`` in headless Chromium as a person would open the file, and look at it."""
    binary = chromium()
    out.mkdir(parents=True, exist_ok=True)
    log = out / "chromium.log"
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        browser = DevTools(binary, Path(profile), log, size)
        try:
            target = browser.call("Target.createTarget", url="about:blank")["targetId"]
            session = browser.call("Target.attachToTarget", targetId=target, flatten=True)[
                "sessionId"
            ]
            for domain in ("Page", "Runtime", "Log", "Network"):
                browser.call(f"{domain}.enable", session)
            browser.call(
                "Emulation.setDeviceMetricsOverride",
                session,
                width=size[0],
                height=size[1],
                deviceScaleFactor=1,
                mobile=False,
            )
            before = len(browser.events)
            navigated = browser.call("Page.navigate", session, url=page.resolve().as_uri())
            if navigated.get("errorText"):
                entry = {"level": "error", "source": "navigation", "text": navigated["errorText"]}
                browser.events.append({"method": "Log.entryAdded", "params": {"entry": entry}})
            else:
                browser.wait_for("Page.loadEventFired", since=before)
            images = browser.call(
                "Runtime.evaluate",
                session,
                expression=SETTLE,
                awaitPromise=True,
                returnByValue=True,
            )["result"]["value"]
            dom = browser.call(
                "Runtime.evaluate",
                session,
                expression="document.documentElement.outerHTML",
                returnByValue=True,
            )["result"]["value"]
            shot = browser.call("Page.captureScreenshot", session, format="png")
            screenshot = out / f"{page.stem}.png"
            screenshot.write_bytes(base64.b64decode(shot["data"]))
        finally:
            code = browser.close()
    stderr = log.read_text(errors="replace")
    # the one console error stderr does tell apart (a belt to the protocol's braces)
    uncaught = [line for line in stderr.splitlines() if ":CONSOLE" in line and "Uncaught" in line]
    return Rendering(
        errors=errors_in(browser.events) + uncaught,
        dom=dom,
        images=images,
        screenshot=screenshot,
        stderr=stderr,
        returncode=code,
        events=browser.events,
    )


class Tags(HTMLParser):
    """Counts the tags of a document, and keeps the table headers' text."""

    def __init__(self) -> None:
        super().__init__()
        self.count: dict[str, int] = {}
        self.headers: list[str] = []
        self._in_th = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.count[tag] = self.count.get(tag, 0) + 1
        self._in_th = tag == "th"

    def handle_endtag(self, tag: str) -> None:
        self._in_th = self._in_th and tag != "th"

    def handle_data(self, data: str) -> None:
        if self._in_th:
            self.headers.append(data.strip())


def assert_not_blank(png: Path) -> None:
    pixels = matplotlib.image.imread(png)
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100, pixels.shape
    assert pixels.std() > 0.05, f"{png.name} looks blank (std {pixels.std():.3f})"


SWEEP = "seeds: [0]\nworkers: 2\nspace:\n  cell.name: [rnn, lstm]\n  remedies: [[], [clip]]\n"


def test_the_report_renders_in_chromium_without_console_errors(sweep_env, tmp_path: Path) -> None:
    chromium()  # skip before training when there is no browser
    path = write(tmp_path, SWEEP, steps=8)
    result = CliRunner().invoke(cli, ["sweep", str(path)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "report"
    result = CliRunner().invoke(cli, ["report", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output

    seen = render(out / "report.html", tmp_path / "browser")

    assert seen.returncode == 0, seen.stderr[-3000:]
    assert seen.errors == [], "\n".join(seen.errors)
    assert_not_blank(seen.screenshot)
    tags = Tags()
    tags.feed(seen.dom)
    pngs = sorted(out.glob("*.png"))
    # the heatmap, flow, ratio and learning curves, and the dynamics' spectra and scatter
    assert {p.name for p in pngs} >= {"lyapunov_spectra.png", "lyapunov_scatter.png"}
    assert len(pngs) == 6 and tags.count.get("img") == len(pngs)
    assert tags.count.get("figure") == len(pngs)
    assert {"cell.name", "remedies"} <= set(tags.headers)  # the outcome table's header
    assert tags.count.get("tr", 0) >= 5  # its header and the 4 combinations
    assert "Finished: all 4 trials done." in seen.dom
    # every embedded figure decoded to an image of the size of its PNG
    expected = [list(matplotlib.image.imread(p).shape[1::-1]) for p in pngs]
    assert sorted(seen.images) == sorted(expected)


BAD_PAGES = {
    "console_error": '<script>console.error("boom")</script>',
    "uncaught": "<script>undefinedFunction()</script>",
    "missing_image": '<img src="missing.png" alt="missing">',
}


@pytest.mark.parametrize("name", sorted(BAD_PAGES))
def test_the_check_catches_console_errors(tmp_path: Path, name: str) -> None:
    """The detector fails on a page with an error, so the report's check cannot pass vacuously."""
    page = tmp_path / f"{name}.html"
    page.write_text(f"<!DOCTYPE html><html><body><h1>page</h1>{BAD_PAGES[name]}</body></html>")
    seen = render(page, tmp_path / "browser", size=(400, 300))
    assert seen.returncode == 0
    assert seen.errors, f"no error seen for {name}; events: {seen.events}"
    expected = {"console_error": "boom", "uncaught": "undefinedFunction", "missing_image": "ERR_"}
    assert any(expected[name] in e for e in seen.errors), seen.errors


def test_the_check_passes_a_clean_page(tmp_path: Path) -> None:
    page = tmp_path / "clean.html"
    page.write_text(
        "<!DOCTYPE html><html><body><h1>clean</h1>"
        '<script>console.log("only a log"); console.info("and info")</script></body></html>'
    )
    seen = render(page, tmp_path / "browser", size=(400, 300))
    assert seen.returncode == 0 and seen.errors == [], seen.errors
    assert "<h1>clean</h1>" in seen.dom
    # Chromium's own log shows console messages, but without their level
    assert "only a log" in seen.stderr
