"""An in-memory executor for the engine's own logic: deterministic, on a virtual clock, with
faults on cue.

Tasks "run" for a scripted number of virtual seconds; :meth:`FakeExecutor.wait` moves the clock
to the next task that finishes. A build makes one small artifact per step; an evaluation returns
an :class:`~farm.worker.evaluate.Evaluation` whose quality and latency follow from the
candidate's options (int8 is faster and loses a little quality, bigger batches are faster per
image). Faults are scripted by the task a trial's attempt is (:class:`TaskLabel`): a crash
(the worker killed), a lost node, a stale worker, the trial's own failure; a node can be
mislabelled (every evaluation there is refused as wrong hardware).

:func:`prepared_job` builds the :class:`~farm.engine.prepare.PreparedJob` such tests run, without
a workload, a model or a cluster.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from farm.artifact import Artifact
from farm.cluster.lifecycle import Node
from farm.engine.executor import (
    Done,
    NotFresh,
    Outcome,
    SystemFailed,
    TaskLabel,
    TrialFailed,
    WrongHardware,
)
from farm.engine.prepare import PreparedJob, job_limits
from farm.engine.runner import JobRunner
from farm.search.space import target_space
from farm.spec.job import JobSpec, parse_job
from farm.store.artifacts import ArtifactCache
from farm.store.records import TrialRecord
from farm.worker.build import BuildStep
from farm.worker.evaluate import Evaluation, EvaluationRequest
from targets import get_target, runtime_class

#: What ``fail`` scripts: an outcome, or a function of the task that makes one.
Fault = Outcome | Callable[["FakeTask"], Outcome]


def node(name: str, *targets: str, cpus: int = 2, gpus: int = 0) -> Node:
    """A node as the cluster would list it (slotted, as local and fleet nodes are)."""
    resources = {"CPU": float(cpus), "GPU": float(gpus)} if gpus else {"CPU": float(cpus)}
    return Node(name, name, cpus, tuple(targets), True, f"10.0.0.{len(name)}", resources)


@dataclass
class FakeTask:
    label: TaskLabel
    node: Node
    finishes_at: float
    outcome: Outcome


@dataclass
class FakeExecutor:
    """Runs builds and evaluations in memory. ``nodes``: the cluster; ``build_s`` and
    ``evaluate_s``: how long each task takes (virtual seconds)."""

    alive: list[Node]
    build_s: float = 2.0
    evaluate_s: float = 1.0
    #: Nodes whose evaluations are refused as wrong hardware.
    mislabelled: set[str] = field(default_factory=set)
    now: float = 0.0
    #: Every task submitted, in order: (label, node id).
    submitted: list[tuple[TaskLabel, str]] = field(default_factory=list)
    cancelled: list[TaskLabel] = field(default_factory=list)
    #: Raise KeyboardInterrupt (as Ctrl-C would) once this many outcomes were handed out.
    interrupt_after: int | None = None
    #: Virtual seconds each reading of the clock takes (the driver's own work).
    tick: float = 0.0
    _faults: dict[tuple[str, str, int, int | None], tuple[Fault, bool]] = field(
        default_factory=dict
    )
    _running: dict[int, FakeTask] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=itertools.count)
    _outcomes: int = 0

    # -- scripting ----------------------------------------------------------------------------
    def fail(
        self,
        stage: str,
        target: str,
        trial: int,
        outcome: Fault,
        attempt: int | None = None,
        lose_node: bool = False,
    ) -> None:
        """Make a task end with ``outcome``: the ``attempt`` (every attempt when None) of
        ``stage`` of trial ``trial`` of ``target``. ``lose_node``: its node leaves the cluster
        when it does (as a node that died)."""
        self._faults[(stage, target, trial, attempt)] = (outcome, lose_node)

    def crash(self, stage: str, target: str, trial: int, attempt: int | None = None) -> None:
        """The worker running that task is killed (an OOM kill): the system's failure."""
        self.fail(stage, target, trial, SystemFailed("WorkerCrashedError: killed"), attempt)

    def evaluations(self, target: str | None = None) -> list[TaskLabel]:
        return [
            label
            for label, _ in self.submitted
            if label.stage == "evaluate" and (target is None or label.target == target)
        ]

    # -- the Executor protocol -----------------------------------------------------------------
    def connect(self) -> None:
        pass

    def nodes(self) -> list[Node]:
        return list(self.alive)

    def put(self, value: Any) -> Any:
        return value

    def submit_build(
        self,
        node: Node,
        source: Artifact,
        steps: Sequence[BuildStep],
        data: Any,
        seed: int,
        task: Any,
        warm_worker: bool,
        label: TaskLabel,
    ) -> Hashable:
        built, artifact = [], source
        for step in steps:
            files = {"model.onnx": artifact.main_file.encode() + repr(step).encode()}
            artifact = Artifact("onnx", files, {"build_s": self.build_s / max(1, len(steps))})
            built.append(artifact)
        return self._start(label, node, self.build_s, Done(built))

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
        outcome: Outcome = Done(evaluation(request, artifact, node))
        if node.node_id in self.mislabelled:
            outcome = WrongHardware(
                f"node {node.host} advertises {request.target.resource} "
                "but is not that hardware: refusing to measure"
            )
        return self._start(label, node, self.evaluate_s, outcome)

    def wait(self, tasks: Sequence[Hashable], timeout_s: float) -> list[tuple[Hashable, Outcome]]:
        mine = [t for t in tasks if isinstance(t, int) and t in self._running]
        if not mine:
            self.now += timeout_s
            return []
        first = min(self._running[t].finishes_at for t in mine)
        if first > self.now + timeout_s:
            self.now += timeout_s
            return []
        self.now = max(self.now, first)
        if self.interrupt_after is not None and self._outcomes >= self.interrupt_after:
            raise KeyboardInterrupt
        done = [t for t in mine if self._running[t].finishes_at <= self.now]
        self._outcomes += len(done)
        return [(t, self._finish(t)) for t in done]

    def cancel(self, tasks: Iterable[Hashable]) -> None:
        for t in tasks:
            task = self._running.pop(t, None)  # type: ignore[call-overload]
            if task is not None:
                self.cancelled.append(task.label)

    def monotonic(self) -> float:
        self.now += self.tick
        return self.now

    # -- inside --------------------------------------------------------------------------------
    def _start(self, label: TaskLabel, node: Node, seconds: float, outcome: Outcome) -> int:
        task_id = next(self._ids)
        self.submitted.append((label, node.node_id))
        self._running[task_id] = FakeTask(label, node, self.now + seconds, outcome)
        return task_id

    def _finish(self, task_id: int) -> Outcome:
        task = self._running.pop(task_id)
        label = task.label
        for attempt in (label.attempt, None):
            scripted = self._faults.get((label.stage, label.target, label.trial, attempt))
            if scripted is not None:
                fault, lose_node = scripted
                if lose_node:
                    self.alive = [n for n in self.alive if n.node_id != task.node.node_id]
                return fault(task) if callable(fault) else fault
        return task.outcome


