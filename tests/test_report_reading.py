"""The report's bulk reading of metric histories (issue 21), on a real sqlite MLflow store: the
bulk queries return what MLflow's public per-run reads return, and are really taken."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric

from rnnlab.report import _histories
from rnnlab.report._histories import bulk_reader, histories, history

KEYS = ("val/loss", "grad/log10_ratio", "grad/target/log10_ratio")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[MlflowClient, list[str]]:
    """Four runs: different steps per key, logged out of order, a repeated step, and one run
    with no history of one key."""
    folder = tmp_path_factory.mktemp("store")
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.create_experiment("bulk", artifact_location=str(folder / "artifacts"))
    runs = []
    for r in range(4):
        run = client.create_run(experiment).info.run_id
        metrics = []
        for k, key in enumerate(KEYS):
            if r == 3 and k == 2:
                continue  # no target ratio in this run
            for step in (30, 0, 10, 20)[: 2 + (r + k) % 3]:
                metrics.append(Metric(key, r + k / 10 + step / 1000, 1000 + step, step))
        metrics.append(Metric(KEYS[0], 9.0 + r, 5000, 10))  # a step logged twice
        client.log_batch(run, metrics=metrics)
        runs.append(run)
    return client, runs


class PublicOnly:
    """A client with MLflow's public reads alone (as a tracking server's REST store)."""

    def __init__(self, client: MlflowClient) -> None:
        self.client = client

    def get_metric_history(self, run_id: str, key: str) -> Any:
        return self.client.get_metric_history(run_id, key)


def _public(client: MlflowClient, runs: list[str]) -> dict[tuple[str, str], list]:
    return {(r, k): history(client, r, k) for r in runs for k in KEYS}


def test_bulk_reads_equal_the_public_reads(store, monkeypatch: pytest.MonkeyPatch) -> None:
    client, runs = store
    expected = _public(client, runs)
    assert expected[runs[3], KEYS[2]] == [] and len(expected[runs[0], KEYS[0]]) == 3
    assert bulk_reader(client) is not None  # sqlite answers bulk queries
    monkeypatch.setattr(_histories, "CHUNK", 3)  # 4 runs: two chunks per key
    calls: list[tuple[int, str]] = []
    bulk = bulk_reader(client)

    def counted(run_ids: list[str], key: str, limit: int) -> Any:
        calls.append((len(run_ids), key))
        return bulk(run_ids, key, limit)

    monkeypatch.setattr(_histories, "bulk_reader", lambda c: counted)
    monkeypatch.setattr(client, "get_metric_history", _refuse)  # no per-run read may happen
    assert histories(client, runs, KEYS) == expected
    assert sorted(calls) == sorted([(3, k) for k in KEYS] + [(1, k) for k in KEYS])


def _refuse(*args: Any) -> Any:
    raise AssertionError("a per-run read where a bulk read was possible")


def test_without_bulk_reads_it_reads_each_run(store) -> None:
    client, runs = store
    public = PublicOnly(client)
    assert bulk_reader(public) is None
    assert histories(public, runs, KEYS, threads=3) == _public(client, runs)


def test_a_bulk_read_at_its_limit_is_read_again_run_by_run(
    store, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, runs = store
    expected = _public(client, runs)
    monkeypatch.setattr(_histories, "BULK_LIMIT", 4)  # every key has more values: truncated
    assert histories(client, runs, KEYS) == expected


def test_unknown_runs_have_empty_histories(store) -> None:
    client, runs = store
    found = histories(client, [runs[0], "0" * 32], KEYS[:1])
    assert found[("0" * 32, KEYS[0])] == [] and found[(runs[0], KEYS[0])]


def test_artifacts_are_read_in_place_from_a_local_store_and_downloaded_otherwise(
    tmp_path: Path, store: tuple[MlflowClient, list[str]]
) -> None:
    """The report reads a run's npz files where a local store keeps them (issue 21: MLflow's
    download per file was ~3.7 s of the flagship's report) and the bytes are the artifact's;
    a run it cannot place (no run read, a server's URI) is downloaded through MLflow, and a
    missing artifact is None either way."""
    from rnnlab.report._artifacts import artifact_file, local_folder

    client, runs = store
    source = tmp_path / "gradient_flow.npz"
    source.write_bytes(b"npz bytes")
    client.log_artifact(runs[0], str(source))
    run = client.get_run(runs[0])
    downloads = tmp_path / "downloads"
    downloads.mkdir()

    in_place = artifact_file(client, run, runs[0], "gradient_flow.npz", downloads)
    assert in_place is not None and in_place.read_bytes() == b"npz bytes"
    assert in_place.parent == Path(run.info.artifact_uri)  # not a copy in ``downloads``
    assert list(downloads.iterdir()) == []
    assert artifact_file(client, run, runs[0], "dynamics.npz", downloads) is None

    fetched = artifact_file(client, None, runs[0], "gradient_flow.npz", downloads)
    assert fetched is not None and fetched.is_relative_to(downloads)
    assert fetched.read_bytes() == b"npz bytes"
    assert artifact_file(client, None, runs[0], "dynamics.npz", downloads) is None

    folder = Path(run.info.artifact_uri)
    assert local_folder(str(folder)) == folder
    assert local_folder(folder.as_uri()) == folder
    for elsewhere in ("mlflow-artifacts:/1/abc/artifacts", "s3://bucket/1/abc", "mlruns/1/abc"):
        assert local_folder(elsewhere) is None
    assert local_folder(str(tmp_path / "moved")) is None
