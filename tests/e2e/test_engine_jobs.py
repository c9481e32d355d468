"""A real job end to end: real Ray, real runtimes, real DuckDB."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import duckdb
import numpy as np
import pytest
from support.jobs import SMALL_JOB, SmallJob, start_driver, wait_for_trials

from farm.engine.runner import JobRunner
from farm.spec.job import parse_job
from farm.store.db import Store
from farm.store.records import TrialRecord


def rows(db: Path, sql: str, *params: object) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


def test_small_job_lands_complete_rows(small_job: SmallJob) -> None:
    db, job = small_job.db, small_job.job_id
    assert rows(db, "SELECT status FROM jobs WHERE job_id = ?", job) == [("completed",)]
    records = Store(db).trials(job)
    assert {(t.target, t.trial_number) for t in records} == {
        (t, n) for t in ("cpu-onnxruntime", "cpu-openvino") for n in range(3)
    }
    for t in records:
        assert t.completed, t.error
        assert t.quality is not None and 0.9 <= t.quality <= 1.0
        assert t.quality_metric == "accuracy" and t.metric("accuracy") == t.quality
        assert t.latency_p50_ms and t.latency_p95_ms and t.latency_p99_ms
        assert 0 < t.latency_p50_ms <= t.latency_p95_ms <= t.latency_p99_ms
        assert t.throughput_ips and t.cost_per_1k_usd and t.cost_per_1k_usd > 0
        assert t.precision_actual in ("fp32", "bf16", "int8+fp32", "f32")
        assert t.contract is not None and t.contract["scenario"] == "single-stream"
        assert t.peak_rss_mb and t.peak_rss_mb > 10  # MiB
        n = rows(
            db,
            "SELECT count(*) FROM latency_samples WHERE job_id = ? AND target = ? "
            "AND trial_number = ?",
            job,
            t.target,
            t.trial_number,
        )[0][0]
        assert n == t.n_samples and n > 0
    # every measurement references a stored environment
    envs = {r[0] for r in rows(db, "SELECT env_id FROM environments")}
    assert {t.env_id for t in records} <= envs
    accuracy = rows(db, "SELECT count(*) FROM metrics WHERE job_id = ? AND name = 'accuracy'", job)
    assert accuracy[0][0] == len(records)
    # the compatibility columns hold the primary metric too
    compat = rows(db, "SELECT count(*) FROM trials WHERE job_id = ? AND accuracy = quality", job)
    assert compat[0][0] == len(records)


def test_each_study_starts_with_the_fp32_batch1_baseline(small_job: SmallJob) -> None:
    for t in Store(small_job.db).trials(small_job.job_id, "trial_number = 0"):
        assert t.is_baseline and t.params["precision"] == "fp32" and t.params["batch_size"] == 1
        assert t.quality_drop == 0.0


def test_on_front_is_the_non_dominated_feasible_set(small_job: SmallJob) -> None:
    records = Store(small_job.db).trials(small_job.job_id)
    for target in {t.target for t in records}:
        mine = [t for t in records if t.target == target]
        ok = [t for t in mine if t.completed and t.feasible]

        def point(t: TrialRecord) -> np.ndarray:
            return np.array([t.quality, -(t.latency_p95_ms or 0), -(t.cost_per_1k_usd or 0)])

        expected = set()
        for a in ok:
            dominated = any(
                np.all(point(b) >= point(a)) and np.any(point(b) > point(a)) for b in ok
            )
            if not dominated:
                expected.add(a.trial_number)
        assert {t.trial_number for t in mine if t.on_front} == expected
        assert expected, "a job with feasible trials has a non-empty front"


def test_feasibility_follows_the_accuracy_drop_constraint(small_job: SmallJob) -> None:
    for t in Store(small_job.db).trials(small_job.job_id):
        assert t.quality_drop is not None
        assert t.feasible == (t.quality_drop <= 0.02 + 1e-12)


def small_spec(**search: object) -> object:
    raw = tomllib.loads(SMALL_JOB)
    raw["targets"] = ["cpu-onnxruntime"]
    raw["search"].update(search)
    return parse_job(raw, source="test.toml")


def test_a_write_waits_for_a_read_only_connection_of_the_same_process(tmp_path: Path) -> None:
    """DuckDB refuses a read-write connection while the same process holds a read-only one
    ("different configuration than existing connections"): the driver's write must wait for a
    reader in its own process (a notebook, the live-read test below), not fail the job."""
    from farm.store.db import connect

    db = tmp_path / "farm.duckdb"
    Store(db).set_job_status("nothing", "completed")  # creates the store
    reader = duckdb.connect(str(db), read_only=True)
    closer = threading.Timer(0.5, reader.close)
    closer.start()
    start = time.monotonic()
    with connect(db) as con:
        con.execute("SELECT 1")
    assert time.monotonic() - start >= 0.4  # it waited for the reader, then wrote
    closer.join()


def test_pareto_and_jobs_read_the_store_while_a_job_runs(results_dir: Path) -> None:
    store = Store(results_dir / "live.duckdb")
    runner = JobRunner(small_spec(trials_per_target=4), store)
    thread = threading.Thread(target=runner.run)
    thread.start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (
            store.path.exists() and _stored(store, runner.job_id) >= 1
        ):
            time.sleep(0.2)
        assert thread.is_alive(), "the job finished before it could be read while running"
        cmd = [sys.executable, "-m", "farm.cli", "pareto", runner.job_id, "--db", str(store.path)]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert "(running)" in out.stdout and "cpu-onnxruntime" in out.stdout
        cmd = [sys.executable, "-m", "farm.cli", "jobs", "--json", "--db", str(store.path)]
        jobs = json.loads(subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout)
        assert jobs[0]["job_id"] == runner.job_id and jobs[0]["status"] == "running"
    finally:
        thread.join(timeout=300)
    assert store.resolve_job(runner.job_id).status == "completed"


def _stored(store: Store, job_id: str) -> int:
    try:
        return len(store.trials(job_id))
    except Exception:
        return 0


def test_pareto_json_and_unknown_job(
    small_job: SmallJob, capsys: pytest.CaptureFixture[str]
) -> None:
    from farm.cli import main

    assert main(["pareto", small_job.job_id, "--db", str(small_job.db), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["per_target"]) == {"cpu-onnxruntime", "cpu-openvino"}
    assert all(t["on_front"] for ts in out["per_target"].values() for t in ts)
    assert main(["pareto", "no-such-job", "--db", str(small_job.db)]) == 2
    assert "no job matches" in capsys.readouterr().err
    assert main(["jobs", "--db", str(small_job.db.parent / "missing.duckdb")]) == 2


@pytest.mark.slow
def test_ctrl_c_marks_the_job_interrupted_and_keeps_finished_trials(
    tmp_path: Path, results_dir: Path
) -> None:
    import os
    import signal

    job_file = tmp_path / "job.toml"
    job_file.write_text(SMALL_JOB.replace("trials_per_target = 3", "trials_per_target = 8"))
    db = results_dir / "ctrl-c.duckdb"
    driver = start_driver(job_file, db, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    wait_for_trials(db, 1, driver, timeout=240)
    store = Store(db)
    assert driver.poll() is None, "the job ended before it could be interrupted"
    os.kill(driver.pid, signal.SIGINT)
    out, _ = driver.communicate(timeout=120)
    assert driver.returncode == 130, out
    job = store.jobs()[0]
    assert job.status == "interrupted" and "interrupted" in job.message
    kept = store.trials(job.job_id)
    assert 1 <= len(kept) < 16 and all(t.status in ("completed", "failed") for t in kept)


def test_the_time_budget_stops_new_trials(results_dir: Path) -> None:
    store = Store(results_dir / "budget.duckdb")
    runner = JobRunner(small_spec(trials_per_target=3, time_budget_s=1e-6), store)
    assert runner.run() == "failed"  # nothing was measured: not a success
    assert store.trials(runner.job_id) == []
    message = store.resolve_job(runner.job_id).message
    assert "cpu-onnxruntime: nothing measured: time budget of 1e-06 s reached" in message


def test_the_local_node_is_exclusive_across_jobs(small_job: SmallJob) -> None:
    """A local start gives the node its `farm:node` unit, and every farm task asks for it."""
    import ray

    from farm.cluster.leases import NODE_SLOT, node_slot
    from farm.cluster.lifecycle import alive_nodes, start_or_connect

    start_or_connect(None)
    nodes = alive_nodes()
    assert nodes and all(n.slotted for n in nodes)
    assert node_slot(nodes[0]) == {NODE_SLOT: 1.0}
    assert ray.cluster_resources()[NODE_SLOT] == len(nodes)