def evaluation(request: EvaluationRequest, artifact: Any, node: Node) -> Evaluation:
    """What a node would measure: int8 (an artifact built with a quantizer) is 3x faster and
    0.005 less accurate; a batch of b runs b images in (1 + b/4) times the batch-1 latency."""
    int8 = b"quantize" in artifact.files.get("model.onnx", b"")
    o = request.options
    per_batch = (1.0 / 3 if int8 else 1.0) * (1 + o.batch_size / 4) / o.threads
    quality = 0.95 - (0.005 if int8 else 0.0)
    names = request.task.metric_names(True)
    measurement = {
        "p50_ms": per_batch,
        "p90_ms": per_batch * 1.1,
        "p95_ms": per_batch * 1.2,
        "p99_ms": per_batch * 1.5,
        "mean_ms": per_batch,
        "std_ms": 0.01,
        "cv": 0.01,
        "throughput_ips": o.batch_size / per_batch * 1000,
        "n_samples": 100,
        "stable": True,
        "unstable_reason": None,
        "cold_ms": per_batch * 3,
        "contract": {"scenario": "single-stream"},
    }
    return Evaluation(
        measurement=measurement,
        samples_ms=[per_batch] * 5,
        precision_actual="int8+fp32" if int8 else o.precision,
        compile_s=0.1,
        measure_s=0.2,
        peak_rss_mb=100.0,
        env_id="fake-env",
        environment={"cpu_model": "Fake CPU"},
        host=node.host,
        node_id=node.node_id,
        metrics={n: quality for n in names},
        eval_s=0.3,
    )


class StubWorkload:
    """What a prepared job keeps of its workload (a name and the recipe hash)."""

    name = "stub"
    recipe_hash = "w" * 16


