"""Local HTTP servers as child processes, for ``rnnlab ui``: started each in its own session
(process group), waited for until they answer HTTP, and stopped with every process of their group
(SIGTERM, up to STOP_TIMEOUT_S, then SIGKILL); SIGTERM and SIGHUP turned into :class:`Stop` while
they serve. Standard library and click only.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import click

READY_TIMEOUT_S = 60.0
"""How long a server may take to answer HTTP (MEASURED.md: MLflow's takes 10-18 s here)."""
STOP_TIMEOUT_S = 10.0
"""How long a server's group has after SIGTERM before it gets SIGKILL."""

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
"""An opener that ignores the *_proxy variables: every server here is on this machine."""


class Stop(Exception):
    """SIGTERM or SIGHUP arrived: stop as for Ctrl-C."""


@dataclass
class Server:
    name: str
    url: str
    proc: subprocess.Popen[bytes]
    log: IO[bytes]

    def tail(self, lines: int = 25) -> str:
        self.log.flush()
        size = self.log.seek(0, os.SEEK_END)
        self.log.seek(max(0, size - 8000))
        text = self.log.read().decode(errors="replace")
        return "\n".join(text.splitlines()[-lines:]) or "(no output)"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def http_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def probe_host(host: str) -> str:
    """Where to knock (and what to open): a wildcard address answers on loopback too."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def port_free(host: str, port: int) -> bool:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM
        )[0]
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
            sock.bind(address)
    except OSError:
        return False
    return True


def _answers(url: str) -> bool:
    try:
        NO_PROXY.open(url, timeout=2).close()
    except urllib.error.HTTPError:
        return True  # any HTTP answer, even an error page, means it is up
    except OSError:
        return False
    return True


def start(name: str, command: list[str], url: str, env: dict[str, str]) -> Server:
    log = tempfile.TemporaryFile()  # noqa: SIM115 (kept open while the server runs)
    proc = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,  # its own process group: Ctrl-C is ours to pass on
    )
    return Server(name, url, proc, log)


def wait_ready(servers: list[Server], probes: dict[str, str]) -> str | None:
    """None once every server answers HTTP; else what went wrong, with the server's output."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    pending = list(servers)
    while pending:
        for server in list(pending):
            code = server.proc.poll()
            if code is not None:
                return (
                    f"the {server.name} exited (code {code}) before it answered:\n{server.tail()}"
                )
            if _answers(probes[server.name]):
                pending.remove(server)
        if pending and time.monotonic() > deadline:
            server = pending[0]
            return (
                f"the {server.name} did not answer at {server.url} within "
                f"{READY_TIMEOUT_S:.0f} s; its output:\n{server.tail()}"
            )
        if pending:
            time.sleep(0.25)
    return None


def group_alive(pgid: int) -> bool:
    """Whether any process of the group lives (zombies left for a lazy init do not count)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            state, _ppid, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError, ValueError):
            continue
        if int(pgrp) == pgid and state != "Z":
            return True
    return False


def _signal_group(server: Server, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(server.proc.pid, signum)  # start_new_session: the group id is the leader's pid


def stop_all(servers: list[Server]) -> None:
    for server in servers:
        _signal_group(server, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while True:
        for server in servers:
            server.proc.poll()  # reap the leader so that it stops counting
        alive = [s for s in servers if group_alive(s.proc.pid)]
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for server in alive:
        click.echo(f"The {server.name} ignored SIGTERM for {STOP_TIMEOUT_S:.0f} s: killing it.")
        _signal_group(server, signal.SIGKILL)
    for server in servers:
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.proc.wait(timeout=5)
        server.log.close()


def on_signals(handler: Callable[[int, Any], None] | int) -> dict[int, Any]:
    """Set ``handler`` for SIGINT/SIGTERM/SIGHUP; the previous ones (none off the main thread)."""
    previous: dict[int, Any] = {}
    try:
        for signum in (signal.SIGTERM, signal.SIGHUP):
            previous[signum] = signal.signal(signum, handler)
        if handler == signal.SIG_IGN:
            previous[signal.SIGINT] = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: signals are not ours to handle
        pass
    return previous


def raise_stop(signum: int, frame: Any) -> None:
    raise Stop(signal.Signals(signum).name)


def restore(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)
