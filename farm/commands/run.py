"""`farm run JOB.toml`: run an optimization job and print its Pareto fronts.

A thin layer over :func:`farm.api.run`: the whole job is validated (spec, workload, targets,
search spaces) before a job is stored or said to have started, so bad input exits 2 with nothing
written and no "job … started" line.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from farm.api import Job


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--address",
        help="join this Ray cluster (HEAD:6379, or 'auto' for the one `ray start` started here) "
        "instead of starting a local Ray instance",
    )
    parser.add_argument("--db", help="DuckDB store (default $FARM_DB or results/farm.duckdb)")
    parser.add_argument(
        "--trials", type=positive_int, help="trials per target (overrides the job file)"
    )
    parser.add_argument(
        "--mlflow",
        metavar="URI",
        help="also log the job to MLflow at this tracking URI (e.g. file:./mlruns, "
        "http://HOST:5000); overrides the job file's [tracking] mlflow_uri",
    )


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", help="the job file (TOML)")
    add_common_arguments(parser)
    parser.add_argument(
        "--label", help="a label stored with the job, e.g. the git sha (see `farm history`)"
    )


def run(args: argparse.Namespace) -> int:
    from farm import api

    job = api.run(
        args.job,
        address=args.address,
        db=args.db,
        trials=args.trials,
        label=args.label,
        mlflow=args.mlflow,
    )
    return finish(job)


def finish(job: Job) -> int:
    """Print the job's fronts, the run's notes and its status; the exit code."""
    from farm.display import make_console, print_fronts

    console = make_console()
    changes = {k: c for k, (_, c) in job.store.comparisons(job.id).items()}
    print_fronts(console, job.record, job.records(), changes)
    printed = tuple(f"{t}: nothing measured" for t in job.unmeasured)
    notes = [m for m in job.messages if not m.startswith(printed)]
    for message in notes:
        console.print(f"[yellow]note:[/] {message}")
    for target, why in job.unmeasured.items():
        console.print(f"[red]{target}: nothing measured:[/] {why}", soft_wrap=True)
    status = job.status
    console.print(f"job {job.id}: {status}")
    if status == "interrupted":
        return 130
    if status == "failed":
        console.print("[red]no target produced a measurement[/]: the job failed")
        return 1
    return 0
