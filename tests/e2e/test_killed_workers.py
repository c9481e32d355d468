"""Ray-level faults on a real cluster, caused from outside the farm: a worker process killed
mid-trial (as an OOM kill would) is the system's failure, retried; one killed on every attempt
fails its trial after the last. The toy runtime holds chosen compiles until the test kills the
worker process that says it is holding (no hook in the farm's code)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import toy_plugins

from farm.engine.runner import MAX_ATTEMPTS, JobRunner
from farm.spec.job import parse_job
from farm.store.db import Store

pytestmark = pytest.mark.slow


@pytest.fixture
def toy() -> Iterator[None]:
    import ray

    ray.shutdown()
    toy_plugins.register()
    try:
        yield
    finally:
        ray.shutdown()
        toy_plugins.unregister()


def kill_held_workers(directory: Path, stop: threading.Event, killed: list[int]) -> None:
    """Kill every worker process that says it is holding a compile, until ``stop``."""
    while not stop.wait(0.1):
        for held in directory.glob("held-*"):
            pid = int(held.name.removeprefix("held-"))
            os.kill(pid, signal.SIGKILL)
            killed.append(int(held.read_text()))
            held.unlink()


def test_a_killed_worker_is_retried_and_one_killed_every_time_is_given_up(
    toy: None, results_dir: Path, tmp_path: Path
) -> None:
    # one node, one trial at a time: compile 1 is trial 0's first attempt (killed; its second,
    # compile 2, completes); compiles 3-5 are trial 1's three attempts (all killed); compile 6
    # is trial 2's
    toy_plugins.ToyRuntime.hold(tmp_path, {1, 3, 4, 5})
    spec = parse_job(
        {
            "name": "killed",
            "targets": ["cpu-toy"],
            "workload": {"name": "digits"},
            "search": {
                "trials_per_target": 3,
                "seed": 3,
                "precision": ["fp32"],
                "batch_size": [1, 2, 4],
                "threads": [1],
            },
            "measurement": {"min_duration_s": 0.1, "max_duration_s": 0.3, "min_samples": 16},
        },
        source="killed.toml",
    )
    store = Store(results_dir / "killed.duckdb")
    runner = JobRunner(spec, store)
    stop, killed = threading.Event(), []  # type: ignore[var-annotated]
    watcher = threading.Thread(target=kill_held_workers, args=(tmp_path, stop, killed))
    watcher.start()
    try:
        assert runner.run() == "completed"
    finally:
        stop.set()
        watcher.join()
    assert sorted(killed) == [1, 3, 4, 5]
    trials = {r.trial_number: r for r in store.trials(runner.job_id)}
    assert sorted(trials) == [0, 1, 2]
    assert trials[0].completed and trials[0].attempts == 2
    assert trials[1].status == "failed" and trials[1].attempts == MAX_ATTEMPTS
    assert trials[1].error is not None
    assert f"gave up after {MAX_ATTEMPTS} attempts" in trials[1].error
    assert trials[2].completed and trials[2].attempts == 1
