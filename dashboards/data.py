"""What a report shows, read from the store with a few SQL queries (no live job involved).

Sized for big jobs: the front and baseline rows are read whole, but the other trials of each
target are a deterministic sample of at most ``max_points`` per target and feasibility class, so a
million-trial job yields a report that still opens in a browser. Counts are always exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from farm._io import json_mapping
from farm.release.budget import Budget, Limits
from farm.release.history import History, release_history
from farm.release.recommend import Recommendation, recommend
from farm.store.db import Store, connect
from farm.store.records import JobRecord, TrialRecord

#: Jobs of the report's name its history section shows (the newest, up to the report's job).
HISTORY_JOBS = 30
#: Columns of the trials the report reads (TrialRecord fields; ``params`` parsed on reading).
COLUMNS = (
    "t.job_id, t.target, trial_number, is_baseline, params, t.status, precision, "
    "precision_actual, "
    "batch_size, "
    "threads, quality, quality_drop, quality_metric, latency_p50_ms, latency_p95_ms, "
    "latency_p99_ms, throughput_ips, cost_per_1k_usd, artifact_bytes, stable, t.feasible, "
    "on_front, on_global_front, env_id, contract, candidate_hash, infeasible_reason, "
    "gpu_model, priced_as"
)


@dataclass
class ReportData:
    job: JobRecord
    #: Every plotted trial: fronts, baselines, and the sample of the rest (``sampled`` marks it);
    #: one column per TrialRecord field read (``params`` as dicts, ``contract`` as JSON text).
    trials: pd.DataFrame
    #: Per target: trials, completed, failed, infeasible, on_front (exact counts).
    counts: pd.DataFrame
    #: env_id -> fingerprint.
    environments: dict[str, dict[str, Any]]
    budget: Budget | None = None
    recommendation: Recommendation | None = None
    #: Per target: {objective: {param: importance}}; per target, a note when not computable.
    importances: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    importance_notes: dict[str, str] = field(default_factory=dict)
    #: The jobs of this job's name up to it (dashboards/history_page.py draws them).
    history: History | None = None
    #: (target, trial_number) -> every metric of the plotted trials (KPIs of front points).
    metrics: dict[tuple[str, int], dict[str, float]] = field(default_factory=dict)
    #: The release note (farm/release/card.py) as HTML.
    card_html: str = ""
    #: (target, trial_number) -> the candidate's paired comparison with its baseline.
    comparisons: dict[tuple[str, int], Any] = field(default_factory=dict)
    #: What would ship per target (the budget's recommendation, else the recommend rule among
    #: the feasible trials): the report's first screen.
    decision: Recommendation | None = None
    #: The error gallery of what would ship (dashboards/gallery.py) as HTML.
    gallery_html: str = ""

    @property
    def metric(self) -> str:
        """The name of the quality metric the job optimised (accuracy, map, miou…)."""
        names = self.trials["quality_metric"].dropna().unique().tolist()
        return str(names[0]) if names else "accuracy"

    @property
    def targets(self) -> list[str]:
        return sorted(self.counts["target"])

    def of_target(self, target: str) -> pd.DataFrame:
        return self.trials[self.trials["target"] == target]

    def baseline(self, target: str) -> TrialRecord | None:
        """The target's completed fp32 batch-1 baseline, with its metrics."""
        t = self.of_target(target)
        rows = t[t["is_baseline"] & (t["status"] == "completed")]
        if rows.empty:
            return None
        record = TrialRecord.from_row(rows.iloc[0].to_dict())
        return record.replace(metrics=self.metrics.get((target, record.trial_number), {}))


