"""The seam between the driver and the machines: put data, run a build or an evaluation on a
chosen node, wait for outcomes, cancel.

The runner's scheduling and retry logic sees only :class:`Executor` and typed outcomes, never
Ray: :class:`RayExecutor` holds every ``ray.*`` call of a job and turns Ray's exceptions into
outcomes; the tests drive the same runner with an in-memory executor that crashes, loses nodes
or hands out stale workers on cue (``tests/support/fake_executor.py``).

An outcome says whose fault a failure is, which decides what the runner does with it:

- :class:`Done`: the task's value (a build's artifacts, an evaluation).
- :class:`TrialFailed`: the candidate's own code failed (an export error, NaN outputs): the trial
  is stored as failed, never retried.
- :class:`WrongHardware`: the node does not match the target it advertises: the node is never
  leased again and the trial runs elsewhere.
- :class:`NotFresh`: the worker process was not fresh: the evaluation runs again in another.
- :class:`SystemFailed`: the worker was killed or the node was lost: retried, and with
  ``node_lost`` the node is never leased again (Ray may list a lost node as alive a while).
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from farm.errors import NotFreshProcessError, TrialError, WrongHardwareError

if TYPE_CHECKING:
    from farm.artifact import Artifact
    from farm.cluster.lifecycle import Node
    from farm.worker.build import BuildStep
    from farm.worker.evaluate import EvaluationRequest
    from workloads.tasks import Task


@dataclass(frozen=True)
class Done:
    value: Any


@dataclass(frozen=True)
class TrialFailed:
    error: str


@dataclass(frozen=True)
class WrongHardware:
    error: str


@dataclass(frozen=True)
class NotFresh:
    error: str


@dataclass(frozen=True)
class SystemFailed:
    error: str
    node_lost: bool = False


Outcome = Done | TrialFailed | WrongHardware | NotFresh | SystemFailed


@dataclass(frozen=True)
class TaskLabel:
    """Which trial a task is for: what Ray shows as the task's name, and what a test's executor
    scripts its faults by."""

    stage: str  # build | evaluate
    target: str
    trial: int
    attempt: int

    def __str__(self) -> str:
        return f"{self.stage} {self.target}#{self.trial} attempt {self.attempt}"


class Executor(Protocol):
    """What the runner asks of the machines. Task handles are opaque (hashable)."""

    def connect(self) -> None:
        """Start or join the cluster (before :meth:`nodes`)."""

    def nodes(self) -> list[Node]:
        """The alive nodes and the targets each serves."""

    def put(self, value: Any) -> Any:
        """Store a value once for many tasks; returns what tasks take in its place."""

    def submit_build(
        self,
        node: Node,
        source: Artifact,
        steps: Sequence[BuildStep],
        data: Any,
        seed: int,
        task: Task,
        warm_worker: bool,
        label: TaskLabel,
    ) -> Hashable:
        """Build ``steps`` from ``source`` on ``node`` (transforms that fine-tune take the
        ``task``'s loss); its value is the artifact after each step. ``warm_worker``: also start
        a fresh worker there for the evaluation to follow."""

    def submit_evaluation(
        self,
        node: Node,
        request: EvaluationRequest,
        artifact: Any,
        data: Any,
        reference: Any,
        per_gpu: bool,
        label: TaskLabel,
    ) -> Hashable:
        """Evaluate ``artifact`` on ``node`` in a fresh worker; its value is an Evaluation.
        ``per_gpu``: the measurement takes one GPU of the node, others may take the rest."""

    def wait(self, tasks: Sequence[Hashable], timeout_s: float) -> list[tuple[Hashable, Outcome]]:
        """Outcomes of tasks that finished within ``timeout_s`` (none when none did; with no
        tasks, waits ``timeout_s``)."""

    def cancel(self, tasks: Iterable[Hashable]) -> None:
        """Stop tasks still running (their outcomes are never asked for)."""

    def monotonic(self) -> float:
        """The executor's clock, in seconds (what time budgets and trial times count)."""


def short_error(exc: BaseException) -> str:
    """What a failed trial stores: a trial's own error whole (it names the step, the transform or
    runtime and the runtime's message, whitespace collapsed), else the type and last line."""
    if isinstance(exc, TrialError):
        return " ".join(str(exc).split())[:1000]
    text = str(exc).strip().splitlines()
    last = text[-1] if text else ""
    return f"{type(exc).__name__}: {last}"[:500]


class RayExecutor:
    """The executor of real jobs: Ray tasks pinned to their node (NodeAffinity, hard), each with
    the node's exclusivity unit (:mod:`farm.cluster.leases`)."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address
        self._nodes: dict[Any, Node] = {}

    def connect(self) -> None:
        from farm.cluster.lifecycle import start_or_connect

        start_or_connect(self.address)

    def nodes(self) -> list[Node]:
        from farm.cluster.lifecycle import alive_nodes

        return alive_nodes()

    def put(self, value: Any) -> Any:
        import ray

        return ray.put(value)

    def submit_build(
        self,
        node: Node,
        source: Artifact,
        steps: Sequence[BuildStep],
        data: Any,
        seed: int,
        task: Task,
        warm_worker: bool,
        label: TaskLabel,
    ) -> Hashable:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from farm.cluster.leases import node_slot
        from farm.worker import remote

        strategy = NodeAffinitySchedulingStrategy(node.node_id, soft=False)
        ref = remote.build_task.options(
            num_cpus=1, resources=node_slot(node), scheduling_strategy=strategy, name=str(label)
        ).remote(source, list(steps), data, seed, task)
        if warm_worker:  # the evaluation's fresh worker starts while the node builds
            remote.start_worker.options(scheduling_strategy=strategy).remote()
        self._nodes[ref] = node
        return ref

    def submit_evaluation(
        self,
        node: Node,
        request: EvaluationRequest,
        artifact: Any,
        data: Any,
        reference: Any,
        per_gpu: bool,
        label: TaskLabel,
    ) -> Hashable:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from farm.cluster.leases import measurement_resources
        from farm.worker import remote

        placement = measurement_resources(node, request.target.device == "cuda", per_gpu)
        ref = remote.evaluate_task.options(
            num_cpus=request.options.threads,
            num_gpus=placement["num_gpus"],
            resources={request.target.resource: 0.001, **placement["resources"]},
            scheduling_strategy=NodeAffinitySchedulingStrategy(node.node_id, soft=False),
            name=str(label),
        ).remote(request, artifact, data, reference)
        self._nodes[ref] = node
        return ref

    def wait(self, tasks: Sequence[Hashable], timeout_s: float) -> list[tuple[Hashable, Outcome]]:
        import ray

        if not tasks:
            time.sleep(timeout_s)
            return []
        ready, _ = ray.wait(list(tasks), num_returns=1, timeout=timeout_s)
        return [(ref, self._outcome(ref)) for ref in ready]

    def _outcome(self, ref: Any) -> Outcome:
        """Ray's result of a finished task, classified."""
        import ray
        from ray.exceptions import NodeDiedError, RayError, RayTaskError, TaskUnschedulableError

        node = self._nodes.pop(ref, None)
        try:
            return Done(ray.get(ref))
        except RayTaskError as exc:  # the task's own code raised
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            if isinstance(cause, WrongHardwareError):
                return WrongHardware(short_error(cause))
            if isinstance(cause, NotFreshProcessError):
                return NotFresh(short_error(cause))
            return TrialFailed(short_error(cause))
        except RayError as exc:  # the system failed it: worker killed, node lost
            where = f" on node {node.host}" if node is not None else ""
            return SystemFailed(
                f"{type(exc).__name__}{where}: {short_error(exc)}",
                node_lost=isinstance(exc, NodeDiedError | TaskUnschedulableError),
            )

    def cancel(self, tasks: Iterable[Hashable]) -> None:
        import ray

        for ref in tasks:
            self._nodes.pop(ref, None)
            ray.cancel(ref, force=True)

    def monotonic(self) -> float:
        return time.monotonic()
