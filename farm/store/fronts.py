"""Pareto fronts over quality (max), p95 latency (min) and cost per 1k inferences (min).

Quality is the task's primary metric (accuracy, mAP, mIoU, a fidelity).

A point is on the front when no other point is at least as good on every objective and strictly
better on one. Identical points do not dominate each other, so ties are all kept on the front.
Only completed, feasible trials take part; failed and infeasible trials are never on a front.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import duckdb
import numpy as np

if TYPE_CHECKING:
    from farm.store.records import TrialRecord

#: (field, sense) of the farm's three objectives; +1 maximise, -1 minimise. The fields are
#: TrialRecord fields and ``trials`` columns.
OBJECTIVES: tuple[tuple[str, int], ...] = (
    ("quality", +1),
    ("latency_p95_ms", -1),
    ("cost_per_1k_usd", -1),
)


def pareto_mask(values: np.ndarray, senses: Sequence[int]) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``values`` (n × k); +1 maximise, -1 minimise.

    Each step takes the remaining point with the smallest positively weighted sum of (range-
    normalised) objectives: such a point cannot be dominated (a dominator would have a smaller
    sum), so it is on the front, and every point it dominates leaves the working set for good.
    The first steps remove most points, so a million rows take well under a second.
    """
    if values.ndim != 2 or values.shape[1] != len(senses):
        raise ValueError(f"values must be n × {len(senses)}, got shape {values.shape}")
    n = values.shape[0]
    mask = np.zeros(n, dtype=bool)
    if n == 0:
        return mask
    costs = values * -np.asarray(senses, dtype=float)
    # Positive weights that put every column on a comparable scale.
    spread = costs.max(axis=0) - costs.min(axis=0)
    score = costs @ (1.0 / np.where(spread > 0, spread, 1.0))
    # Alive points in increasing score; one contiguous array per objective (fast to filter).
    alive = np.argsort(score, kind="stable")
    cols = [np.ascontiguousarray(costs[alive, j]) for j in range(costs.shape[1])]
    while alive.size:
        mask[alive[0]] = True  # smallest score among the alive: on the front
        head = [c[0] for c in cols]
        no_better = cols[0] >= head[0]
        worse = cols[0] > head[0]
        for c, h in zip(cols[1:], head[1:], strict=True):
            no_better &= c >= h
            worse |= c > h
        keep = ~(no_better & worse)
        keep[0] = False
        alive = alive[keep]
        cols = [c[keep] for c in cols]
    return mask


def front(trials: Sequence[TrialRecord]) -> list[TrialRecord]:
    """The trials on the front among those that are completed and feasible."""
    eligible = [t for t in trials if t.completed and t.feasible]
    if not eligible:
        return []
    # the quality column is oriented (an error rate negated) so that +1 maximises it
    values = np.array(
        [
            [
                float(getattr(t, f)) * (t.quality_sense if f == "quality" else 1)
                for f, _ in OBJECTIVES
            ]
            for t in eligible
        ]
    )
    mask = pareto_mask(values, [s for _, s in OBJECTIVES])
    return [t for t, keep in zip(eligible, mask, strict=True) if keep]


def cost_per_1k(price_per_hour_usd: float, throughput_ips: float) -> float:
    """USD per 1,000 inferences: price per hour ÷ (throughput × 3600) × 1000."""
    if throughput_ips <= 0:
        raise ValueError(f"throughput must be positive, got {throughput_ips}")
    return price_per_hour_usd / (throughput_ips * 3600.0) * 1000.0


def mark_fronts(con: duckdb.DuckDBPyConnection, job_id: str) -> tuple[int, int]:
    """Recompute ``on_front`` (per target) and ``on_global_front`` of a job in one transaction;
    returns (per-target front rows, global front rows). Same eligibility as the engine:
    completed, feasible trials only."""
    oriented = {
        "quality": "quality * (CASE WHEN quality_higher_is_better = FALSE THEN -1 ELSE 1 END)"
    }
    cols = ", ".join(f"{oriented.get(c, c)} AS {c}" for c, _ in OBJECTIVES)
    senses = [s for _, s in OBJECTIVES]
    frame = con.execute(
        f"SELECT target, trial_number, {cols} FROM trials WHERE job_id = ? "
        "AND status = 'completed' AND feasible",
        [job_id],
    ).df()
    values = frame[[c for c, _ in OBJECTIVES]].to_numpy(dtype=float)
    per_target = np.zeros(len(frame), dtype=bool)
    for _, idx in frame.groupby("target").indices.items():
        per_target[idx] = pareto_mask(values[idx], senses)
    glob = pareto_mask(values, senses)
    keys = frame[["target", "trial_number"]].assign(on_front=per_target, on_global=glob)
    keys = keys[keys["on_front"] | keys["on_global"]]
    con.execute("BEGIN")
    try:
        con.execute(
            "UPDATE trials SET on_front = FALSE, on_global_front = FALSE "
            "WHERE job_id = ? AND (on_front OR on_global_front)",
            [job_id],
        )
        con.register("front_keys", keys)
        con.execute(
            "UPDATE trials SET on_front = k.on_front, on_global_front = k.on_global "
            "FROM front_keys k WHERE trials.job_id = ? AND trials.target = k.target "
            "AND trials.trial_number = k.trial_number",
            [job_id],
        )
        con.unregister("front_keys")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return int(per_target.sum()), int(glob.sum())
