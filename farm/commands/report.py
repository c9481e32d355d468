"""`farm report JOB [-o report.html] [--budget FILE]`: the job's self-contained HTML report."""

from __future__ import annotations

import argparse

from farm.store.db import Store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", help="job id, unique id prefix, or job name (newest of that name)")
    parser.add_argument(
        "-o", "--output", help="HTML file to write (default results/reports/<job_id>.html)"
    )
    parser.add_argument("--budget", help="budget file: draws its limits, adds the recommendation")
    parser.add_argument("--db", help="DuckDB store (default $FARM_DB or results/farm.duckdb)")
    parser.add_argument(
        "--max-points",
        type=int,
        default=2000,
        help="plot at most this many non-front trials per target and class (default 2000)",
    )


def run(args: argparse.Namespace) -> int:
    from farm.api import Job
    from farm.errors import UsageError
    from farm.release.budget import load_budget

    if args.max_points < 1:
        raise UsageError(f"--max-points: expected an integer >= 1, got {args.max_points}")
    budget = load_budget(args.budget) if args.budget else None
    store = Store(args.db)
    job = Job(store, store.resolve_job(args.job).job_id)
    path = job.report(args.output, budget, max_points=args.max_points)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, self-contained: opens offline)")
    return 0
