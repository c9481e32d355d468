"""The driver of a job: one Optuna study per (job, target), trials as Ray tasks, results to DuckDB.

The loop asks each study for candidates, builds each candidate's artifact (or takes it from the
artifact cache), evaluates it on a node that serves the target, tells the study, stores the trial
and re-marks the Pareto fronts. The driver is the store's only writer.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna

from farm.cluster.lifecycle import (
    NODE_SLOT,
    NodeLeases,
    alive_nodes,
    measurement_resources,
    measurement_slots,
    shares_gpus,
    start_or_connect,
)
from farm.engine.pricing import check_gpu_prices, price_trial
from farm.errors import NotFreshProcessError, UnpricedHardwareError, UsageError, WrongHardwareError
from farm.search.candidate import Candidate
from farm.search.space import check_baseline, check_knobs, initial_points, plan, target_space
from farm.spec.job import JobSpec
from farm.store import fronts as pareto
from farm.store.artifacts import ArtifactCache
from farm.store.db import Store
from targets import get_target
from targets.base import RuntimeOptions
from workloads.kpis.compute import with_kpi_data
from workloads.kpis.spec import parse_evaluation

optuna.logging.set_verbosity(optuna.logging.WARNING)

#: Attempts of one task when the *system* fails it (worker killed, node lost); a trial whose own
#: code fails (export error, NaN outputs) is not retried.
MAX_ATTEMPTS = 3
#: How many re-asks a study gets to avoid re-measuring a configuration it already measured.
DUPLICATE_ASKS = 25
#: Spaces up to this many points are enumerated to size a study's budget exactly.
ENUMERATE_LIMIT = 20_000


def new_job_id(name: str) -> str:
    slug = "".join(c if c.isalnum() or c in "-_" else "-" for c in name.lower()).strip("-")
    return f"{slug}-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


@dataclass
class TrialRun:
    """A trial on its way through build → evaluate."""

    target: str
    number: int
    trial: optuna.trial.Trial
    candidate: Candidate
    is_baseline: bool
    stage: str = "build"  # build | evaluate
    artifact_ref: Any = None
    artifact_hash: str | None = None
    artifact_bytes: int | None = None
    build_s: float = 0.0
    cache_hit: bool = True
    attempts: int = 0
    last_error: str | None = None
    node: Any = None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    #: ``time.perf_counter()`` when the study asked for this trial: ``trial_s`` counts from it.
    asked_at: float = field(default_factory=time.perf_counter)


@dataclass
class Study:
    target: str
    study: optuna.Study
    space: dict[str, Any]
    budget: int
    asked: int = 0
    baseline_quality: float | None = None
    #: Every metric of the completed baseline (what the job's ``_drop`` limits compare with).
    baseline_metrics: dict[str, float] = field(default_factory=dict)
    baseline_done: bool = False
    stopped: str | None = None  # why no more trials are asked
    seen: set[str] = field(default_factory=set)

    def can_ask(self, in_flight: int, capacity: int) -> bool:
        if self.stopped or self.asked >= self.budget:
            return False
        if self.asked > 0 and not self.baseline_done:
            return False  # every later trial is judged against the baseline
        return in_flight < max(1, capacity)


def space_size(space: dict[str, Any]) -> int:
    size = 1
    for dist in space.values():
        size *= len(getattr(dist, "choices", [None] * 10**6))
    return size


def make_sampler(spec: JobSpec, seed: int) -> optuna.samplers.BaseSampler:
    """The job's sampler. Constraints reach it through ``Trial.set_constraint`` (a constraint,
    not a penalty: infeasible trials are ranked after feasible ones)."""
    if spec.search.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    population = max(4, min(50, spec.search.trials_per_target // 3))
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=population)


class JobRunner:
    """Runs one job to completion (or interruption) and records everything in the store."""

    def __init__(
        self,
        spec: JobSpec,
        store: Store,
        address: str | None = None,
        cache: ArtifactCache | None = None,
        models_dir: Path | None = None,
        progress: Any = None,
        resume_job: str | None = None,
        label: str | None = None,
    ) -> None:
        """``resume_job``: the id of an interrupted job to continue (see :meth:`run`);
        ``label``: stored as ``jobs.label`` (e.g. the git sha a release history is keyed by)."""
        self.spec = spec
        self.label = label
        self.store = store
        self.address = address
        root = store.path.parent
        self.cache = cache or ArtifactCache(root / "artifacts")
        self.models_dir = models_dir or root / "models"
        self.progress = progress
        self.resuming = resume_job is not None
        self.job_id = resume_job or new_job_id(spec.name)
        #: Test hook, from $FARM_TEST_FAULTS: see farm.worker.evaluate.injected_fault.
        self.faults = os.environ.get("FARM_TEST_FAULTS", "")
        self.rows: list[dict[str, Any]] = []
        self.leases = NodeLeases()
        #: Nodes a task was lost on (node died, or became unschedulable): not leased again.
        self.lost_nodes: set[str] = set()
        self.in_flight: dict[Any, TrialRun] = {}
        self.pending: list[TrialRun] = []
        self.messages: list[str] = []
        #: After :meth:`run`: targets that produced no completed trial, and why.
        self.unmeasured: dict[str, str] = {}

    # -- set-up ------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Everything that can fail on bad input, before anything is written to the store."""
        import ray

        from workloads import load_workload

        self.workload = load_workload(
            self.spec.workload,
            Path(self.spec.base_dir),
            self.models_dir.parent,
            source=self.spec.source,
        )
        task = self.workload.task
        if task.name != "classification" and self.spec.search.transforms:
            raise UsageError(
                f"{self.spec.source}: field `search.transforms`: {self.spec.search.transforms} "
                f"are offered for classifiers only: their fine-tunes train a classification "
                f"loss, which would not keep a {task.name} model sound; remove them"
            )
        torch_source = self.workload.allows_torch_transforms
        for t in self.spec.targets:
            if get_target(t).export == "export_torch" and not torch_source:
                raise UsageError(
                    f"{self.spec.source}: field `targets`: {t} runs torch models, but the "
                    f"workload is an ONNX file; remove {t} or give a torch model"
                )
            if get_target(t).export == "export_torch" and not getattr(
                self.workload, "torch_exportable", True
            ):
                raise UsageError(
                    f"{self.spec.source}: field `targets`: {t} runs torch.export programs, and "
                    f"{self.workload.name} cannot be captured by torch.export (its NMS "
                    f"depends on the data); remove {t}"
                )
        start_or_connect(self.address)
        nodes = alive_nodes()
        self.spaces: dict[str, dict[str, Any]] = {}
        for t in self.spec.targets:
            serving = [n for n in nodes if t in n.targets]
            if not serving:
                raise UsageError(
                    f"{self.spec.source}: field `targets`: no node of the Ray cluster serves {t} "
                    "(locally: its runtime is not installed or the CPU does not match; on a "
                    f"fleet: start a node with --resources '{{\"target:{t}\": 1}}')"
                )
            max_threads = max(n.cpus for n in serving)
            self.spaces[t] = target_space(self.spec, t, max_threads, torch_source, self.workload)
        check_gpu_prices(self.spec)  # a GPU with no price is refused before anything is stored
        check_knobs(self.spec, self.spaces)
        for t, space in self.spaces.items():
            check_baseline(self.spec, t, space, torch_source)

        self.task = task_with_contract(self.workload.task, self.spec)
        self.evaluation = parse_evaluation(self.spec.source, self.spec.evaluation)
        if self.evaluation.operating_point and self.task.name != "classification":
            raise UsageError(
                f"{self.spec.source}: field `evaluation.positive_classes`: an operating point "
                f"is defined for classifiers only, not for {self.task.name}"
            )
        self.data = with_kpi_data(
            self.workload.data(),
            self.evaluation,
            self.workload.slices_file,
            self.spec.search.seed,
            source=self.spec.source,
        )
        self.source = self.workload.source_artifact(self.models_dir)
        self.quality_metric = self.task.primary_metric(self.data.has_labels)
        self.limits = job_limits(
            self.spec, self.task, self.data, self.quality_metric, self.evaluation
        )
        self.reference = reference_predictions(
            self.source, self.data, self.task, self.workload.fixed_batch
        )
        # The unoptimized model is cached like every built artifact, so that `farm gate` can
        # re-measure any trial's artifact by the build key the trial stores.
        self.cache.save(source_build_key(self.workload.recipe_hash), self.source)
        self.data_ref = ray.put(self.data)
        self.reference_ref = ray.put(self.reference)
        self._make_studies()

    def _make_studies(self) -> None:
        self.studies: dict[str, Study] = {}
        for i, t in enumerate(self.spec.targets):
            space = self.spaces[t]
            study = optuna.create_study(
                study_name=f"{self.job_id}/{t}",
                directions=["maximize", "minimize", "minimize"],
                sampler=make_sampler(self.spec, self.spec.search.seed + i),
            )
            budget = min(self.spec.search.trials_per_target, self._distinct_candidates(t, space))
            self.studies[t] = Study(t, study, space, budget)
        if self.resuming:
            self._replay_stored_trials()
        for s in self.studies.values():
            self._enqueue_first_points(s)

    def _enqueue_first_points(self, s: Study) -> None:
        """Queue what the study measures before its sampler proposes anything: the baseline,
        then the screening design (:func:`farm.search.space.initial_points`); a resumed study skips
        what it has already measured."""
        for point in initial_points(s.space, s.target, s.budget):
            candidate = plan(
                self.spec,
                s.target,
                point,
                self.workload.recipe_hash,
                self.workload.allows_torch_transforms,
            )
            if candidate.content_hash not in s.seen:
                s.study.enqueue_trial(point)

    def _frozen(
        self, row: dict[str, Any], params: dict[str, Any], space: dict[str, Any]
    ) -> optuna.trial.FrozenTrial:
        """A stored trial as Optuna saw it when it was told: values, and the constraint."""
        distributions = {k: space[k] for k in params}
        if row["status"] != "completed":
            return optuna.trial.create_trial(
                state=optuna.trial.TrialState.FAIL, params=params, distributions=distributions
            )
        s = self.studies[row["target"]]
        metrics = {**row.get("metrics", {}), self.quality_metric: row["accuracy"]}
        violations = {c.field: c.violation(metrics, s.baseline_metrics) for c in self.limits}
        return optuna.trial.create_trial(
            params=params,
            distributions=distributions,
            values=[row["accuracy"], row["latency_p95_ms"], row["cost_per_1k_usd"]],
            constraints=violations or None,
        )

    def _distinct_candidates(self, target: str, space: dict[str, Any]) -> int:
        """How many different candidates the space holds (knobs that do not apply to a point,
        such as a quantizer's at fp32, do not make new candidates); an upper bound for spaces
        too large to enumerate."""
        import itertools

        size = space_size(space)
        if size > ENUMERATE_LIMIT:
            return size
        names = list(space)
        hashes = {
            plan(
                self.spec,
                target,
                dict(zip(names, values, strict=True)),
                self.workload.recipe_hash,
                self.workload.allows_torch_transforms,
            ).content_hash
            for values in itertools.product(*(space[n].choices for n in names))
        }
        return len(hashes)

    def _replay_stored_trials(self) -> None:
        """Rebuild each study from the store: stored trials are told to Optuna again, not
        re-run, and numbering continues after the last stored trial (none is stored twice)."""
        rows = self.store.trials_with_metrics(self.job_id)
        for row in rows:
            if row["is_baseline"] and row["status"] == "completed":
                s = self.studies[row["target"]]
                s.baseline_metrics = {**row["metrics"], self.quality_metric: row["accuracy"]}
        for row in rows:
            s = self.studies[row["target"]]
            params = {k: v for k, v in json.loads(row["params"]).items() if k in s.space}
            if all(v in s.space[k].choices for k, v in params.items()):
                s.study.add_trial(self._frozen(row, params, s.space))
            else:  # e.g. resumed on a smaller cluster: 16 threads are no longer a choice
                self.messages.append(
                    f"{row['target']} #{row['trial_number']} is outside the space this cluster "
                    "offers; it stays in the store but does not guide the search"
                )
            s.asked = max(s.asked, row["trial_number"] + 1)
            s.seen.add(row["candidate_hash"])
            if row["is_baseline"]:
                if row["status"] == "completed":
                    s.baseline_quality, s.baseline_done = row["accuracy"], True
                else:
                    s.stopped = f"the baseline trial failed ({row['error']})"
            self.rows.append(row)

    # -- the loop ------------------------------------------------------------------------------
    def run(self, prepared: bool = False) -> str:
        """Run the job; returns its final status."""
        if not prepared:
            self.prepare()
        if self.resuming:
            self.store.set_job_status(self.job_id, "running", "resumed")
        else:
            self.store.create_job(
                self.job_id,
                self.spec.name,
                self.spec.to_json(),
                task=self.task.name,
                label=self.label,
            )
        status = "completed"
        budget = self.spec.search.time_budget_s
        self.deadline = None if budget is None else time.monotonic() + budget
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
        evaluated = [r for r in self.rows if r.get("artifact_hash")]
        hits = sum(1 for r in evaluated if r["cache_hit"])
        if evaluated:
            self.messages.append(
                f"artifact cache: {hits} of {len(evaluated)} trials reused a built artifact "
                f"({hits / len(evaluated):.0%} hits; {len(evaluated) - hits} built)"
            )
        self.store.set_job_status(self.job_id, status, "; ".join(self.messages) or None)
        return status

    def _targets_without_results(self) -> dict[str, str]:
        """Targets of the job with no completed trial, and why (their baseline's error)."""
        out = {}
        for t, s in self.studies.items():
            rows = [r for r in self.rows if r["target"] == t]
            if any(r["status"] == "completed" for r in rows):
                continue
            failed = [r for r in rows if r["status"] == "failed"]
            first = min(failed, key=lambda r: r["trial_number"]) if failed else None
            out[t] = (
                f"trial #{first['trial_number']} failed: {first['error']}"
                if first
                else (s.stopped or "no trial ran")
            )
        return out

    def _loop(self) -> None:
        import ray

        last_capacity_check = 0.0
        while True:
            nodes = alive_nodes() if time.monotonic() - last_capacity_check > 1.0 else None
            if nodes is not None:
                last_capacity_check = time.monotonic()
                self._nodes = [n for n in nodes if n.node_id not in self.lost_nodes]
                self._fail_targets_without_nodes(self._nodes)
            self._ask_new_trials()
            self._submit_ready()
            idle = not self.in_flight and not self.pending
            if idle and not any(self._may_ask(s) for s in self.studies.values()):
                return
            if self.in_flight:
                ready, _ = ray.wait(list(self.in_flight), num_returns=1, timeout=0.5)
                for ref in ready:
                    self._handle(ref)
            else:
                time.sleep(0.2)

    def _may_ask(self, s: Study) -> bool:
        return not s.stopped and s.asked < s.budget

    def _capacity(self, target: str) -> int:
        """Measurements of ``target`` that can run at once: one per serving node, or one per
        GPU of it for a CUDA target whose measurements share nodes."""
        per_gpu = shares_gpus(get_target(target).device, self.spec.measurement)
        return sum(measurement_slots(n, per_gpu) for n in self._nodes if target in n.targets)

    def _ask_new_trials(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            for s in self.studies.values():
                if self._may_ask(s):
                    s.stopped = f"time budget of {self.spec.search.time_budget_s:g} s reached"
            return
        # Fewest asked first: targets that share nodes take turns.
        for s in sorted(self.studies.values(), key=lambda s: s.asked):
            active = sum(
                1 for r in [*self.pending, *self.in_flight.values()] if r.target == s.target
            )
            while s.can_ask(active, self._capacity(s.target)) and self._node_free_for(s.target):
                run = self._ask(s)
                if run is None:
                    break
                self.pending.append(run)
                active += 1

    def _node_free_for(self, target: str) -> bool:
        """Whether a new trial of ``target`` could start now: a node serving it is free and no
        waiting trial has a claim on it. A trial asked earlier would only wait in the queue (its
        ``trial_s`` counts from the ask) and the sampler would ask it knowing less."""
        free = [n for n in self._nodes if target in n.targets and not self.leases.busy(n.node_id)]
        claims = sum(
            1
            for r in self.pending
            if r.stage == "build" or any(r.target in n.targets for n in free)
        )
        return len(free) > claims

    def _ask(self, s: Study) -> TrialRun | None:
        """The study's next candidate not measured yet; None (and the study stops) when the
        sampler keeps proposing measured ones."""
        is_baseline = not s.baseline_done and s.asked == 0
        for _ in range(DUPLICATE_ASKS):
            trial = s.study.ask(s.space)
            candidate = plan(
                self.spec,
                s.target,
                trial.params,
                self.workload.recipe_hash,
                self.workload.allows_torch_transforms,
            )
            if candidate.content_hash not in s.seen or is_baseline:
                break
            s.study.tell(trial, state=optuna.trial.TrialState.PRUNED)  # already measured
        else:
            s.stopped = (
                f"search space exhausted: {DUPLICATE_ASKS} asks in a row proposed only "
                "configurations already measured"
            )
            return None
        s.seen.add(candidate.content_hash)
        run = TrialRun(s.target, s.asked, trial, candidate, is_baseline)
        s.asked += 1
        return run

    def _submit_ready(self) -> None:
        for run in list(self.pending):
            if run.stage == "build" and self._take_from_cache(run):
                run.stage = "evaluate"
            ref = self._submit(run)
            if ref is not None:
                self.pending.remove(run)
                self.in_flight[ref] = run

    def _take_from_cache(self, run: TrialRun) -> bool:
        """Skip the build when the artifact is cached (or nothing needs building)."""
        import ray

        key = run.candidate.build_key()
        artifact = self.source if not run.candidate.chain else self.cache.load(key)
        if artifact is None:
            return False
        run.artifact_ref = ray.put(artifact)
        run.artifact_hash, run.artifact_bytes = artifact.content_hash, artifact.size_bytes
        return True

    def _submit(self, run: TrialRun) -> Any:
        """Lease a node and submit the run's next task; None when no node is free."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from farm.worker import remote as tasks

        target = get_target(run.target)
        if run.stage == "build":
            candidates = sorted(self._nodes, key=lambda n: len(n.targets))  # spare measurers
            node = self.leases.acquire(
                [n for n in candidates if n.cpus >= 1], f"build {run.number}"
            )
            if node is None:
                return None
            done, source = self._cached_prefix(run.candidate)
            steps = list(run.candidate.chain[done:])
            strategy = NodeAffinitySchedulingStrategy(node.node_id, soft=False)
            ref = tasks.build_task.options(
                num_cpus=1, resources=node_slot(node), scheduling_strategy=strategy
            ).remote(source, steps, self.data_ref, self.spec.search.seed, self.task)
            run.cache_hit = False
            if any(t in node.targets for t in self.studies):
                # the evaluation's fresh worker starts while the node builds (farm.worker.remote)
                tasks.start_worker.options(scheduling_strategy=strategy).remote()
        else:
            threads = run.candidate.options.threads
            serving = [n for n in self._nodes if run.target in n.targets and n.cpus >= threads]
            per_gpu = shares_gpus(target.device, self.spec.measurement)
            holder = f"evaluate {run.target}/{run.number}"
            node = self.leases.acquire(serving, holder, per_gpu=per_gpu)
            if node is None:
                return None
            strategy = NodeAffinitySchedulingStrategy(node.node_id, soft=False)
            placement = measurement_resources(node, target.device == "cuda", per_gpu)
            ref = tasks.evaluate_task.options(
                num_cpus=threads,
                num_gpus=placement["num_gpus"],
                resources={target.resource: 0.001, **placement["resources"]},
                scheduling_strategy=strategy,
            ).remote(
                run.artifact_ref,
                run.target,
                run.candidate.options,
                self.data_ref,
                self.reference_ref,
                self.spec.measurement,
                f"{run.target}:{run.number}:{run.attempts + 1}",
                self.faults,
                self.task,
                self.evaluation,
            )
        run.node = node
        run.attempts += 1
        return ref

    def _cached_prefix(self, candidate: Candidate) -> tuple[int, Any]:
        """The longest prefix of the chain already in the cache, and its artifact."""
        for upto in range(len(candidate.chain) - 1, 0, -1):
            artifact = self.cache.load(candidate.build_key(upto))
            if artifact is not None:
                return upto, artifact
        return 0, self.source

    # -- results -------------------------------------------------------------------------------
    def _handle(self, ref: Any) -> None:
        import ray
        from ray.exceptions import NodeDiedError, RayError, RayTaskError, TaskUnschedulableError

        run = self.in_flight.pop(ref)
        self.leases.release(run.node.node_id)
        try:
            result = ray.get(ref)
        except RayTaskError as exc:  # the task's own code failed: not retried
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            if isinstance(cause, WrongHardwareError):
                # The node is at fault, not the candidate: never lease it again, and run the
                # trial elsewhere (or fail it as lost capacity when no other node serves).
                run.last_error = _short_error(cause)
                self.lost_nodes.add(run.node.node_id)
                self.messages.append(f"node {run.node.host} excluded: {cause}")
                self._nodes = [n for n in self._nodes if n.node_id not in self.lost_nodes]
                self.pending.append(run)
                self._fail_targets_without_nodes(self._nodes)
                return
            if isinstance(cause, NotFreshProcessError):
                self._retry(run, _short_error(cause))  # another worker will be fresh
                return
            self._fail(run, _short_error(cause))
            return
        except RayError as exc:  # the system failed it: worker killed, node lost
            run.last_error = f"{type(exc).__name__} on node {run.node.host}: {_short_error(exc)}"
            if isinstance(exc, NodeDiedError | TaskUnschedulableError):
                # Ray may list a lost node as alive for a few more seconds: never lease it again.
                self.lost_nodes.add(run.node.node_id)
                self._nodes = [n for n in self._nodes if n.node_id not in self.lost_nodes]
                self._fail_targets_without_nodes(self._nodes)
            self._retry(run, run.last_error)
            return
        if run.stage == "build":
            self._built(run, result)
        else:
            self._evaluated(run, result)

    def _retry(self, run: TrialRun, error: str) -> None:
        """Run the task again (the system failed it), or fail the trial after MAX_ATTEMPTS."""
        run.last_error = error
        if run.attempts < MAX_ATTEMPTS:
            self.pending.append(run)
        else:
            self._fail(run, f"gave up after {run.attempts} attempts: {error}")

    def _built(self, run: TrialRun, artifacts: list[Any]) -> None:
        import ray

        done = len(run.candidate.chain) - len(artifacts)
        for i, artifact in enumerate(artifacts, start=done + 1):
            self.cache.save(run.candidate.build_key(i), artifact)
            run.build_s += float(artifact.meta.get("build_s", 0.0))
        final = artifacts[-1] if artifacts else self.source
        run.artifact_ref = ray.put(final)
        run.artifact_hash, run.artifact_bytes = final.content_hash, final.size_bytes
        run.stage = "evaluate"
        run.attempts = 0
        self.pending.append(run)

    def _evaluated(self, run: TrialRun, ev: Any) -> None:
        cpu_model = ev.environment.get("cpu_model")
        try:  # priced by the hardware that ran it
            priced = price_trial(get_target(run.target), self.spec.prices, cpu_model, ev.gpu_model)
        except UnpricedHardwareError as exc:  # a node that joined after prepare() checked
            self._fail(run, str(exc))
            return
        s = self.studies[run.target]
        quality = float(ev.metrics[self.quality_metric])
        if run.is_baseline:
            s.baseline_quality, s.baseline_done = quality, True
            s.baseline_metrics = dict(ev.metrics)
        drop = s.baseline_quality - quality if s.baseline_quality is not None else 0.0
        violated = []
        for c in self.limits:
            violation = c.violation(ev.metrics, s.baseline_metrics)
            run.trial.set_constraint(c.field, violation)
            if violation > 1e-12:
                violated.append(c.describe(c.value(ev.metrics, s.baseline_metrics)))
        feasible = not violated
        m = ev.measurement
        price = priced.per_hour_usd
        cost = pareto.cost_per_1k(price, m["throughput_ips"])
        s.study.tell(run.trial, [quality, m["p95_ms"], cost])
        row = self._row(run, "completed")
        row.update(
            node_id=ev.node_id,
            node_host=ev.host,
            precision_actual=ev.precision_actual,
            accuracy=quality,
            accuracy_drop=drop,
            quality_metric=self.quality_metric,
            latency_p50_ms=m["p50_ms"],
            latency_p90_ms=m["p90_ms"],
            latency_p95_ms=m["p95_ms"],
            latency_p99_ms=m["p99_ms"],
            latency_mean_ms=m["mean_ms"],
            latency_std_ms=m["std_ms"],
            latency_cv=m["cv"],
            throughput_ips=m["throughput_ips"],
            cost_per_1k_usd=cost,
            price_per_hour_usd=price,
            priced_as=priced.priced_as,
            gpu_model=priced.gpu_model,
            device_latency_p50_ms=ev.device_latency_p50_ms,
            device_latency_p95_ms=ev.device_latency_p95_ms,
            device_memory_mib=ev.device_memory_mib,
            n_samples=m["n_samples"],
            stable=m["stable"],
            unstable_reason=m.get("unstable_reason"),
            cold_ms=m.get("cold_ms"),
            compile_s=ev.compile_s,
            measure_s=ev.measure_s,
            eval_s=ev.eval_s,
            peak_rss_mb=ev.peak_rss_mb,
            env_id=ev.env_id,
            contract=m.get("contract"),
            feasible=feasible,
            infeasible_reason="; ".join(violated) or None,
        )
        self._record(row, ev.samples_ms, ev.metrics, (ev.env_id, ev.environment))

    def _fail(self, run: TrialRun, error: str) -> None:
        s = self.studies[run.target]
        s.study.tell(run.trial, state=optuna.trial.TrialState.FAIL)
        if run.is_baseline:
            s.stopped = s.stopped or (
                f"the baseline trial failed ({error}); no candidate can be judged"
            )
        row = self._row(run, "failed")
        row.update(error=error, feasible=False)
        self._record(row)

    def _row(self, run: TrialRun, status: str) -> dict[str, Any]:
        o = run.candidate.options
        return {
            "job_id": self.job_id,
            "target": run.target,
            "trial_number": run.number,
            "is_baseline": run.is_baseline,
            "candidate_hash": run.candidate.content_hash,
            # the task's settings (NMS IoU, score threshold) change quality: recorded with the knobs
            "params": {**run.candidate.params_dict(), **self.task.params()},
            "status": status,
            "node_id": run.node.node_id if run.node else None,
            "node_host": run.node.host if run.node else None,
            "node_ip": run.node.ip if run.node else None,
            "attempts": run.attempts,
            "precision": run.candidate.params_dict().get("precision"),
            "batch_size": o.batch_size,
            "threads": o.threads,
            "build_s": run.build_s,
            "cache_hit": run.cache_hit,
            "artifact_hash": run.artifact_hash,
            "artifact_bytes": run.artifact_bytes,
            "build_key": run.candidate.build_key(),
            "started_at": run.started_at.replace(tzinfo=None),
            "finished_at": datetime.now(UTC).replace(tzinfo=None),
            "trial_s": time.perf_counter() - run.asked_at,
        }

    def _record(
        self, row: dict[str, Any], samples: Any = (), metrics: Any = None, environment: Any = None
    ) -> None:
        row["orchestration_s"] = orchestration_s(row)
        self.store.record_trial(row, samples, metrics, environment)
        self.rows.append(row)
        self._mark_fronts()
        if self.progress is not None:
            self.progress(row)

    def _mark_fronts(self) -> None:
        per_target = {
            t: [
                r["trial_number"]
                for r in pareto.front_rows([r for r in self.rows if r["target"] == t])
            ]
            for t in self.spec.targets
        }
        global_front = [(r["target"], r["trial_number"]) for r in pareto.front_rows(self.rows)]
        self.store.set_fronts(self.job_id, per_target, global_front)
        for r in self.rows:
            r["on_front"] = r["trial_number"] in per_target[r["target"]]
            r["on_global_front"] = (r["target"], r["trial_number"]) in global_front

    def _fail_targets_without_nodes(self, nodes: list[Any]) -> None:
        """Fail what can no longer run: pending trials of a target no alive node serves, or
        that ask for more threads than any alive serving node has."""
        for s in self.studies.values():
            serving = [n for n in nodes if s.target in n.targets]
            if not serving:
                s.stopped = s.stopped or "lost capacity: no alive node serves this target"
            most_cpus = max((n.cpus for n in serving), default=0)
            for run in [r for r in self.pending if r.target == s.target]:
                if run.candidate.options.threads <= most_cpus:
                    continue
                self.pending.remove(run)
                threads = run.candidate.options.threads
                what = (
                    f"no alive node serves {s.target}"
                    if not serving
                    else f"no alive node serving {s.target} has {threads} CPUs"
                )
                self._fail(run, f"{what} (capacity lost); last error: {run.last_error}")

    def _cancel_in_flight(self) -> None:
        import ray

        for ref in list(self.in_flight):
            ray.cancel(ref, force=True)
        self.in_flight.clear()
        self.pending.clear()


#: The parts of a trial's time the worker accounts for; the rest is orchestration.
TRIAL_PARTS = ("build_s", "compile_s", "eval_s", "measure_s")


def orchestration_s(row: dict[str, Any]) -> float | None:
    """A completed trial's time outside build, compile, quality evaluation and measurement:
    waiting for a node, Ray scheduling, worker start-up, moving data, the driver's own work.
    None for a failed trial (where its time went is not known)."""
    if row.get("status") != "completed" or row.get("trial_s") is None:
        return None
    return float(row["trial_s"]) - sum(float(row.get(p) or 0.0) for p in TRIAL_PARTS)


def job_limits(
    spec: JobSpec, task: Any, data: Any, primary: str, evaluation: Any = None
) -> list[Any]:
    """The job's ``[constraints]`` resolved for its task and data: a limit on a metric this job
    cannot record (``map`` without annotations, a class the data does not have) is refused."""
    from farm.spec.constraints import parse_limits

    if "max_accuracy_drop" in spec.constraints and task.name != "classification":
        raise UsageError(
            f"{spec.source}: field `constraints.max_accuracy_drop`: the classification spelling; "
            f"for this {task.name} workload write max_quality_drop (a drop of "
            f"{task.primary_metric(data.has_labels)})"
        )
    from workloads.kpis.spec import kpi_names

    names = set(task.metric_names(data.has_labels))
    classes = data.class_names
    labels = classes.values() if isinstance(classes, dict) else (classes or ())
    if data.has_labels:
        names.update(f"{p}{c}" for p in task.per_class_prefixes for c in labels)
    if evaluation is not None:
        calibration = data.has_labels and task.name != "segmentation"
        names.update(kpi_names(evaluation, calibration, bool(data.slices)))
    names.update(f"slice/{s}" for s in data.slices or {})
    try:
        limits = parse_limits(spec.source, "constraints", spec.constraints, names, ())
    except UsageError as exc:
        raise UsageError(
            f"{exc} (for this {task.name} workload"
            + ("" if data.has_labels else ", whose data has no labels: only fidelity is measured")
            + ")"
        ) from None
    return [c.resolved(primary) for c in limits]


def task_with_contract(task: Any, spec: JobSpec) -> Any:
    """The workload's task with the job's ``[measurement] measure_postprocess`` applied."""
    import dataclasses

    value = spec.measurement.get("measure_postprocess")
    if value is None:
        return task
    if not hasattr(task, "measure_postprocess"):
        raise UsageError(
            f"{spec.source}: field `measurement.measure_postprocess`: only for detection and "
            f"segmentation workloads ({task.name} has no post-processing to time)"
        )
    return dataclasses.replace(task, measure_postprocess=value)


def source_build_key(workload_hash: str) -> str:
    """The cache key of the unoptimized model (a candidate with an empty transform chain)."""
    return Candidate(workload_hash, "", (), RuntimeOptions()).build_key()


def node_slot(node: Any) -> dict[str, float]:
    """The node's exclusivity unit, when it has one: Ray then keeps the node to this one task
    across every job on the cluster (the driver's own leases only cover this job)."""
    return {NODE_SLOT: 1.0} if node.slotted else {}


def reference_predictions(
    source: Any, data: Any, task: Any = None, fixed_batch: int | None = None
) -> Any:
    """The unoptimized model's predictions on the eval split (fp32, PyTorch for a torch model,
    ONNX Runtime for an ONNX file): the reference every candidate's fidelity is measured against.

    Raises :class:`UsageError` when the model's outputs do not follow the task's convention
    (a user's ONNX detector whose outputs are not what the job declares)."""
    import tempfile

    from farm.errors import TrialError
    from farm.worker import evaluate as worker
    from targets import RuntimeOptions, runtime_class
    from workloads.tasks import Classification

    task = task or Classification()
    with tempfile.TemporaryDirectory(prefix="farm-reference-") as tmp:
        if source.format == "torch-state":
            from targets.torch_runtime import TorchSession
            from workloads import build_module

            session: Any = TorchSession(build_module(source), "fp32", ())
            batch = task.max_batch or 64
        else:
            options = RuntimeOptions(threads=os.cpu_count() or 1)
            session = runtime_class("onnxruntime")().compile(source, options, Path(tmp))
            batch = fixed_batch or 1
        try:
            outputs = worker.run_outputs(session, task, data.eval.x[:batch])
            task.check_outputs(outputs, source.meta.get("workload", "the model"), data)
            return worker.predict_split(session, task, data.eval, batch)
        except (ValueError, TrialError) as exc:
            raise UsageError(str(exc)) from None
        finally:
            session.close()


def _short_error(exc: BaseException) -> str:
    """What a failed trial stores: a trial's own error whole (it names the step, the transform or
    runtime and the runtime's message, whitespace collapsed), else the type and last line."""
    from farm.errors import TrialError

    if isinstance(exc, TrialError):
        return " ".join(str(exc).split())[:1000]
    text = str(exc).strip().splitlines()
    last = text[-1] if text else ""
    return f"{type(exc).__name__}: {last}"[:500]
