"""The real (Ray) executor with one failure put in from the test side of the seam: a job on a
real cluster whose trials' own code fails where a test says, without a hook in the farm."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

from farm.engine.executor import Outcome, RayExecutor, TaskLabel, TrialFailed


class FailingEvaluations(RayExecutor):
    """Evaluations whose label ``fails(label)`` picks come back as the trial's own failure
    (``injected fault for <label>``) once Ray has run them."""

    def __init__(self, fails: Callable[[TaskLabel], bool], address: str | None = None) -> None:
        super().__init__(address)
        self.fails = fails
        self._failing: dict[Hashable, TaskLabel] = {}

    def submit_evaluation(self, *args: Any, **kwargs: Any) -> Hashable:
        task = super().submit_evaluation(*args, **kwargs)
        label: TaskLabel = kwargs.get("label", args[-1] if args else None)
        if self.fails(label):
            self._failing[task] = label
        return task

    def wait(self, tasks: Sequence[Hashable], timeout_s: float) -> list[tuple[Hashable, Outcome]]:
        out: list[tuple[Hashable, Outcome]] = []
        for task, outcome in super().wait(tasks, timeout_s):
            label = self._failing.pop(task, None)
            out.append((task, TrialFailed(f"injected fault for {label}") if label else outcome))
        return out