def spec(targets: Sequence[str] = ("cpu-onnxruntime",), **search: Any) -> JobSpec:
    """A small job on ``targets``: fp32 and int8, batches 1 and 8, one thread."""
    raw: dict[str, Any] = {
        "name": "fake",
        "targets": list(targets),
        "workload": {"name": "digits"},
        "search": {
            "trials_per_target": 4,
            "seed": 1,
            "precision": ["fp32", "int8"],
            "batch_size": [1, 8],
            "threads": [1],
            **search,
        },
        "constraints": {"max_quality_drop": 0.02},
    }
    return parse_job(raw, source="fake.toml")


def prepared_job(job: JobSpec, max_threads: int = 2) -> PreparedJob:
    """``job`` prepared without a workload, a model or a cluster: a classifier whose spaces
    allow ``max_threads``."""
    from workloads import Split, WorkloadData, WorkloadTraits
    from workloads.kpis.spec import EvaluationSpec
    from workloads.tasks import Classification

    split = Split(np.zeros((2, 3, 8, 8), np.float32), np.zeros(2, np.int64))
    data = WorkloadData(None, split, split, 2, (3, 8, 8), True)
    task = Classification()
    quality = task.primary_metric(True)
    evaluation = EvaluationSpec()
    targets = {t: get_target(t) for t in job.targets}
    traits = WorkloadTraits()
    return PreparedJob(
        spec=job,
        workload=StubWorkload(),  # type: ignore[arg-type]
        traits=traits,
        targets=targets,
        runtimes={t: runtime_class(spec.runtime) for t, spec in targets.items()},
        spaces={t: target_space(job, t, max_threads, traits) for t in job.targets},
        task=task,
        evaluation=evaluation,
        data=data,
        source=Artifact("torch-state", {"state_dict.pt": b"fp32 model"}),
        quality_metric=quality,
        limits=tuple(job_limits(job, task, data, quality, evaluation)),
        reference=None,
    )


@dataclass
class MemoryStore:
    """What the runner writes to a store, kept in memory: the engine tests check the engine's
    logic in milliseconds (the DuckDB store is tested for real, with real jobs)."""

    path: Path
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    records: dict[tuple[str, str, int], TrialRecord] = field(default_factory=dict)
    samples: dict[tuple[str, str, int], list[float]] = field(default_factory=dict)

    def create_job(self, job_id: str, name: str, spec: str, **columns: Any) -> None:
        self.jobs[job_id] = {"name": name, "spec": spec, "status": "running", **columns}

    def set_job_status(self, job_id: str, status: str, message: str | None = None) -> None:
        self.jobs[job_id].update(status=status, message=message)

    def record_trial(
        self,
        record: TrialRecord,
        samples_ms: Sequence[float] = (),
        metrics: dict[str, float] | None = None,
        environment: Any = None,
        evidence: Any = None,
        comparisons: Any = None,
    ) -> None:
        if record.key in self.records:
            raise AssertionError(f"trial {record.key} stored twice")
        self.records[record.key] = record
        self.samples[record.key] = list(samples_ms)

    def set_fronts(
        self, job_id: str, per_target: dict[str, list[int]], global_front: list[tuple[str, int]]
    ) -> None:
        for key, r in self.records.items():
            if key[0] == job_id:
                self.records[key] = r.replace(
                    on_front=r.trial_number in per_target.get(r.target, ()),
                    on_global_front=(r.target, r.trial_number) in global_front,
                )

    def evidence(self, job_id: str, target: str, trial_number: int) -> None:
        return None  # fake evaluations keep no per-image evidence

    def trials(self, job_id: str) -> list[TrialRecord]:
        return sorted((r for k, r in self.records.items() if k[0] == job_id), key=lambda r: r.key)


def fake_runner(
    store: MemoryStore, fake: FakeExecutor, job: JobSpec, resume_job: str | None = None
) -> JobRunner:
    """A JobRunner on ``fake`` and ``store`` with ``job`` prepared (:func:`prepared_job`), its
    artifact cache beside the store."""
    runner = JobRunner(
        job,
        store,  # type: ignore[arg-type]
        cache=ArtifactCache(store.path.parent / "artifacts"),
        resume_job=resume_job,
        executor=fake,
    )
    runner.use(prepared_job(job))
    return runner


__all__ = [
    "FakeExecutor",
    "MemoryStore",
    "NotFresh",
    "StubWorkload",
    "SystemFailed",
    "TrialFailed",
    "WrongHardware",
    "evaluation",
    "fake_runner",
    "node",
    "prepared_job",
    "spec",
]
