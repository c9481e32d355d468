"""Multi-node jobs and faults on a real Ray cluster of several nodes on this machine.

Each node advertises its own target resources (as `ray start --resources` does on a fleet). A
worker killed mid-trial: ``tests/e2e/test_killed_workers.py``; the runner's retry logic alone:
``tests/unit/engine/``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.jobs import start_driver, wait_for_trials

from farm.engine.runner import JobRunner
from farm.spec.job import JobSpec, parse_job
from farm.store.db import Store

pytestmark = pytest.mark.slow

FAST_FAILURE_DETECTION = {"health_check_period_ms": 500, "health_check_failure_threshold": 3}


def spec_for(targets: list[str], trials: int, **search: object) -> JobSpec:
    raw = {
        "name": "fleet",
        "targets": targets,
        "workload": {"name": "digits"},
        "search": {
            "trials_per_target": trials,
            "seed": 3,
            "precision": ["fp32"],
            "batch_size": [1, 2, 4, 8],
            "threads": [1],
            **search,
        },
        "measurement": {"min_duration_s": 0.2, "max_duration_s": 0.5, "min_samples": 32},
    }
    return parse_job(raw, source="fleet.toml")


@pytest.fixture
def cluster() -> Iterator[object]:
    import ray
    from ray.cluster_utils import Cluster

    ray.shutdown()
    c = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "_system_config": FAST_FAILURE_DETECTION},
    )
    yield c
    ray.shutdown()
    c.shutdown()


def connect(c: object) -> None:
    import ray

    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False)


def node_ids_by_resource(resource: str) -> set[str]:
    import ray

    return {n["NodeID"] for n in ray.nodes() if n["Alive"] and resource in n["Resources"]}


def test_three_nodes_each_run_only_their_own_target(cluster: object, results_dir: Path) -> None:
    targets = ["cpu-torch", "cpu-onnxruntime", "cpu-openvino"]
    for t in targets:  # each node also holds the slot that makes it exclusive across jobs
        cluster.add_node(num_cpus=1, resources={f"target:{t}": 1, "farm:node": 1})
    connect(cluster)
    store = Store(results_dir / "fleet3.duckdb")
    runner = JobRunner(spec_for(targets, 2), store)
    assert runner.run() == "completed"
    trials = store.trials(runner.job_id)
    assert len(trials) == 6
    for t in trials:
        assert t.status == "completed", t.error
        assert t.node_id in node_ids_by_resource(f"target:{t.target}")
    assert len({t.node_id for t in trials}) == 3


def test_a_mislabelled_node_fails_trials_instead_of_measuring(
    cluster: object, results_dir: Path
) -> None:
    cluster.add_node(num_cpus=1, resources={"target:arm64-onnxruntime": 1})  # but it is x86_64
    connect(cluster)
    store = Store(results_dir / "mislabelled.duckdb")
    runner = JobRunner(spec_for(["arm64-onnxruntime"], 3), store)
    assert runner.run() == "failed"  # its only target measured nothing
    trials = store.trials(runner.job_id)
    assert trials and all(t.status == "failed" for t in trials)
    assert "refusing to measure" in trials[0].error and "aarch64" in trials[0].error
    assert all(t.latency_p50_ms is None and t.quality is None for t in trials)
    message = store.resolve_job(runner.job_id).message or ""
    assert "arm64-onnxruntime: nothing measured" in message and "capacity lost" in message


def test_a_lost_node_moves_work_or_reports_lost_capacity(
    cluster: object, results_dir: Path
) -> None:
    onnx_a = cluster.add_node(num_cpus=1, resources={"target:cpu-onnxruntime": 1})
    cluster.add_node(num_cpus=1, resources={"target:cpu-onnxruntime": 1})
    ov_only = cluster.add_node(num_cpus=1, resources={"target:cpu-openvino": 1})
    connect(cluster)
    store = Store(results_dir / "lost.duckdb")
    runner = JobRunner(spec_for(["cpu-onnxruntime", "cpu-openvino"], 4), store)
    thread = threading.Thread(target=runner.run)
    thread.start()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and len(runner.records) < 3:
        time.sleep(0.1)
    cluster.remove_node(onnx_a)
    cluster.remove_node(ov_only)
    thread.join(timeout=300)
    assert not thread.is_alive()
    job = store.resolve_job(runner.job_id)
    assert job.status == "completed"
    assert "cpu-openvino: lost capacity" in job.message
    trials = store.trials(runner.job_id)
    keys = [(t.target, t.trial_number) for t in trials]
    assert len(keys) == len(set(keys))  # every trial exactly once
    assert all(t.status in ("completed", "failed") for t in trials)
    onnx = [t for t in trials if t.target == "cpu-onnxruntime"]
    assert len(onnx) == 4 and all(t.status == "completed" for t in onnx)


def test_resume_after_the_driver_is_killed(tmp_path: Path, results_dir: Path) -> None:
    import ray

    ray.shutdown()
    job_file = tmp_path / "job.toml"
    job_file.write_text(
        'name = "resumable"\ntargets = ["cpu-onnxruntime"]\n[workload]\nname = "digits"\n'
        '[search]\ntrials_per_target = 6\nprecision = ["fp32"]\nbatch_size = [1, 2, 4, 8, 16, 32]\n'
        "threads = [1]\n[measurement]\nmin_duration_s = 0.2\nmax_duration_s = 0.5\n"
        "min_samples = 32\n"
    )
    db = results_dir / "resume.duckdb"
    driver = start_driver(
        job_file, db, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    wait_for_trials(db, 2, driver, timeout=240)
    store = Store(db)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and everything it started
    driver.wait()
    job = store.jobs()[0]
    before = {t.trial_number: t.finished_at for t in store.trials(job.job_id)}
    assert job.status == "running" and 2 <= len(before) < 6

    from farm.cli import main

    assert main(["resume", job.job_id, "--db", str(db)]) == 0
    trials = store.trials(job.job_id)
    assert [t.trial_number for t in trials] == list(range(6))
    assert all(t.status == "completed" for t in trials)
    for number, finished in before.items():  # stored trials were told again, not re-run
        assert trials[number].finished_at == finished
    assert store.resolve_job(job.job_id).status == "completed"
    assert main(["resume", job.job_id, "--db", str(db)]) == 2  # nothing left to resume
