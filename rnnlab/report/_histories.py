"""Metric histories of many runs at once: one query per metric key instead of one per run and key.

MLflow's public client reads a history one run at a time (``MlflowClient.get_metric_history``);
the flagship's 76 trained runs x 3 keys were 228 reads. MLflow's SQL store (sqlite, and any
database URI) also answers ``get_metric_history_bulk(run_ids, key, max_results)``, the query
behind the tracking server's ``/metrics/get-history-bulk`` endpoint that the MLflow UI charts
with. That method is not on the public client, so this module reaches the client's store
(``client._tracking_client.store``, MLflow 3.x): a deviation from MLflow's public API, kept to
this one function and guarded, so that a store without it (a tracking server's REST store, or a
later MLflow that renames it) falls back to the public per-run reads, run in threads. Either
way the histories are the same lists of ``(step, value)``, sorted (tests/test_report_reading.py
compares the two on a real store).
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

History = list[tuple[int, float]]

CHUNK = 500
"""Run ids per bulk query (an SQL ``IN`` list; sqlite allows 32766 variables, older ones 999)."""
BULK_LIMIT = 5_000_000
"""Values one bulk query may return; a chunk that reaches it is read run by run instead (the
store truncates silently at the limit)."""


def bulk_reader(client: Any) -> Any:
    """The store's ``get_metric_history_bulk``, or None when the store has none."""
    store = getattr(getattr(client, "_tracking_client", None), "store", None)
    method = getattr(store, "get_metric_history_bulk", None)
    return method if callable(method) else None


def history(client: Any, run_id: str, key: str) -> History:
    """One run's history of ``key`` by the public client, sorted by step (then value)."""
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def histories(
    client: Any, run_ids: Iterable[str], keys: Iterable[str], threads: int = 8
) -> dict[tuple[str, str], History]:
    """Every ``(run_id, key)``'s history, sorted by step (then value); an empty list where the
    run logged none. One bulk query per key and :data:`CHUNK` runs where the store answers them
    (:func:`bulk_reader`), else one public read per run and key on ``threads`` threads."""
    runs, names = list(dict.fromkeys(run_ids)), list(dict.fromkeys(keys))
    found: dict[tuple[str, str], History] = {(r, k): [] for r in runs for k in names}
    todo: list[tuple[str, str]] = []
    bulk = bulk_reader(client)
    for key in names:
        for start in range(0, len(runs), CHUNK):
            chunk = runs[start : start + CHUNK]
            if bulk is None:
                todo += [(r, key) for r in chunk]
                continue
            rows = bulk(chunk, key, BULK_LIMIT)
            if len(rows) >= BULK_LIMIT:  # maybe truncated: read these runs one by one
                todo += [(r, key) for r in chunk]
                continue
            for row in rows:
                found[(row.run_id, key)].append((row.step, row.value))
    for values in found.values():
        values.sort()
    if todo:
        with ThreadPoolExecutor(threads) as pool:
            read = pool.map(lambda pair: history(client, *pair), todo)
            found.update(zip(todo, read, strict=True))
    return found
