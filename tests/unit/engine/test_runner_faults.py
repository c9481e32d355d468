"""The runner's retry, lost-node, wrong-hardware and stale-worker logic, on the in-memory
executor (virtual time, a real store in a temporary directory, no Ray)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.fake_executor import (
    FakeExecutor,
    MemoryStore,
    NotFresh,
    SystemFailed,
    TrialFailed,
    fake_runner,
    node,
    spec,
)

from farm.engine.runner import MAX_ATTEMPTS
from farm.store.records import TrialRecord

ORT, OV = "cpu-onnxruntime", "cpu-openvino"


def by_number(records: list[TrialRecord], target: str = ORT) -> dict[int, TrialRecord]:
    return {r.trial_number: r for r in records if r.target == target}


@pytest.fixture
def store(tmp_path: Path) -> MemoryStore:
    return MemoryStore(tmp_path / "farm.duckdb")


def test_a_job_on_healthy_nodes_stores_every_trial_once_with_its_front(store: MemoryStore) -> None:
    fake = FakeExecutor([node("a", ORT, OV)])
    runner = fake_runner(store, fake, spec([ORT, OV]))
    assert runner.run(prepared=True) == "completed"
    records = store.trials(runner.job_id)
    assert sorted(r.key[1:] for r in records) == [(t, n) for t in (ORT, OV) for n in range(4)]
    assert all(r.completed and r.attempts == 1 for r in records)
    baselines = [r for r in records if r.trial_number == 0]
    assert all(r.is_baseline and r.quality_drop == 0.0 for r in baselines)
    assert all(r.params["precision"] == "fp32" and r.batch_size == 1 for r in baselines)
    assert {r.target for r in records if r.on_front} == {ORT, OV}
    assert runner.records and {r.key for r in runner.records} == {r.key for r in records}


def test_a_worker_killed_once_is_retried_and_the_trial_completes(store: MemoryStore) -> None:
    fake = FakeExecutor([node("a", ORT)])
    fake.crash("evaluate", ORT, 1, attempt=1)
    runner = fake_runner(store, fake, spec())
    assert runner.run(prepared=True) == "completed"
    trials = by_number(store.trials(runner.job_id))
    assert trials[1].completed and trials[1].attempts == 2


def test_a_task_killed_on_every_attempt_fails_after_the_last_and_the_job_goes_on(
    store: MemoryStore,
) -> None:
    fake = FakeExecutor([node("a", ORT)])
    fake.crash("evaluate", ORT, 2)
    runner = fake_runner(store, fake, spec())
    assert runner.run(prepared=True) == "completed"
    trials = by_number(store.trials(runner.job_id))
    assert trials[2].status == "failed" and trials[2].attempts == MAX_ATTEMPTS
    assert trials[2].error is not None
    assert f"gave up after {MAX_ATTEMPTS} attempts" in trials[2].error
    assert "WorkerCrashedError" in trials[2].error
    assert trials[3].completed
    assert len(fake.evaluations()) == 4 + MAX_ATTEMPTS - 1


def test_a_build_killed_once_is_built_again(store: MemoryStore) -> None:
    fake = FakeExecutor([node("a", ORT)])
    fake.crash("build", ORT, 0, attempt=1)
    runner = fake_runner(store, fake, spec())
    assert runner.run(prepared=True) == "completed"
    baseline = by_number(store.trials(runner.job_id))[0]
    # the attempts a trial stores are its evaluation's: the build's count restarts
    assert baseline.completed and baseline.attempts == 1 and not baseline.cache_hit
    builds = [label for label, _ in fake.submitted if label.stage == "build" and label.trial == 0]
    assert [label.attempt for label in builds] == [1, 2]


def test_an_evaluation_refused_by_a_stale_worker_runs_again_in_a_fresh_one(
    store: MemoryStore,
) -> None:
    fake = FakeExecutor([node("a", ORT)])
    stale = NotFresh("refusing to measure in a worker process with torch loaded (not fresh)")
    fake.fail("evaluate", ORT, 1, stale, attempt=1)
    fake.fail("evaluate", ORT, 2, stale)
    runner = fake_runner(store, fake, spec(trials_per_target=3))
    assert runner.run(prepared=True) == "completed"
    trials = by_number(store.trials(runner.job_id))
    assert [(t.status, t.attempts) for t in trials.values()] == [
        ("completed", 1),
        ("completed", 2),
        ("failed", 3),
    ]
    assert trials[2].error is not None
    assert "gave up after 3 attempts" in trials[2].error and "not fresh" in trials[2].error


def test_a_trials_own_failure_is_stored_once_and_never_retried(store: MemoryStore) -> None:
    fake = FakeExecutor([node("a", ORT)])
    nan = "evaluate failed (onnxruntime 1.32 on cpu-onnxruntime): the runtime produced NaN/inf"
    fake.fail("evaluate", ORT, 1, TrialFailed(nan))
    runner = fake_runner(store, fake, spec(trials_per_target=3))
    assert runner.run(prepared=True) == "completed"
    trials = by_number(store.trials(runner.job_id))
    assert [t.status for t in trials.values()] == ["completed", "failed", "completed"]
    assert trials[1].error == nan and trials[1].attempts == 1
    assert not trials[1].on_front and trials[1].latency_p50_ms is None
    assert len(fake.evaluations()) == 3


def test_a_job_whose_every_baseline_fails_is_failed_with_one_reason_per_target(
    store: MemoryStore,
) -> None:
    fake = FakeExecutor([node("a", ORT, OV)])
    for target in (ORT, OV):
        fake.fail("evaluate", target, 0, TrialFailed(f"compile failed ({target}): broken"))
    runner = fake_runner(store, fake, spec([ORT, OV]))
    assert runner.run(prepared=True) == "failed"
    assert sorted(runner.unmeasured) == [ORT, OV]
    for target in (ORT, OV):
        assert runner.unmeasured[target] == f"trial #0 failed: compile failed ({target}): broken"
        assert f"{target}: nothing measured: trial #0 failed: " in runner.messages[0] + "".join(
            runner.messages
        )
    assert len(store.trials(runner.job_id)) == 2  # no study asked past its failed baseline


def test_a_lost_node_moves_work_to_another_and_a_target_left_without_reports_lost_capacity(
    store: MemoryStore,
) -> None:
    fake = FakeExecutor([node("a", ORT), node("b", ORT), node("ov", OV)])
    lost = SystemFailed("NodeDiedError on node a: the node died", node_lost=True)
    fake.fail("evaluate", ORT, 1, lost, attempt=1, lose_node=True)
    fake.fail("evaluate", OV, 1, SystemFailed("NodeDiedError", node_lost=True), lose_node=True)
    runner = fake_runner(store, fake, spec([ORT, OV]))
    assert runner.run(prepared=True) == "completed"
    records = store.trials(runner.job_id)
    assert len({r.key for r in records}) == len(records)  # every trial exactly once
    onnx = by_number(records, ORT)
    assert len(onnx) == 4 and all(t.completed for t in onnx.values())
    assert onnx[1].attempts == 2 and onnx[1].node_id == "b"
    assert all(t.node_id == "b" for n, t in onnx.items() if n > 1)  # a is never leased again
    assert any("cpu-openvino: lost capacity" in m for m in runner.messages)
    assert by_number(records, OV)[1].status == "failed"


def test_a_mislabelled_node_is_excluded_and_its_trials_run_elsewhere(store: MemoryStore) -> None:
    fake = FakeExecutor([node("a", ORT), node("b", ORT)], mislabelled={"a"})
    runner = fake_runner(store, fake, spec())
    assert runner.run(prepared=True) == "completed"
    trials = by_number(store.trials(runner.job_id))
    assert all(t.completed and t.node_id == "b" for t in trials.values())
    assert [
        label.trial for label, n in fake.submitted if n == "a" and label.stage == "evaluate"
    ] == [0]
    assert any(m.startswith("node a excluded: ") for m in runner.messages)


def test_a_target_served_only_by_a_mislabelled_node_measures_nothing(store: MemoryStore) -> None:
    fake = FakeExecutor([node("a", ORT)], mislabelled={"a"})
    runner = fake_runner(store, fake, spec(trials_per_target=3))
    assert runner.run(prepared=True) == "failed"  # its only target measured nothing
    trials = store.trials(runner.job_id)
    assert [t.status for t in trials] == ["failed"]
    assert trials[0].error is not None and "capacity lost" in trials[0].error
    assert "refusing to measure" in trials[0].error
    assert f"{ORT}: nothing measured" in "; ".join(runner.messages)
