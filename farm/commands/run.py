"""`farm run JOB.toml`: run an optimization job and print its Pareto fronts."""

from __future__ import annotations

import argparse
from typing import Any

from farm.spec import JobSpec, load_job
from farm.store import Store


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", help="join this Ray cluster instead of starting one here")
    parser.add_argument("--db", help="DuckDB store (default $FARM_DB or results/farm.duckdb)")
    parser.add_argument(
        "--trials", type=positive_int, help="trials per target (overrides the job file)"
    )


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", help="the job file (TOML)")
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    spec = load_job(args.job)
    if args.trials is not None:
        spec = spec.with_trials(args.trials)
    return execute(spec, Store(args.db), args.address)


def execute(spec: JobSpec, store: Store, address: str | None, resume_job: str | None = None) -> int:
    """Run (or resume) a job with a progress bar per target, then print its fronts."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from farm.display import make_console, print_fronts
    from farm.engine import JobRunner

    console = make_console()
    with Progress(
        TextColumn("{task.description:<18}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[last]}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        bars: dict[str, Any] = {}

        def on_trial(row: dict[str, Any]) -> None:
            if row["status"] == "failed":
                last = f"failed: {row['error'][:60]}"
            else:
                last = f"q={row['accuracy']:.3f} p95={row['latency_p95_ms']:.3f}ms"
            progress.update(bars[row["target"]], advance=1, last=last)

        runner = JobRunner(spec, store, address=address, progress=on_trial, resume_job=resume_job)
        console.print(f"[bold]job[/] {runner.job_id} → {store.path}")
        runner.prepare()
        for t, s in runner.studies.items():
            done = sum(1 for r in runner.rows if r["target"] == t)
            bars[t] = progress.add_task(t, total=s.budget, completed=done, last="")
        status = runner.run(prepared=True)
    print_fronts(console, store.resolve_job(runner.job_id), store.trials(runner.job_id))
    for message in runner.messages:
        console.print(f"[yellow]note:[/] {message}")
    console.print(f"job {runner.job_id}: {status}")
    return 130 if status == "interrupted" else 0
