"""The Python API, notebook-style: run the digits job through `farm.run`, read it back as pandas.

One real job (real Ray, runtimes, DuckDB) of two trials on each of SMALL_JOB's two targets, with
a label and MLflow tracking from the job's own ``[tracking]`` table. Also here: `farm jobs` at 80
columns, and `farm run` validating the whole job before it says that a job started.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from support.jobs import SMALL_JOB

import farm
from farm.api import Job
from farm.cli import main
from farm.errors import SpecError, UsageError
from farm.store.db import Store
from farm.store.records import JobRecord

LABEL = "sha-0a1b2c3"


@pytest.fixture(scope="module")
def api_job(results_dir: Path) -> Job:
    raw = tomllib.loads(SMALL_JOB)
    raw["tracking"] = {"mlflow_uri": f"file:{results_dir / 'api-mlruns'}"}
    return farm.run(raw, db=results_dir / "api.duckdb", trials=2, label=LABEL, progress=False)


def _same(frame_value: Any, stored: Any) -> bool:
    if stored is None:
        return frame_value is None or (isinstance(frame_value, float) and math.isnan(frame_value))
    if isinstance(stored, float):
        return frame_value == pytest.approx(stored)
    return bool(frame_value == stored)


def test_run_returns_the_job_and_its_trials_equal_the_store(api_job: Job) -> None:
    assert api_job.status == "completed" and api_job.name == "small" and api_job.label == LABEL
    stored = [t.to_row() for t in Store(api_job.store.path).trials(api_job.id)]
    frame = api_job.trials
    assert len(frame) == len(stored) == 4
    assert list(zip(frame["target"], frame["trial_number"], strict=True)) == [
        (r["target"], r["trial_number"]) for r in stored
    ]
    for (_, row), store_row in zip(frame.iterrows(), stored, strict=True):
        for column, value in store_row.items():
            if column in ("params", "contract"):
                assert row[column] == json.loads(value), column
            else:
                assert _same(row[column], value), (column, row[column], value)
        params = json.loads(store_row["params"])
        for knob, value in params.items():
            assert row[f"params.{knob}"] == value
    assert frame["node_ip"].notna().all()  # recorded beside the hostname
    assert list(frame["quality"]) == list(frame["accuracy"])  # the older name, kept
    assert [t.quality for t in api_job.records()] == list(frame["quality"])


def test_metrics_are_the_store_metrics_table(api_job: Job) -> None:
    rows = api_job.store.query(
        "SELECT target, trial_number, name, value FROM metrics WHERE job_id = ? "
        "ORDER BY target, trial_number, name",
        [api_job.id],
    )
    frame = api_job.metrics
    assert len(frame) == len(rows) > 0
    assert frame.to_dict("records") == rows
    assert {"accuracy", "top1_agreement"} <= set(frame["name"])


def test_fronts_per_target_and_across_targets(api_job: Job) -> None:
    stored = api_job.trial_rows()
    for target in api_job.targets:
        front = api_job.front(target)
        expected = {r["trial_number"] for r in stored if r["target"] == target and r["on_front"]}
        assert set(front["trial_number"]) == expected and expected
        assert list(front["latency_p95_ms"]) == sorted(front["latency_p95_ms"])
    overall = api_job.front()
    assert {(r.target, r.trial_number) for r in overall.itertuples()} == {
        (r["target"], r["trial_number"]) for r in stored if r["on_global_front"]
    }
    with pytest.raises(UsageError, match=r"has no target 'cpu-nope'"):
        api_job.front("cpu-nope")


def test_recommend_is_what_the_command_line_says(
    api_job: Job, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    budget = tmp_path / "budget.toml"
    budget.write_text("[all]\nmax_accuracy_drop = 0.02\n")
    rec = api_job.recommend(budget)
    assert rec.ok and set(rec.per_target) == set(api_job.targets)
    args = ["recommend", api_job.id, "--db", str(api_job.store.path), "--budget", str(budget)]
    assert main([*args, "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert cli == json.loads(json.dumps(rec.to_dict(), default=str))


def test_report_writes_the_html_page(api_job: Job, tmp_path: Path) -> None:
    path = api_job.report(tmp_path / "report.html")
    html = path.read_text(encoding="utf-8")
    assert api_job.id in html and 'id="fig-accuracy"' in html
    assert "<h2>Release history</h2>" in html


def test_open_store_lists_jobs_newest_first(api_job: Job) -> None:
    view = farm.open_store(api_job.store.path)
    jobs = view.jobs()
    assert list(jobs.columns[:4]) == ["job_id", "name", "label", "status"]
    newest = jobs.iloc[0]
    assert newest["job_id"] == api_job.id and newest["label"] == LABEL
    assert newest["trials"] == 4 and newest["completed"] == 4
    assert view.job("small").id == api_job.id
    with pytest.raises(UsageError, match=r"no farm store here"):
        farm.open_store(api_job.store.path.parent / "missing.duckdb")


def test_tracking_from_the_job_files_table_made_one_parent_run(
    api_job: Job, results_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(f"file:{results_dir / 'api-mlruns'}")
    experiment = client.get_experiment_by_name("small")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("farm.kind") == "job"]
    assert [p.info.run_name for p in parents] == [api_job.id]
    assert len(runs) == 1 + 4


def test_load_job_from_a_path_a_dict_or_nothing_sensible(tmp_path: Path) -> None:
    job_file = tmp_path / "job.toml"
    job_file.write_text(SMALL_JOB)
    assert farm.load_job(job_file) == farm.load_job(job_file)
    assert farm.load_job(tomllib.loads(SMALL_JOB)).name == "small"
    with pytest.raises(SpecError, match=r"<dict>: field `name`"):
        farm.load_job({"targets": ["cpu-onnxruntime"], "workload": {"name": "digits"}})
    with pytest.raises(UsageError, match=r"expected a job file path, a dict or a JobSpec"):
        farm.load_job(42)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"trials: expected a positive integer"):
        farm.run(job_file, trials=0, progress=False)


def test_run_help_lists_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "--mlflow URI" in out and "--label" in out and "--address" in out


def test_cli_flags_reach_the_api(monkeypatch: pytest.MonkeyPatch) -> None:
    from farm import api

    seen: dict[str, Any] = {}

    def done() -> Any:
        record = JobRecord(job_id="j", name="j", spec={}, status="completed")
        store = SimpleNamespace(comparisons=lambda job_id: {})
        return SimpleNamespace(
            id="j",
            status="completed",
            messages=[],
            record=record,
            records=list,
            unmeasured={},
            store=store,
        )

    def fake(kind: str) -> Any:
        def call(ref: str, **kw: Any) -> Any:
            seen[kind] = (ref, kw)
            return done()

        return call

    monkeypatch.setattr(api, "run", fake("run"))
    monkeypatch.setattr(api, "resume", fake("resume"))
    args = ["--mlflow", "file:/x", "--trials", "3", "--address", "auto", "--db", "d.duckdb"]
    assert main(["run", "job.toml", *args, "--label", "v1"]) == 0
    assert main(["resume", "j", *args]) == 0
    common = {"mlflow": "file:/x", "trials": 3, "address": "auto", "db": "d.duckdb"}
    assert seen["run"] == ("job.toml", {**common, "label": "v1"})
    assert seen["resume"] == ("j", common)


# -- terminal tables -------------------------------------------------------------------------


def test_farm_jobs_at_80_columns_keeps_whole_ids_and_names(api_job: Job) -> None:
    from rich.console import Console

    from farm.commands.jobs import print_jobs

    jobs = farm.open_store(api_job.store.path).job_records()
    long = dataclasses.replace(
        jobs[0], job_id="resnet18-imagefolder-20261129-211337-cdef", name="resnet18-imagefolder"
    )
    for rows in (jobs, [*jobs, long]):
        console = Console(width=80, record=True)
        print_jobs(console, rows)
        lines = console.export_text().splitlines()
        assert max(len(line) for line in lines) <= 80
        for job in rows:
            assert any(job.job_id in line for line in lines), job.job_id
            assert any(job.name in line for line in lines)
    wide = Console(width=200, record=True)
    print_jobs(wide, jobs)
    text = wide.export_text()
    assert "created_at" in text and LABEL in text  # room: every column


def test_a_bad_onnx_file_exits_2_before_any_job_starts(
    api_job: Job, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad.onnx").write_bytes(b"this is not a protobuf")
    job_file = tmp_path / "job.toml"
    job_file.write_text(
        'name = "bad"\ntargets = ["cpu-onnxruntime"]\n[workload]\nonnx = "bad.onnx"\n'
    )
    db = tmp_path / "f.duckdb"
    assert main(["run", str(job_file), "--db", str(db)]) == 2
    out = capsys.readouterr()
    assert "bad.onnx is not a valid ONNX model" in out.err
    assert "started" not in out.out and "job bad-" not in out.out
    assert not db.exists()  # nothing written
