"""What a report shows, read from the store with a few SQL queries (no live job involved).

Sized for big jobs: the front and baseline rows are read whole, but the other trials of each
target are a deterministic sample of at most ``max_points`` per target and feasibility class, so a
million-trial job yields a report that still opens in a browser. Counts are always exact.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from farm.budget import Budget
from farm.recommend import Recommendation, recommend
from farm.store import Store, connect

#: Columns of the trials the report reads.
COLUMNS = (
    "t.target, trial_number, is_baseline, params, t.status, precision, precision_actual, "
    "batch_size, "
    "threads, accuracy, accuracy_drop, quality_metric, latency_p50_ms, latency_p95_ms, "
    "latency_p99_ms, throughput_ips, cost_per_1k_usd, artifact_bytes, stable, t.feasible, "
    "on_front, on_global_front, env_id, contract, candidate_hash"
)


@dataclass
class ReportData:
    job: dict[str, Any]
    #: Every plotted trial: fronts, baselines, and the sample of the rest (``sampled`` marks it).
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

    @property
    def targets(self) -> list[str]:
        return sorted(self.counts["target"])

    def of_target(self, target: str) -> pd.DataFrame:
        return self.trials[self.trials["target"] == target]

    def baseline(self, target: str) -> dict[str, Any] | None:
        t = self.of_target(target)
        rows = t[t["is_baseline"] & (t["status"] == "completed")]
        return None if rows.empty else rows.iloc[0].to_dict()


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
    job_id = job["job_id"]
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
        envs = {
            r[0]: json.loads(r[1])
            for r in con.execute(
                "SELECT env_id, fingerprint FROM environments WHERE env_id IN "
                "(SELECT DISTINCT env_id FROM trials WHERE job_id = ?)",
                [job_id],
            ).fetchall()
        }
        imp_rows = con.execute(
            "SELECT target, params, accuracy, latency_p95_ms, cost_per_1k_usd FROM trials "
            "WHERE job_id = ? AND status = 'completed' "
            "QUALIFY row_number() OVER (PARTITION BY target ORDER BY hash(trial_number)) <= ?",
            [job_id, importance_trials],
        ).df()
    data = ReportData(job, trials, counts, envs, budget)
    if budget is not None:
        rows = trials.to_dict("records")
        data.recommendation = recommend(job_id, _completed_candidates(store, job_id, rows), budget)
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


def _completed_candidates(
    store: Store, job_id: str, plotted: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Trials the report's recommendation considers: all of them, unless the job is huge; then
    the plotted ones (fronts, baselines, the sample). `farm recommend` always reads them all."""
    n = store.query("SELECT count(*) AS n FROM trials WHERE job_id = ?", [job_id])[0]["n"]
    return store.trials(job_id) if n <= 20_000 else plotted
