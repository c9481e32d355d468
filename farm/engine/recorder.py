"""Turning a finished trial into a stored :class:`~farm.store.records.TrialRecord`: its price,
its constraints, its record, the store write, and the job's Pareto fronts re-marked.

The driver is the store's only writer; it holds the file only while it writes, so reports can
read it while a job runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from farm.engine.pricing import Price, price_trial
from farm.store.fronts import cost_per_1k, pareto_mask
from farm.store.records import TrialRecord

if TYPE_CHECKING:
    from farm.engine.prepare import PreparedJob
    from farm.engine.studies import TrialRun
    from farm.evidence.paired import Comparison
    from farm.store.db import Store
    from farm.worker.evaluate import Evaluation
    from workloads.evidence import Evidence

#: The parts of a trial's time the worker accounts for; the rest is orchestration.
TRIAL_PARTS = ("build_s", "compile_s", "eval_s", "measure_s")


def orchestration_s(record: TrialRecord) -> float | None:
    """A completed trial's time outside build, compile, quality evaluation and measurement:
    waiting for a node, Ray scheduling, worker start-up, moving data, the driver's own work.
    None for a failed trial (where its time went is not known)."""
    if not record.completed or record.trial_s is None:
        return None
    return float(record.trial_s) - sum(float(getattr(record, p) or 0.0) for p in TRIAL_PARTS)


class Recorder:
    """Builds, stores and keeps the job's trial records, and marks its fronts."""

    def __init__(
        self,
        store: Store,
        job_id: str,
        prepared: PreparedJob,
        clock: Callable[[], float],
        progress: Callable[[TrialRecord], None] | None = None,
    ) -> None:
        self.store = store
        self.job_id = job_id
        self.prepared = prepared
        self.clock = clock
        self.progress = progress
        #: Every trial of the job so far (stored ones of a resumed job first).
        self.records: list[TrialRecord] = []
        #: Per target, its baseline's trial number and per-image evidence.
        self.baselines: dict[str, tuple[int, Evidence]] = {}
        #: (target, trial_number) -> the candidate's paired comparison with its baseline.
        self.comparisons: dict[tuple[str, int], Comparison] = {}
        #: Per target, its baseline's metric on each bootstrap resample (drawn once).
        self.baseline_draws: dict[str, np.ndarray] = {}
        #: (target, trial_number) -> the same for KPIs that are per-image means (per class).
        self.kpi_comparisons: dict[tuple[str, int], list[Comparison]] = {}

    def resume(self, stored: Sequence[TrialRecord]) -> None:
        """Take a resumed job's stored trials, and its baselines' evidence from the store."""
        self.records = list(stored)
        for r in stored:
            if r.is_baseline and r.completed:
                evidence = self.store.evidence(self.job_id, r.target, r.trial_number)
                if evidence is not None:
                    self.baselines[r.target] = (r.trial_number, evidence)

    def compared(self, run: TrialRun, evidence: Evidence | None) -> Comparison | None:
        """The candidate's primary metric against its target's baseline, image by image (a
        baseline's evidence is kept for the candidates that follow it). None without evidence
        or when the two were judged on different images."""
        from farm.evidence.paired import compare, resampled

        if evidence is None:
            return None
        if run.is_baseline:
            self.baselines[run.target] = (run.number, evidence)
            return None
        base = self.baselines.get(run.target)
        if base is None or not base[1].same_images(evidence):
            return None
        task: Any = self.prepared.task  # a task with evidence is PerImage
        if run.target not in self.baseline_draws:  # the same resamples for every candidate
            self.baseline_draws[run.target] = resampled(task, base[1], self.prepared.evidence)
        comparison = compare(
            task,
            base[1],
            evidence,
            metric=self.prepared.quality_metric,
            higher_is_better=self.prepared.objective("quality").sense > 0,
            settings=self.prepared.evidence,
            baseline_draws=self.baseline_draws[run.target],
        )
        self.comparisons[(run.target, run.number)] = comparison
        self.kpi_comparisons[(run.target, run.number)] = self._kpis(base[1], evidence)
        return comparison

    def _kpis(self, base: Evidence, evidence: Evidence) -> list[Comparison]:
        """The KPIs judged like the primary metric (:func:`farm.evidence.kpis.compare_kpis`):
        per-class accuracy, the KPIs kept as per-image terms, the slices."""
        from farm.evidence.kpis import compare_kpis

        task: Any = self.prepared.task  # a task with evidence is PerImage
        return compare_kpis(
            task,
            base,
            evidence,
            higher_is_better=self.prepared.objective("quality").sense > 0,
            class_names=self.prepared.data.class_names,
            settings=self.prepared.evidence,
        )

    def price(self, run: TrialRun, ev: Evaluation) -> Price:
        """What the trial is charged: by the hardware that ran it (raises
        :class:`~farm.errors.UnpricedHardwareError` for a GPU without a price)."""
        spec = self.prepared.spec
        cpu_model = ev.environment.get("cpu_model")
        return price_trial(self.prepared.targets[run.target], spec.prices, cpu_model, ev.gpu_model)

    def judge(
        self,
        metrics: Mapping[str, float],
        baseline: Mapping[str, float],
        comparison: Comparison | None = None,
    ) -> tuple[dict[str, float], list[str]]:
        """How far the metrics are past each of the job's limits (> 0: violated), and a
        sentence for each violated one. Under ``quality_confidence`` the limits on the primary
        metric judge the worst end of the candidate's paired interval (``comparison``)."""
        from farm.spec.constraints import at_worst_end

        judged, basis = metrics, ""
        c = comparison
        if self.prepared.quality_confidence is not None and c is not None:
            judged = at_worst_end(metrics, c.metric, c.low, c.high, c.delta, c.higher_is_better)
            basis = f" (worst end of the {c.confidence:.0%} interval)".replace("%", " %")
        violations, violated = {}, []
        for limit in self.prepared.limits:
            on_primary = limit.metric == self.prepared.quality_metric
            values = judged if on_primary else metrics
            violations[limit.field] = limit.violation(values, baseline)
            if violations[limit.field] > 1e-12:
                said = limit.describe(limit.value(values, baseline))
                violated.append(said + (basis if on_primary else ""))
        return violations, violated

    def completed(
        self,
        run: TrialRun,
        ev: Evaluation,
        price: Price,
        baseline_quality: float | None,
        baseline_metrics: Mapping[str, float],
    ) -> tuple[TrialRecord, dict[str, float]]:
        """The record of a measured trial (not stored yet), and each limit's violation."""
        quality = float(ev.metrics[self.prepared.quality_metric])
        # positive when worse: below the baseline, or above it for an error rate (CER)
        sense = self.prepared.objective("quality").sense
        drop = (baseline_quality - quality) * sense if baseline_quality is not None else 0.0
        comparison = self.comparisons.get((run.target, run.number))
        violations, violated = self.judge(ev.metrics, baseline_metrics, comparison)
        m = ev.measurement
        record = self._base(run, "completed").replace(
            node_id=ev.node_id,
            node_host=ev.host,
            precision_actual=ev.precision_actual,
            quality=quality,
            quality_drop=drop,
            quality_metric=self.prepared.quality_metric,
            quality_higher_is_better=sense > 0,
            latency_p50_ms=m["p50_ms"],
            latency_p90_ms=m["p90_ms"],
            latency_p95_ms=m["p95_ms"],
            latency_p99_ms=m["p99_ms"],
            latency_mean_ms=m["mean_ms"],
            latency_std_ms=m["std_ms"],
            latency_cv=m["cv"],
            throughput_ips=m["throughput_ips"],
            cost_per_1k_usd=cost_per_1k(price.per_hour_usd, m["throughput_ips"]),
            price_per_hour_usd=price.per_hour_usd,
            priced_as=price.priced_as,
            gpu_model=price.gpu_model,
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
            feasible=not violated,
            infeasible_reason="; ".join(violated) or None,
            metrics=dict(ev.metrics),
        )
        return record, violations

    def failed(self, run: TrialRun, error: str) -> TrialRecord:
        """The record of a failed trial (not stored yet)."""
        return self._base(run, "failed").replace(error=error, feasible=False)

    def _base(self, run: TrialRun, status: str) -> TrialRecord:
        o = run.candidate.options
        params = run.candidate.params_dict()
        node = run.node
        return TrialRecord(
            job_id=self.job_id,
            target=run.target,
            trial_number=run.number,
            is_baseline=run.is_baseline,
            candidate_hash=run.candidate.content_hash,
            # the task's settings (NMS IoU, score threshold) change quality: stored with the knobs
            params={**params, **self.prepared.task.params()},
            status=status,
            node_id=node.node_id if node else None,
            node_host=node.host if node else None,
            node_ip=node.ip if node else None,
            attempts=run.attempts,
            precision=params.get("precision"),
            batch_size=o.batch_size,
            threads=o.threads,
            build_s=run.build_s,
            cache_hit=run.cache_hit,
            artifact_hash=run.artifact_hash,
            artifact_bytes=run.artifact_bytes,
            build_key=run.candidate.build_key(),
            started_at=run.started_at.replace(tzinfo=None),
            finished_at=datetime.now(UTC).replace(tzinfo=None),
            trial_s=self.clock() - run.asked_at,
        )

    def record(
        self,
        record: TrialRecord,
        samples: Sequence[float] = (),
        environment: tuple[str, dict[str, Any]] | None = None,
        evidence: Evidence | None = None,
    ) -> TrialRecord:
        """Store a finished trial (with its raw samples, metrics, environment, per-image
        evidence and comparison with its baseline), re-mark the fronts, and report it to the
        progress callback."""
        record = record.replace(orchestration_s=orchestration_s(record))
        key = (record.target, record.trial_number)
        comparison = self.comparisons.get(key)
        base = self.baselines.get(record.target)
        compared = [comparison, *self.kpi_comparisons.get(key, [])] if comparison else []
        self.store.record_trial(
            record,
            samples,
            dict(record.metrics),
            environment,
            evidence=(self.prepared.quality_metric, evidence) if evidence is not None else None,
            comparisons=(
                ((self.job_id, record.target, base[0]), compared)
                if compared and base is not None
                else None
            ),
        )
        self.records.append(record)
        self.mark_fronts()
        if self.progress is not None:
            self.progress(self.records[-1])
        return self.records[-1]

    def mark_fronts(self) -> None:
        """Re-mark the per-target and the global Pareto fronts, in the store and in the records
        (completed, feasible trials only)."""
        eligible = [r for r in self.records if r.completed and r.feasible]
        per_target = {
            t: [
                r.trial_number for r in front(self.prepared, [e for e in eligible if e.target == t])
            ]
            for t in self.prepared.spec.targets
        }
        global_front = [(r.target, r.trial_number) for r in front(self.prepared, eligible)]
        self.store.set_fronts(self.job_id, per_target, global_front)
        self.records = [
            r.replace(
                on_front=r.trial_number in per_target.get(r.target, ()),
                on_global_front=(r.target, r.trial_number) in global_front,
            )
            for r in self.records
        ]


def of_target(records: Sequence[TrialRecord], target: str) -> list[TrialRecord]:
    return [r for r in records if r.target == target]


def front(prepared: PreparedJob, records: Sequence[TrialRecord]) -> list[TrialRecord]:
    """The non-dominated records under the job's objectives."""
    if not records:
        return []
    objectives = prepared.objectives
    values = np.array([[o.value(r) for o in objectives] for r in records], dtype=float)
    mask = pareto_mask(values, [o.sense for o in objectives])
    return [r for r, keep in zip(records, mask, strict=True) if keep]