def load(
    store: Store,
    job_ref: str,
    budget: Budget | None = None,
    max_points: int = 2000,
    importance_trials: int = 200,
    with_importances: bool = True,
) -> ReportData:
    """Read one job's report data from the store."""
    job = store.resolve_job(job_ref)
    job_id = job.job_id
    with connect(store.path, read_only=True) as con:
        counts = con.execute(
            "SELECT target, count(*) AS trials, "
            "count(*) FILTER (WHERE status = 'completed') AS completed, "
            "count(*) FILTER (WHERE status = 'failed') AS failed, "
            "count(*) FILTER (WHERE status = 'completed' AND NOT coalesce(feasible, FALSE)) "
            "AS infeasible, count(*) FILTER (WHERE on_front) AS on_front "
            "FROM trials WHERE job_id = ? GROUP BY target ORDER BY target",
            [job_id],
        ).df()
        # A deterministic sample of about ``max_points`` per (target, status, feasible) class:
        # a hash filter with a per-class rate (a window function is ~100× slower at 1M rows).
        trials = con.execute(
            "WITH classes AS (SELECT target, status, feasible, count(*) AS n FROM trials "
            "  WHERE job_id = ? GROUP BY ALL) "
            f"SELECT {COLUMNS}, NOT (on_front OR on_global_front OR is_baseline) AS sampled "
            "FROM trials t JOIN classes c ON t.target = c.target AND t.status = c.status "
            "AND t.feasible IS NOT DISTINCT FROM c.feasible "
            "WHERE t.job_id = ? AND (on_front OR on_global_front OR is_baseline "
            "  OR hash(t.trial_number) % 1000003 < 1000003 * ? / c.n) "
            "ORDER BY t.target, trial_number",
            [job_id, job_id, max_points],
        ).df()
        imp_rows = con.execute(
            "SELECT target, params, quality, latency_p95_ms, cost_per_1k_usd FROM trials "
            "WHERE job_id = ? AND status = 'completed' "
            "QUALIFY row_number() OVER (PARTITION BY target ORDER BY hash(trial_number)) <= ?",
            [job_id, importance_trials],
        ).df()
    trials["params"] = [json_mapping(p) for p in trials["params"]]
    data = ReportData(job, trials, counts, store.environments(job_id), budget)
    plotted = set(zip(trials["target"], trials["trial_number"], strict=True))
    data.metrics = {k: v for k, v in store.metrics(job_id).items() if k in plotted}
    candidates = _completed_candidates(store, job_id, trials, data.metrics)
    from farm.release.card import build_card, to_html

    data.card_html = to_html(build_card(store, job_id, budget, trials=candidates))
    data.history = release_history(store, job.name, budget, until=job_id, last=HISTORY_JOBS)
    data.comparisons = {k: c for k, (_, c) in store.comparisons(job_id).items()}
    if budget is not None:
        data.recommendation = recommend(job_id, candidates, budget, None, data.comparisons)
    targets = sorted({t.target for t in candidates})
    no_budget = Budget("(no budget)", Limits(), {t: Limits() for t in targets})
    data.decision = data.recommendation or recommend(
        job_id, candidates, no_budget, targets, data.comparisons
    )
    data.gallery_html = _gallery(store, job_id, data.decision)
    if not with_importances:
        return data
    from dashboards.importance import param_importances

    for target in data.targets:
        result = param_importances(imp_rows[imp_rows["target"] == target])
        if isinstance(result, str):
            data.importance_notes[target] = result
        else:
            data.importances[target] = result
    return data


def _gallery(store: Store, job_id: str, decision: Recommendation | None) -> str:
    from dashboards.gallery import gallery, html_section

    picks = [
        (c.pick.trial.target, c.pick.trial.trial_number)
        for c in (decision.per_target.values() if decision else ())
        if c.pick is not None and not c.pick.trial.is_baseline
    ]
    return html_section(*gallery(store, job_id, picks))


def _completed_candidates(
    store: Store,
    job_id: str,
    plotted: pd.DataFrame,
    metrics: dict[tuple[str, int], dict[str, float]],
) -> list[TrialRecord]:
    """Trials the report's recommendation and release note consider, with their metrics: all of
    them, unless the job is huge; then the plotted ones (fronts, baselines, the sample).
    `farm recommend` and `farm card` always read them all."""
    if store.trial_count(job_id) <= 20_000:
        return store.trials(job_id)
    records = [TrialRecord.from_row(r) for r in plotted.to_dict("records")]
    return [t.replace(metrics=metrics.get((t.target, t.trial_number), {})) for t in records]
