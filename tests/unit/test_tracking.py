"""MLflow tracking against a local file store: a parent run per job, a nested run per trial whose
metrics equal the store's; a server that cannot be reached is one warning, never a lost job."""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from support.jobs import SmallJob

from farm.store.db import Store
from farm.tracking import track_job, trial_metrics


@pytest.fixture
def client_for(monkeypatch: pytest.MonkeyPatch) -> Any:
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow >= 3.7 asks for it
    return MlflowClient


def _runs(client: Any, name: str) -> list[Any]:
    experiment = client.get_experiment_by_name(name)
    return list(client.search_runs([experiment.experiment_id], max_results=1000))


def test_one_parent_run_and_a_nested_run_per_trial_with_the_store_metrics(
    small_job: SmallJob, tmp_path: Path, client_for: Any
) -> None:
    uri = f"file:{tmp_path / 'mlruns'}"
    store = Store(small_job.db)
    parent_id = track_job(store, small_job.job_id, uri)
    assert parent_id is not None
    client = client_for(uri)
    runs = _runs(client, "small")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent_id]
    trials = store.trials(small_job.job_id)
    assert [p.info.run_id for p in parents] == [parent_id]
    assert len(children) == len(trials) == len(runs) - 1

    by_key = {c.data.tags["farm.trial"]: c for c in children}
    for trial in trials:
        run = by_key[f"{trial.target}#{trial.trial_number}"]
        expected = trial_metrics(trial)
        assert {"latency_p95_ms", "cost_per_1k_usd", "accuracy", "quality/top1_agreement"} <= set(
            expected
        )
        assert expected["accuracy"] == trial.quality  # the primary metric, under its column
        assert expected["quality/top1_agreement"] == trial.metrics["top1_agreement"]
        assert run.data.metrics == pytest.approx(expected)
        params = run.data.params
        assert params["target"] == trial.target and params["node"] == trial.node_host
        assert params["node_ip"] == str(trial.node_ip)
        for knob, value in trial.params.items():
            assert params[knob] == (value if isinstance(value, str) else json.dumps(value))
        assert trial.contract is not None
        assert params["contract.min_samples"] == json.dumps(trial.contract["min_samples"])
        assert run.data.tags["target"] == trial.target
        assert run.data.tags["node_host"] == trial.node_host
        assert run.info.status == "FINISHED"

    parent = client.get_run(parent_id)
    assert parent.info.run_name == small_job.job_id and parent.info.status == "FINISHED"
    assert parent.data.params["name"] == "small"
    assert json.loads(parent.data.params["targets"]) == ["cpu-onnxruntime", "cpu-openvino"]
    artifacts = {a.path for a in client.list_artifacts(parent_id)}
    assert {"spec.json", "environments.json", "fronts.json", "report.html"} <= artifacts
    fronts = json.loads(Path(client.download_artifacts(parent_id, "fronts.json")).read_text())
    on_front = {(t.target, t.trial_number) for t in trials if t.on_front}
    assert {
        (t, r["trial_number"]) for t, rs in fronts["per_target"].items() for r in rs
    } == on_front

    # Syncing again (e.g. after `farm resume`) logs nothing twice.
    assert track_job(store, small_job.job_id, uri) == parent_id
    assert len(_runs(client, "small")) == len(runs)


def test_an_unreachable_server_is_one_warning_and_nothing_else(
    small_job: SmallJob, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free: nothing answers there
    started = time.monotonic()
    assert track_job(Store(small_job.db), small_job.job_id, f"http://127.0.0.1:{port}") is None
    assert time.monotonic() - started < 30  # no retry storm
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"farm: warning: MLflow tracking to http://127.0.0.1:{port} failed")
    assert "no tracking server answers there" in err[0] and "in the store" in err[0]


def test_without_the_mlflow_package_it_is_one_warning(
    small_job: SmallJob, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` raises ImportError
    assert track_job(Store(small_job.db), small_job.job_id, "file:./never") is None
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'cv-farm[tracking]'" in err[0]
    assert not Path("never").exists()
