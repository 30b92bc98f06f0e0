"""Which MLflow UI the report's rows link to: the tracking server itself, or a UI running now on
the sweep's store (``rnnlab ui`` on any port, which records itself in ``rnnlab._names.UI_RECORDS``,
or ``mlflow ui`` on the default address). A UI counts only if it knows one of the sweep's runs:
a UI on another store would give links that open nothing."""

from __future__ import annotations

import json
import os
import urllib.parse
import urllib.request
from collections.abc import Iterable

from rnnlab._names import DEFAULT_UI, ui_records_dir

TIMEOUT_S = 0.5
"""How long a UI on loopback has to answer whether it knows the run."""

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def recorded_uis() -> list[str]:
    """The URLs of the ``rnnlab ui`` processes that say they are serving, newest first (a record
    whose process is gone, e.g. killed with SIGKILL, is passed over)."""
    try:
        records = sorted(ui_records_dir().glob("*.json"), key=lambda p: -p.stat().st_mtime)
    except OSError:
        return []
    urls = []
    for path in records:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and _alive(record.get("pid")):
            urls.append(str(record.get("url", "")).rstrip("/"))
    return [u for u in urls if u.startswith(("http://", "https://"))]


def knows_run(ui: str, run_id: str) -> bool:
    """Whether the MLflow UI at ``ui`` answers for ``run_id`` (its REST API's runs/get)."""
    query = urllib.parse.urlencode({"run_id": run_id})
    try:
        _NO_PROXY.open(f"{ui}/api/2.0/mlflow/runs/get?{query}", timeout=TIMEOUT_S).close()
    except (OSError, ValueError):  # HTTPError (404: another store) is an OSError
        return False
    return True


def run_links_base(tracking_uri: str, run_ids: Iterable[str | None]) -> str | None:
    """The MLflow UI the rows link to: the tracking server itself, else the first running UI
    (recorded ``rnnlab ui`` processes, then the default address) that knows the first of
    ``run_ids``; None when none does (the rows then show run ids)."""
    if tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/")
    known = next((r for r in run_ids if r), None)
    if known is None:
        return None
    for ui in dict.fromkeys([*recorded_uis(), DEFAULT_UI]):
        if knows_run(ui, known):
            return ui
    return None
