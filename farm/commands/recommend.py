"""`farm recommend JOB --budget FILE`: the configuration to ship per target and overall."""

from __future__ import annotations

import argparse
import json

from farm.store.db import Store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", help="job id, unique id prefix, or job name (newest of that name)")
    parser.add_argument("--budget", required=True, help="budget file (TOML; see docs/budgets.md)")
    parser.add_argument("--db", help="DuckDB store (default $FARM_DB or results/farm.duckdb)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def run(args: argparse.Namespace) -> int:
    from farm.api import Job
    from farm.release.budget import load_budget
    from farm.release.recommend import render_text

    budget = load_budget(args.budget)
    store = Store(args.db)
    rec = Job(store, store.resolve_job(args.job).job_id).recommend(budget)
    if args.json:
        print(json.dumps(rec.to_dict(), default=str, indent=2))
    else:
        print(render_text(rec))
    return 0 if rec.ok else 1
