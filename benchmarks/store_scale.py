"""1,000,000 synthetic trial rows in a DuckDB store: time to mark the fronts and to produce the
report's data. Target: under 2 s each.

    .venv/bin/python benchmarks/store_scale.py [--rows 1000000] [--targets 4] [--keep PATH]

Rows are synthetic but shaped like real trials: accuracy falls as latency falls (cheaper builds
lose a little accuracy), cost follows throughput, some trials are infeasible or failed.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def synthetic_trials(job_id: str, rows: int, targets: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    target = np.array([f"cpu-synthetic-{i}" for i in range(targets)])[np.arange(rows) % targets]
    number = np.arange(rows) // targets
    batch = rng.choice([1, 2, 4, 8, 16, 32], rows)
    speed = rng.uniform(0.2, 1.0, rows)  # 1 = as slow as the baseline
    p50 = batch * 0.25 * speed * rng.lognormal(0, 0.05, rows)
    p95 = p50 * rng.uniform(1.05, 1.6, rows)
    accuracy = 0.97 - 0.05 * (1 - speed) ** 2 - rng.exponential(0.004, rows)
    throughput = batch / p50 * 1e3
    failed = rng.random(rows) < 0.02
    baseline = number == 0
    accuracy[baseline], failed[baseline] = 0.97, False
    drop = 0.97 - accuracy
    frame = pd.DataFrame(
        {
            "job_id": job_id,
            "target": target,
            "trial_number": number.astype(np.int32),
            "is_baseline": baseline,
            "candidate_hash": [f"{i:016x}" for i in range(rows)],
            "params": [
                json.dumps({"batch_size": int(b), "precision": "int8" if s < 0.5 else "fp32"})
                for b, s in zip(batch, speed, strict=True)
            ],
            "status": np.where(failed, "failed", "completed"),
            "attempts": 1,
            "batch_size": batch.astype(np.int32),
            "threads": 1,
            "quality": accuracy,
            "quality_drop": drop,
            "accuracy": accuracy,
            "accuracy_drop": drop,
            "latency_p50_ms": p50,
            "latency_p95_ms": p95,
            "latency_p99_ms": p95 * 1.2,
            "throughput_ips": throughput,
            "cost_per_1k_usd": 0.1 / (throughput * 3600) * 1000,
            "stable": True,
            "env_id": "synthetic",
            "contract": json.dumps({"percentile_method": "inverted_cdf"}),
            "feasible": ~failed & (drop <= 0.02),
        }
    )
    for column in ("quality", "accuracy", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms"):
        frame.loc[failed, column] = np.nan
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--targets", type=int, default=4)
    parser.add_argument("--keep", help="write the store here instead of a temporary folder")
    args = parser.parse_args()

    from dashboards import load, render
    from farm.store import fronts as pareto
    from farm.store.db import Store, connect
    from farm.store.fronts import mark_fronts

    folder = Path(args.keep or tempfile.mkdtemp(prefix="store_scale-"))
    store = Store(folder / "farm.duckdb")
    job_id = "scale-job"
    t0 = time.perf_counter()
    frame = synthetic_trials(job_id, args.rows, args.targets)
    with store.transaction() as con:  # creates the schema
        con.execute("DELETE FROM trials WHERE job_id = ?", [job_id])
        con.execute("DELETE FROM jobs WHERE job_id = ?", [job_id])
        con.execute(
            "INSERT INTO jobs (job_id, name, spec, status, created_at) "
            "VALUES (?, 'scale', '{}', 'completed', now())",
            [job_id],
        )
        con.register("frame", frame)
        con.execute(f"INSERT INTO trials ({', '.join(frame.columns)}) SELECT * FROM frame")
    print(
        f"store: {args.rows:,} trials over {args.targets} targets in {folder} "
        f"(built in {time.perf_counter() - t0:.1f} s)"
    )

    with connect(store.path) as con:
        t0 = time.perf_counter()
        n_front, n_global = mark_fronts(con, job_id)
        t_mark = time.perf_counter() - t0
    print(
        f"mark fronts (read objectives, per-target + global masks, write flags): "
        f"{t_mark:.2f} s -> {n_front} per-target front rows, {n_global} global  "
        f"[target < 2 s: {'OK' if t_mark < 2 else 'MISSED'}]"
    )

    eligible = frame[(frame["status"] == "completed") & frame["feasible"]]
    values = eligible[[c for c, _ in pareto.OBJECTIVES]].to_numpy(dtype=float)
    t0 = time.perf_counter()
    pareto.pareto_mask(values, [s for _, s in pareto.OBJECTIVES])
    print(
        f"  of which farm.store.fronts.pareto_mask on {len(values):,} rows: "
        f"{time.perf_counter() - t0:.2f} s"
    )

    t0 = time.perf_counter()
    data = load(store, job_id, with_importances=False)
    t_data = time.perf_counter() - t0
    print(
        f"report data (counts, fronts, baselines, sampled points, environments): {t_data:.2f} s "
        f"-> {len(data.trials):,} rows to plot  [target < 2 s: {'OK' if t_data < 2 else 'MISSED'}]"
    )
    t0 = time.perf_counter()
    data = load(store, job_id)
    t_imp = time.perf_counter() - t0
    t0 = time.perf_counter()
    page = render(data)
    t_render = time.perf_counter() - t0
    print(
        f"  with parameter importances (200 sampled trials per target): {t_imp:.2f} s; "
        f"HTML render: {t_render:.2f} s, {len(page) / 1e6:.1f} MB"
    )


if __name__ == "__main__":
    main()
