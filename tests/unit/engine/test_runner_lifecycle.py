"""A job's time budget, its interruption and its resumption, and the artifact cache, on the
in-memory executor (virtual time, no Ray)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from support.fake_executor import FakeExecutor, MemoryStore, fake_runner, node, spec

ORT, OV = "cpu-onnxruntime", "cpu-openvino"


@pytest.fixture
def store(tmp_path: Path) -> MemoryStore:
    return MemoryStore(tmp_path / "farm.duckdb")


def test_the_time_budget_stops_asking_and_lets_running_trials_finish(store: MemoryStore) -> None:
    fake = FakeExecutor([node("a", ORT)], build_s=1.0, evaluate_s=1.0)
    runner = fake_runner(store, fake, spec(trials_per_target=8, time_budget_s=4.5))
    assert runner.run(prepared=True) == "completed"
    records = store.trials(runner.job_id)
    assert 1 <= len(records) < 8 and all(r.completed for r in records)
    assert f"{ORT}: time budget of 4.5 s reached" in runner.messages
    asked = {label.trial for label, _ in fake.submitted}
    assert asked == {r.trial_number for r in records}  # every trial asked was finished


def test_a_time_budget_spent_before_the_first_trial_fails_the_job(store: MemoryStore) -> None:
    fake = FakeExecutor([node("a", ORT)], tick=1e-3)  # the driver's work takes time
    runner = fake_runner(store, fake, spec(trials_per_target=3, time_budget_s=1e-6))
    assert runner.run(prepared=True) == "failed"  # nothing was measured: not a success
    assert store.trials(runner.job_id) == [] and fake.submitted == []
    message = store.jobs[runner.job_id]["message"]
    assert f"{ORT}: nothing measured: time budget of 1e-06 s reached" in message


def test_ctrl_c_keeps_finished_trials_cancels_the_rest_and_marks_the_job_interrupted(
    store: MemoryStore,
) -> None:
    fake = FakeExecutor([node("a", ORT), node("b", OV)], interrupt_after=4)
    runner = fake_runner(store, fake, spec([ORT, OV], trials_per_target=6))
    assert runner.run(prepared=True) == "interrupted"
    job = store.jobs[runner.job_id]
    assert job["status"] == "interrupted" and "interrupted by the user" in job["message"]
    kept = store.trials(runner.job_id)
    assert 1 <= len(kept) < 12 and all(r.completed for r in kept)
    assert fake.cancelled  # what was still running was cancelled, not waited for
    assert not runner.in_flight and not runner.pending


def test_a_resumed_job_tells_its_stored_trials_again_and_runs_only_the_rest(
    store: MemoryStore,
) -> None:
    job = spec([ORT, OV], trials_per_target=6)
    first = FakeExecutor([node("a", ORT), node("b", OV)], interrupt_after=6)
    interrupted = fake_runner(store, first, job)
    assert interrupted.run(prepared=True) == "interrupted"
    before = {r.key: r for r in store.trials(interrupted.job_id)}
    assert before

    again = FakeExecutor([node("a", ORT), node("b", OV)])
    resumed = fake_runner(store, again, job, resume_job=interrupted.job_id)
    assert resumed.run(prepared=True) == "completed"
    records = store.trials(interrupted.job_id)
    for target in (ORT, OV):
        numbers = [r.trial_number for r in records if r.target == target]
        assert numbers == list(range(6))  # numbering goes on; none stored twice
    rerun = {(label.target, label.trial) for label in again.evaluations()}
    assert not rerun & {key[1:] for key in before}  # stored trials were not measured again
    for key, record in before.items():  # ... and are the same records
        assert store.records[key].finished_at == record.finished_at
    assert {r.key for r in resumed.records} == {r.key for r in records}
    assert store.jobs[interrupted.job_id]["status"] == "completed"


def test_a_resumed_study_whose_baseline_failed_asks_nothing_more(store: MemoryStore) -> None:
    from support.fake_executor import TrialFailed

    first = FakeExecutor([node("a", ORT)], interrupt_after=2)
    first.fail("evaluate", ORT, 0, TrialFailed("compile failed: broken model"))
    job = spec(trials_per_target=4)
    interrupted = fake_runner(store, first, job)
    interrupted.run(prepared=True)
    again = FakeExecutor([node("a", ORT)])
    resumed = fake_runner(store, again, job, resume_job=interrupted.job_id)
    assert resumed.run(prepared=True) == "failed"
    assert again.submitted == []
    assert resumed.unmeasured[ORT].startswith("trial #0 failed: compile failed")


def test_a_built_artifact_is_cached_and_later_trials_of_it_skip_the_build(
    store: MemoryStore,
) -> None:
    """Trials that differ only in runtime options (batch, threads) share one artifact."""
    fake = FakeExecutor([node("a", ORT)])
    runner = fake_runner(store, fake, spec(trials_per_target=4, precision=["fp32"]))
    assert runner.run(prepared=True) == "completed"
    records = store.trials(runner.job_id)
    builds = [label for label, _ in fake.submitted if label.stage == "build"]
    assert len(builds) == 1  # one export for every fp32 trial
    assert sum(not r.cache_hit for r in records) == 1
    assert len({r.artifact_hash for r in records}) == 1
    assert any("artifact cache: " in m for m in runner.messages)


def test_trials_of_two_targets_on_one_node_take_turns(store: MemoryStore) -> None:
    fake = FakeExecutor([node("a", ORT, OV)])
    runner = fake_runner(store, fake, spec([ORT, OV], trials_per_target=3))
    assert runner.run(prepared=True) == "completed"
    evaluated = [label.target for label in fake.evaluations()]
    assert evaluated[:2] in ([ORT, OV], [OV, ORT])  # the targets take turns from the start
    # one node: never two tasks at once, so no trial waited behind another in a queue
    spans = sorted((r.started_at, r.finished_at) for r in store.trials(runner.job_id))
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))


def test_a_study_asks_its_trials_only_after_its_baseline(store: MemoryStore) -> None:
    fake = FakeExecutor([node("a", ORT), node("b", ORT), node("c", ORT)])
    runner = fake_runner(store, fake, spec(trials_per_target=4))
    assert runner.run(prepared=True) == "completed"
    first_other = min(i for i, (label, _) in enumerate(fake.submitted) if label.trial > 0)
    baseline_done = max(i for i, (label, _) in enumerate(fake.submitted) if label.trial == 0)
    assert first_other > baseline_done
    # afterwards, three nodes measure three trials at once
    assert len({n for label, n in fake.submitted if label.trial > 0}) == 3
