"""`farm pareto JOB`: a job's Pareto front per target and across targets (reads the store only)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from farm.store.db import Store
from farm.store.records import JobRecord, TrialRecord


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", help="job id, unique id prefix, or job name (newest of that name)")
    parser.add_argument("--db", help="DuckDB store (default $FARM_DB or results/farm.duckdb)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")


def run(args: argparse.Namespace) -> int:
    from farm.display import make_console, print_fronts

    store = Store(args.db)
    job = store.resolve_job(args.job)
    trials = store.trials(job.job_id)
    changes = {k: c for k, (_, c) in store.comparisons(job.job_id).items()}
    if args.json:
        print(json.dumps(fronts_json(job, trials, changes), default=str, indent=2))
        return 0
    console = make_console()
    console.print(f"job {job.job_id} ({job.status})")
    print_fronts(console, job, trials, changes)
    return 0


def fronts_json(
    job: JobRecord, trials: list[TrialRecord], changes: dict[tuple[str, int], Any] | None = None
) -> dict[str, Any]:
    """``--json``: each target's front and the global front, every trial as its store row
    (``quality`` / ``quality_drop`` beside ``accuracy`` / ``accuracy_drop``), a candidate's
    paired comparison with its baseline as ``quality_change`` (``significant``, ``low``,
    ``high``, ``broken``, ``fixed``…)."""
    front = [t for t in trials if t.on_front]
    changes = changes or {}

    def row(t: TrialRecord) -> dict[str, Any]:
        out = t.to_row()
        c = changes.get((t.target, t.trial_number))
        if c is not None:
            out["quality_change"] = c.to_dict()
        return out

    return {
        "job_id": job.job_id,
        "status": job.status,
        "per_target": {
            target: [row(t) for t in front if t.target == target]
            for target in sorted({t.target for t in trials})
        },
        "global": [row(t) for t in trials if t.on_global_front],
    }
