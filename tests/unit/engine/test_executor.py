"""How the Ray executor classifies what came back: whose fault a failure is decides whether the
trial fails, runs elsewhere or runs again (Ray's own exception types, no cluster)."""

from __future__ import annotations

from typing import Any

import pytest
from support.fake_executor import node

from farm.engine.executor import (
    Done,
    NotFresh,
    RayExecutor,
    SystemFailed,
    TrialFailed,
    WrongHardware,
    short_error,
)
from farm.errors import NotFreshProcessError, StepError, WrongHardwareError


def outcome_of(monkeypatch: pytest.MonkeyPatch, result: Any) -> Any:
    """The outcome of a task whose ``ray.get`` returns ``result`` (raises it if an exception)."""
    import ray

    def get(ref: Any) -> Any:
        if isinstance(result, BaseException):
            raise result
        return result

    monkeypatch.setattr(ray, "get", get)
    executor = RayExecutor()
    executor._nodes["task"] = node("gpu-box", "cpu-onnxruntime")
    return executor._outcome("task")


def task_error(cause: BaseException) -> Exception:
    from ray.exceptions import RayTaskError

    return RayTaskError("evaluate_task", "Traceback: …", cause)


def test_a_value_is_done(monkeypatch: pytest.MonkeyPatch) -> None:
    assert outcome_of(monkeypatch, [1, 2]) == Done([1, 2])


def test_the_trials_own_error_is_a_trial_failure_with_its_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cause = StepError("compile", "openvino 2026 on cpu-openvino", "Node  Conv_3\n unsupported")
    outcome = outcome_of(monkeypatch, task_error(cause))
    assert outcome == TrialFailed(
        "compile failed (openvino 2026 on cpu-openvino): Node Conv_3 unsupported"
    )


def test_a_mislabelled_node_and_a_stale_worker_are_not_the_candidates_fault(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wrong = outcome_of(monkeypatch, task_error(WrongHardwareError("node x is aarch64")))
    assert isinstance(wrong, WrongHardware) and "aarch64" in wrong.error
    stale = outcome_of(monkeypatch, task_error(NotFreshProcessError("with torch loaded")))
    assert isinstance(stale, NotFresh) and "torch" in stale.error


def test_a_killed_worker_is_retried_and_a_dead_node_is_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ray.exceptions import NodeDiedError, WorkerCrashedError

    crashed = outcome_of(monkeypatch, WorkerCrashedError())
    assert isinstance(crashed, SystemFailed) and not crashed.node_lost
    assert crashed.error.startswith("WorkerCrashedError on node gpu-box: ")
    died = outcome_of(monkeypatch, NodeDiedError("the node died"))
    assert isinstance(died, SystemFailed) and died.node_lost


def test_what_a_failed_trial_stores_is_one_line() -> None:
    assert short_error(ValueError("first\nsecond line")) == "ValueError: second line"
    assert (
        short_error(StepError("export", "export_onnx", "a\n  b"))
        == "export failed (export_onnx): a b"
    )
