"""Pareto fronts for big stores: set-based flag updates (the filter is farm.pareto's)."""

from __future__ import annotations

import duckdb
import numpy as np

from farm.pareto import OBJECTIVES, pareto_mask


def mark_fronts(con: duckdb.DuckDBPyConnection, job_id: str) -> tuple[int, int]:
    """Recompute ``on_front`` (per target) and ``on_global_front`` of a job in one transaction;
    returns (per-target front rows, global front rows). Same eligibility as the engine:
    completed, feasible trials only."""
    cols = ", ".join(c for c, _ in OBJECTIVES)
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
