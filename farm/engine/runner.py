"""The driver of a job: a small state machine over its studies, the scheduler, an executor and
the recorder.

A trial goes ask → (build) → evaluate → recorded. Each round of the loop asks the studies for
trials a node could start now, submits what is ready (a build, or straight to the evaluation when
the artifact is cached), and handles the outcomes that came back: a built artifact goes on to its
evaluation, an evaluation is recorded, and a failure is the trial's (stored as failed), the
node's (excluded, the trial runs elsewhere) or the system's (retried up to
:data:`MAX_ATTEMPTS`). The job ends when no trial is under way and no study may ask more; Ctrl-C
ends it as ``interrupted`` with its finished trials kept.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Hashable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farm.engine.executor import (
    Done,
    Executor,
    NotFresh,
    Outcome,
    RayExecutor,
    SystemFailed,
    TaskLabel,
    TrialFailed,
    WrongHardware,
)
from farm.engine.prepare import PreparedJob, prepare_job
from farm.engine.recorder import Recorder
from farm.engine.scheduler import Scheduler
from farm.engine.studies import (
    Study,
    TrialRun,
    ask,
    enqueue_first_points,
    make_studies,
    replay,
    tell_completed,
    tell_failed,
)
from farm.errors import UnpricedHardwareError
from farm.store.artifacts import ArtifactCache
from farm.worker.build import resolve
from farm.worker.evaluate import EvaluationRequest

if TYPE_CHECKING:
    from farm.artifact import Artifact
    from farm.spec.job import JobSpec
    from farm.store.db import Store
    from farm.store.records import TrialRecord
    from farm.worker.evaluate import Evaluation

#: Attempts of one task when the *system* fails it (worker killed, node lost); a trial whose own
#: code fails (export error, NaN outputs) is not retried.
MAX_ATTEMPTS = 3
#: How often the driver asks the cluster which nodes are alive (seconds).
NODES_EVERY_S = 1.0


def new_job_id(name: str) -> str:
    slug = "".join(c if c.isalnum() or c in "-_" else "-" for c in name.lower()).strip("-")
    return f"{slug}-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


class JobRunner:
    """Runs one job to completion (or interruption) and records everything in the store."""

    def __init__(
        self,
        spec: JobSpec,
        store: Store,
        address: str | None = None,
        cache: ArtifactCache | None = None,
        models_dir: Path | None = None,
        progress: Callable[[TrialRecord], None] | None = None,
        resume_job: str | None = None,
        label: str | None = None,
        executor: Executor | None = None,
    ) -> None:
        """``resume_job``: the id of an interrupted job to continue (see :meth:`run`);
        ``label``: stored as ``jobs.label`` (e.g. the git sha a release history is keyed by);
        ``executor``: what runs the tasks (default: Ray, started here or joined at
        ``address``)."""
        self.spec = spec
        self.store = store
        self.label = label
        self.executor: Executor = executor or RayExecutor(address)
        root = store.path.parent
        self.cache = cache or ArtifactCache(root / "artifacts")
        self.models_dir = models_dir or root / "models"
        self.progress = progress
        self.resuming = resume_job is not None
        self.job_id = resume_job or new_job_id(spec.name)
        self.messages: list[str] = []
        #: After :meth:`run`: targets that produced no completed trial, and why.
        self.unmeasured: dict[str, str] = {}
        self.studies: dict[str, Study] = {}
        self.prepared: PreparedJob | None = None
        self.scheduler = Scheduler({}, spec.measurement)
        self.recorder: Recorder | None = None
        self.pending: list[TrialRun] = []
        self.in_flight: dict[Hashable, TrialRun] = {}
        self.deadline: float | None = None
        self._data: Any = None
        self._reference: Any = None

    @property
    def records(self) -> list[TrialRecord]:
        """The job's trials recorded so far (a resumed job's stored ones first)."""
        return self.recorder.records if self.recorder is not None else []

    # -- set-up ------------------------------------------------------------------------------
    def prepare(self) -> PreparedJob:
        """Everything that can fail on bad input, before anything is written to the store."""
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        return self.use(prepare_job(self.spec, self.executor, self.cache, self.models_dir))

    def use(self, prepared: PreparedJob) -> PreparedJob:
        """Take ``prepared`` as this job's inputs (what :meth:`prepare` does with the job it
        prepares): the studies, the scheduler, the recorder, and a resumed job's replay."""
        self.prepared = prepared
        self.scheduler = Scheduler(prepared.targets, self.spec.measurement)
        clock = self.executor.monotonic
        self.recorder = Recorder(self.store, self.job_id, prepared, clock, self.progress)
        self.studies = make_studies(prepared, self.job_id)
        if self.resuming:
            stored = self.store.trials(self.job_id)
            self.messages.extend(replay(prepared, self.studies, stored))
            self.recorder.resume(stored)
        for s in self.studies.values():
            enqueue_first_points(prepared, s)
        self._data = self.executor.put(prepared.data)
        self._reference = self.executor.put(prepared.reference)
        return prepared

    # -- the loop ------------------------------------------------------------------------------
    def run(self, prepared: bool = False) -> str:
        """Run the job; returns its final status (completed, failed or interrupted)."""
        if not prepared or self.prepared is None:
            self.prepare()
        assert self.prepared is not None
        if self.resuming:
            self.store.set_job_status(self.job_id, "running", "resumed")
        else:
            self.store.create_job(
                self.job_id,
                self.spec.name,
                self.spec.to_json(),
                task=self.prepared.task.name,
                label=self.label,
                calibration=self.prepared.calibration or None,
            )
        budget = self.spec.search.time_budget_s
        self.deadline = None if budget is None else self.executor.monotonic() + budget
        status = "completed"
        try:
            self._loop()
        except KeyboardInterrupt:
            status = "interrupted"
            self._cancel_in_flight()
            self.messages.append("interrupted by the user; finished trials are kept")
        except BaseException as exc:
            self._cancel_in_flight()
            self.store.set_job_status(self.job_id, "failed", f"{type(exc).__name__}: {exc}")
            raise
        status = self._finish(status)
        self.store.set_job_status(self.job_id, status, "; ".join(self.messages) or None)
        return status

    def _loop(self) -> None:
        last_nodes = -math.inf
        while True:
            now = self.executor.monotonic()
            if now - last_nodes > NODES_EVERY_S:
                last_nodes = now
                self.scheduler.refresh(self.executor.nodes())
                self._fail_what_cannot_run()
            self._ask_new_trials()
            self._submit_ready()
            idle = not self.in_flight and not self.pending
            if idle and not any(s.may_ask() for s in self.studies.values()):
                return
            timeout = 0.5 if self.in_flight else 0.2
            for task, outcome in self.executor.wait(list(self.in_flight), timeout):
                self._handle(task, outcome)

    def _ask_new_trials(self) -> None:
        assert self.prepared is not None
        now = self.executor.monotonic()
        if self.deadline is not None and now > self.deadline:
            for s in self.studies.values():
                if s.may_ask():
                    s.stopped = f"time budget of {self.spec.search.time_budget_s:g} s reached"
            return
        # Fewest asked first: targets that share nodes take turns.
        for s in sorted(self.studies.values(), key=lambda s: s.asked):
            active = sum(
                1 for r in [*self.pending, *self.in_flight.values()] if r.target == s.target
            )
            while s.can_ask(active, self.scheduler.capacity(s.target)):
                if not self.scheduler.node_free_for(s.target, self.pending):
                    break
                run = ask(self.prepared, s, now)
                if run is None:
                    break
                self.pending.append(run)
                active += 1

    def _submit_ready(self) -> None:
        for run in list(self.pending):
            if run.stage == "build" and self._take_from_cache(run):
                run.stage = "evaluate"
            task = self._submit(run)
            if task is not None:
                self.pending.remove(run)
                self.in_flight[task] = run

    def _take_from_cache(self, run: TrialRun) -> bool:
        """Skip the build when the artifact is cached (or nothing needs building)."""
        assert self.prepared is not None
        chain = run.candidate.chain
        artifact = self.prepared.source if not chain else self.cache.load(run.candidate.build_key())
        if artifact is None:
            return False
        self._ready(run, artifact)
        return True

    def _ready(self, run: TrialRun, artifact: Artifact) -> None:
        """The run's artifact is built: its evaluation comes next."""
        run.artifact_ref = self.executor.put(artifact)
        run.artifact_hash, run.artifact_bytes = artifact.content_hash, artifact.size_bytes
        run.stage = "evaluate"

    def _submit(self, run: TrialRun) -> Hashable | None:
        """Lease a node and submit the run's next task; None when no node is free."""
        assert self.prepared is not None
        p = self.prepared
        label = TaskLabel(run.stage, run.target, run.number, run.attempts + 1)
        if run.stage == "build":
            node = self.scheduler.lease_build(run.holder)
            if node is None:
                return None
            done, source = self._cached_prefix(run)
            steps = resolve(run.candidate.chain[done:])
            warm = self.scheduler.serves_job(node)
            seed = self.spec.search.seed
            task = self.executor.submit_build(
                node, source, steps, self._data, seed, p.task, warm, label
            )
            run.cache_hit = False
        else:
            threads = run.candidate.options.threads
            node = self.scheduler.lease_evaluation(run.target, threads, run.holder)
            if node is None:
                return None
            request = EvaluationRequest(
                target=p.targets[run.target],
                runtime=p.runtimes[run.target],
                options=run.candidate.options,
                task=p.task,
                contract=self.spec.contract,
                evaluation=p.evaluation,
            )
            per_gpu = self.scheduler.per_gpu(run.target)
            task = self.executor.submit_evaluation(
                node, request, run.artifact_ref, self._data, self._reference, per_gpu, label
            )
        run.node = node
        run.attempts += 1
        return task

    def _cached_prefix(self, run: TrialRun) -> tuple[int, Artifact]:
        """The longest prefix of the chain already in the cache, and its artifact."""
        assert self.prepared is not None
        for upto in range(len(run.candidate.chain) - 1, 0, -1):
            artifact = self.cache.load(run.candidate.build_key(upto))
            if artifact is not None:
                return upto, artifact
        return 0, self.prepared.source

    # -- outcomes ------------------------------------------------------------------------------
    def _handle(self, task: Hashable, outcome: Outcome) -> None:
        run = self.in_flight.pop(task)
        node = run.node
        assert node is not None
        self.scheduler.release(node, run.holder)
        if isinstance(outcome, Done):
            if run.stage == "build":
                self._built(run, outcome.value)
            else:
                self._evaluated(run, outcome.value)
        elif isinstance(outcome, TrialFailed):
            self._fail(run, outcome.error)
        elif isinstance(outcome, WrongHardware):
            # The node is at fault, not the candidate: never lease it again, and run the
            # trial elsewhere (or fail it as lost capacity when no other node serves).
            run.last_error = outcome.error
            self.scheduler.exclude(node.node_id)
            self.messages.append(f"node {node.host} excluded: {outcome.error}")
            self.pending.append(run)
            self._fail_what_cannot_run()
        elif isinstance(outcome, NotFresh):
            self._retry(run, outcome.error)  # another worker will be fresh
        elif isinstance(outcome, SystemFailed):
            if outcome.node_lost:
                # Ray may list a lost node as alive for a few more seconds: never lease it again.
                self.scheduler.exclude(node.node_id)
                self._fail_what_cannot_run()
            self._retry(run, outcome.error)

    def _retry(self, run: TrialRun, error: str) -> None:
        """Run the task again (the system failed it), or fail the trial after MAX_ATTEMPTS."""
        run.last_error = error
        if run.attempts < MAX_ATTEMPTS:
            self.pending.append(run)
        else:
            self._fail(run, f"gave up after {run.attempts} attempts: {error}")

    def _built(self, run: TrialRun, artifacts: list[Artifact]) -> None:
        assert self.prepared is not None
        done = len(run.candidate.chain) - len(artifacts)
        for i, artifact in enumerate(artifacts, start=done + 1):
            self.cache.save(run.candidate.build_key(i), artifact)
            run.build_s += float(artifact.meta.get("build_s", 0.0))
        self._ready(run, artifacts[-1] if artifacts else self.prepared.source)
        run.attempts = 0
        self.pending.append(run)

    def _evaluated(self, run: TrialRun, ev: Evaluation) -> None:
        assert self.prepared is not None and self.recorder is not None
        s = self.studies[run.target]
        try:  # priced by the hardware that ran it
            price = self.recorder.price(run, ev)
        except UnpricedHardwareError as exc:  # a node that joined after prepare() checked
            self._fail(run, str(exc))
            return
        if run.is_baseline:
            s.baseline_measured(float(ev.metrics[self.prepared.quality_metric]), ev.metrics)
        self.recorder.compared(run, ev.evidence)
        record, violations = self.recorder.completed(
            run, ev, price, s.baseline_quality, s.baseline_metrics
        )
        tell_completed(self.prepared, s, run, record, violations)
        self.recorder.record(record, ev.samples_ms, (ev.env_id, ev.environment), ev.evidence)

    def _fail(self, run: TrialRun, error: str) -> None:
        assert self.recorder is not None
        tell_failed(self.studies[run.target], run, error)
        self.recorder.record(self.recorder.failed(run, error))

    def _fail_what_cannot_run(self) -> None:
        """Stop the studies of targets no alive node serves, and fail their waiting trials, or
        any that ask for more threads than the alive serving nodes have."""
        for s in self.studies.values():
            serving = self.scheduler.serving(s.target)
            if not serving:
                s.stopped = s.stopped or "lost capacity: no alive node serves this target"
            most_cpus = self.scheduler.most_cpus(s.target)
            for run in [r for r in self.pending if r.target == s.target]:
                threads = run.candidate.options.threads
                if threads <= most_cpus:
                    continue
                self.pending.remove(run)
                what = (
                    f"no alive node serves {s.target}"
                    if not serving
                    else f"no alive node serving {s.target} has {threads} CPUs"
                )
                self._fail(run, f"{what} (capacity lost); last error: {run.last_error}")

    def _cancel_in_flight(self) -> None:
        self.executor.cancel(list(self.in_flight))
        self.in_flight.clear()
        self.pending.clear()

    # -- the end -------------------------------------------------------------------------------
    def _finish(self, status: str) -> str:
        """The job's final status, with its messages: targets without a result, stopped
        studies, the artifact cache's hit rate."""
        self.unmeasured = self._targets_without_results()
        if status == "completed" and self.unmeasured:
            if len(self.unmeasured) == len(self.studies):
                status = "failed"
            self.messages[:0] = [
                f"{t}: nothing measured: {why}" for t, why in self.unmeasured.items()
            ]
        self.messages.extend(
            f"{s.target}: {s.stopped}"
            for s in self.studies.values()
            if s.stopped and s.target not in self.unmeasured
        )
        evaluated = [r for r in self.records if r.artifact_hash]
        hits = sum(1 for r in evaluated if r.cache_hit)
        if evaluated:
            self.messages.append(
                f"artifact cache: {hits} of {len(evaluated)} trials reused a built artifact "
                f"({hits / len(evaluated):.0%} hits; {len(evaluated) - hits} built)"
            )
        return status

    def _targets_without_results(self) -> dict[str, str]:
        """Targets of the job with no completed trial, and why (their first failure's error)."""
        out = {}
        for t, s in self.studies.items():
            records = [r for r in self.records if r.target == t]
            if any(r.completed for r in records):
                continue
            failed = [r for r in records if r.status == "failed"]
            first = min(failed, key=lambda r: r.trial_number) if failed else None
            out[t] = (
                f"trial #{first.trial_number} failed: {first.error}"
                if first
                else (s.stopped or "no trial ran")
            )
        return out
