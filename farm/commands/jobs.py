"""`farm jobs`: the jobs in the store, newest first.

Job ids and names are what people copy into every other command, so they are never cut: the
table drops or shortens the other columns first to fit the terminal (and folds an id only when
it alone is wider than the terminal). ``--json`` prints every column, and per job where its
trials' time went (``trial_time``).
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from farm.store.records import JobRecord

#: Layouts from the fullest to the narrowest: (header, key) per column. Keys:
#: ``created`` is the full timestamp, ``created_short`` month-day hour:minute, ``counts``
#: "trials (failed)". The first layout that fits the console is used.
LAYOUTS: tuple[tuple[tuple[str, str], ...], ...] = (
    (
        ("job_id", "job_id"),
        ("name", "name"),
        ("label", "label"),
        ("status", "status"),
        ("created_at", "created"),
        ("trials", "trials"),
        ("completed", "completed"),
        ("failed", "failed"),
    ),
    (
        ("job_id", "job_id"),
        ("name", "name"),
        ("label", "label"),
        ("status", "status"),
        ("created", "created_short"),
        ("trials", "counts"),
    ),
    (
        ("job_id", "job_id"),
        ("name", "name"),
        ("status", "status"),
        ("created", "created_short"),
        ("trials", "counts"),
    ),
    (("job_id", "job_id"), ("name", "name"), ("status", "status"), ("created", "created_short")),
    (("job_id", "job_id"), ("name", "name"), ("status", "status")),
    (("job_id", "job_id"), ("name", "name")),
)
#: Columns that must be shown whole.
KEEP_WHOLE = ("job_id", "name")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", help="DuckDB store (default $FARM_DB or results/farm.duckdb)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    from farm.api import open_store
    from farm.display import make_console

    store = open_store(args.db)
    if args.json:
        jobs = store.job_list()
        times = store.trial_times()
        for job in jobs:  # where the trials' time went (docs/measurement.md, trial time)
            job["trial_time"] = times.get(job["job_id"])
        print(json.dumps(jobs, default=str, indent=2))
        return 0
    print_jobs(make_console(), store.job_records())
    return 0


def cells(job: JobRecord) -> dict[str, str]:
    """Every value a layout may show, as text."""
    created = job.created_at
    return {
        "job_id": job.job_id,
        "name": job.name,
        "label": job.label or "",
        "status": job.status,
        "created": f"{created:%Y-%m-%d %H:%M:%S}",
        "created_short": f"{created:%m-%d %H:%M}",
        "trials": str(job.trials),
        "completed": str(job.completed),
        "failed": str(job.failed),
        "counts": f"{job.trials}" + (f" ({job.failed} failed)" if job.failed else ""),
    }


def jobs_table(jobs: list[JobRecord], width: int) -> Table:
    """The jobs as a table that fits ``width`` columns with every id and name whole: the first
    of :data:`LAYOUTS` that fits, else the id with the name under it (and the status if that
    fits); an id wider than the whole terminal is folded, never cut."""
    rows = [cells(j) for j in jobs]
    for layout in LAYOUTS:
        table = _table(len(jobs), layout, rows)
        if _natural_width(table) <= width:
            return table
    for r in rows:
        r["job"] = f"{r['job_id']}\n[dim]{r['name']}[/dim]"
    stacked = _table(len(jobs), (("job_id / name", "job"), ("status", "status")), rows)
    if _natural_width(stacked) <= width:
        return stacked
    return _table(len(jobs), (("job_id / name", "job"),), rows)


def _table(count: int, layout: tuple[tuple[str, str], ...], rows: list[dict[str, str]]) -> Table:
    table = Table(
        title=f"{count} jobs",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        show_edge=False,
    )
    for header, key in layout:
        table.add_column(
            header,
            no_wrap=key in KEEP_WHOLE,
            overflow="fold",
            justify="right" if key in ("trials", "completed", "failed") else "left",
        )
    for r in rows:
        table.add_row(*(r[key] for _, key in layout))
    return table


def _natural_width(table: Table) -> int:
    """The width the table takes when nothing constrains it."""
    return Console(width=100_000).measure(table).maximum


def print_jobs(console: Console, jobs: list[JobRecord]) -> None:
    console.print(jobs_table(jobs, console.width))
