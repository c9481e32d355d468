"""One candidate built and evaluated outside a job: what benchmarks and scripts run when they
need the farm's numbers for a configuration they chose themselves.

:func:`run_candidate` (or a :class:`CandidateRunner` for many candidates of one workload) takes
the same path as a job's trial: the build task, then the evaluation in a fresh worker on a node
that serves the target, through the same :class:`~farm.engine.executor.Executor`; or, with
``here=True``, both in this process (no Ray; the measurement then shares the process with
whatever it has loaded, which a benchmark may want to compare).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from farm.engine.executor import Done, Executor, NotFresh, RayExecutor, TaskLabel
from farm.errors import TrialError
from farm.worker.build import build, resolve
from farm.worker.evaluate import Evaluation, EvaluationRequest, evaluate
from targets import get_target, runtime_class

if TYPE_CHECKING:
    from farm.artifact import Artifact
    from farm.cluster.lifecycle import Node
    from farm.search.candidate import Candidate
    from farm.store.artifacts import ArtifactCache
    from workloads import WorkloadData
    from workloads.kpis.spec import EvaluationSpec
    from workloads.tasks import Task

#: Attempts of an evaluation refused by a worker that was not fresh.
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class CandidateResult:
    """A candidate's artifact, how long its build took (0 when cached), and its evaluation."""

    artifact: Artifact
    build_s: float
    evaluation: Evaluation


class CandidateRunner:
    """Builds and evaluates candidates of one workload (its fp32 source, data, reference and
    task), putting the data in the object store once."""

    def __init__(
        self,
        source: Artifact,
        data: WorkloadData,
        reference: Any,
        task: Task,
        *,
        contract: Mapping[str, Any] | None = None,
        evaluation: EvaluationSpec | None = None,
        seed: int = 0,
        here: bool = False,
        executor: Executor | None = None,
        cache: ArtifactCache | None = None,
    ) -> None:
        """``contract``: the ``[measurement]`` table; ``here``: build and evaluate in this
        process; ``cache``: where built artifacts are kept and looked up (by build key)."""
        self.source, self.data, self.reference, self.task = source, data, reference, task
        self.contract = dict(contract or {})
        self.evaluation = evaluation
        self.seed = seed
        self.here = here
        self.cache = cache
        self.executor: Executor | None = None
        self._refs: tuple[Any, Any] | None = None
        if not here:
            self.executor = executor or RayExecutor()
            self.executor.connect()

    def run(self, candidate: Candidate, timeout_s: float | None = None) -> CandidateResult:
        """Build ``candidate`` (from the longest cached prefix of its chain) and evaluate it.

        Raises :class:`TrialError` when a step fails (naming it), and :class:`TimeoutError`
        when a task runs past ``timeout_s`` (it is cancelled)."""
        artifact, build_s = self.build(candidate, timeout_s)
        return CandidateResult(artifact, build_s, self.evaluate(candidate, artifact, timeout_s))

    def build(self, candidate: Candidate, timeout_s: float | None = None) -> tuple[Artifact, float]:
        """The candidate's artifact and its build time."""
        done, start = 0, self.source
        if self.cache is not None:
            for upto in range(len(candidate.chain), 0, -1):
                hit = self.cache.load(candidate.build_key(upto))
                if hit is not None:
                    done, start = upto, hit
                    break
        steps = resolve(candidate.chain[done:])
        if not steps:
            return start, 0.0
        if self.executor is None:
            built = build(start, steps, self.data, self.seed, self.task)
        else:
            node = self._node(candidate.target, 1)
            data, _ = self._put()
            label = TaskLabel("build", candidate.target, 0, 1)
            task = self.executor.submit_build(
                node, start, steps, data, self.seed, self.task, True, label
            )
            built = self._outcome(task, timeout_s)
        if self.cache is not None:
            for i, artifact in enumerate(built, start=done + 1):
                self.cache.save(candidate.build_key(i), artifact)
        return built[-1], sum(float(a.meta.get("build_s", 0.0)) for a in built)

    def evaluate(
        self, candidate: Candidate, artifact: Artifact, timeout_s: float | None = None
    ) -> Evaluation:
        """``artifact`` evaluated as the candidate says (target, runtime options)."""
        target = get_target(candidate.target)
        request = EvaluationRequest(
            target=target,
            runtime=runtime_class(target.runtime),
            options=candidate.options,
            task=self.task,
            contract=self.contract,
            evaluation=self.evaluation,
        )
        if self.executor is None:
            return evaluate(request, artifact, self.data, self.reference)
        data, reference = self._put()
        for attempt in range(1, MAX_ATTEMPTS + 1):
            node = self._node(candidate.target, candidate.options.threads)
            label = TaskLabel("evaluate", candidate.target, 0, attempt)
            task = self.executor.submit_evaluation(
                node, request, artifact, data, reference, False, label
            )
            try:
                value: Evaluation = self._outcome(task, timeout_s)
                return value
            except _Stale:
                if attempt == MAX_ATTEMPTS:
                    raise TrialError(f"no fresh worker after {attempt} attempts") from None
        raise AssertionError("unreachable")

    def _put(self) -> tuple[Any, Any]:
        assert self.executor is not None
        if self._refs is None:
            self._refs = (self.executor.put(self.data), self.executor.put(self.reference))
        return self._refs

    def _node(self, target: str, threads: int) -> Node:
        assert self.executor is not None
        nodes = [n for n in self.executor.nodes() if target in n.targets and n.cpus >= threads]
        if not nodes:
            raise TrialError(f"no node of the Ray cluster serves {target} with {threads} CPUs")
        return nodes[0]

    def _outcome(self, task: Hashable, timeout_s: float | None) -> Any:
        """Wait for ``task``; its value, or the failure raised."""
        assert self.executor is not None
        deadline = None if timeout_s is None else self.executor.monotonic() + timeout_s
        while True:
            left = 1.0 if deadline is None else deadline - self.executor.monotonic()
            if left <= 0:
                self.executor.cancel([task])
                raise TimeoutError(f"timed out after {timeout_s:.0f} s")
            for _, outcome in self.executor.wait([task], min(left, 1.0)):
                if isinstance(outcome, Done):
                    return outcome.value
                if isinstance(outcome, NotFresh):
                    raise _Stale(outcome.error)
                raise TrialError(outcome.error)


class _Stale(Exception):
    """An evaluation refused by a worker that was not fresh (retried)."""


def run_candidate(
    candidate: Candidate,
    source: Artifact,
    data: WorkloadData,
    reference: Any,
    task: Task,
    *,
    contract: Mapping[str, Any] | None = None,
    evaluation: EvaluationSpec | None = None,
    seed: int = 0,
    here: bool = False,
    executor: Executor | None = None,
    timeout_s: float | None = None,
) -> CandidateResult:
    """Build and evaluate one candidate of a workload, as a job's trial would be (see
    :class:`CandidateRunner` for the arguments)."""
    runner = CandidateRunner(
        source,
        data,
        reference,
        task,
        contract=contract,
        evaluation=evaluation,
        seed=seed,
        here=here,
        executor=executor,
    )
    return runner.run(candidate, timeout_s)
