"""`farm jobs`: the jobs in the store, newest first."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

from farm.store import Store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", help="DuckDB store (default $FARM_DB or results/farm.duckdb)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    jobs = Store(args.db).jobs()
    if args.json:
        print(json.dumps(jobs, default=str, indent=2))
        return 0
    table = Table(title=f"{len(jobs)} jobs")
    for col in ("job_id", "name", "status", "created_at", "trials", "completed", "failed"):
        table.add_column(col)
    for j in jobs:
        table.add_row(
            j["job_id"],
            j["name"],
            j["status"],
            f"{j['created_at']:%Y-%m-%d %H:%M:%S}",
            str(j["trials"]),
            str(j["completed"]),
            str(j["failed"]),
        )
    Console().print(table)
    return 0
