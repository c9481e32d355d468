"""`farm run JOB.toml`: run an optimization job and print its Pareto fronts."""

from __future__ import annotations

import argparse

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from farm.spec import load_job
from farm.store import Store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", help="the job file (TOML)")
    parser.add_argument("--address", help="join this Ray cluster instead of starting one here")
    parser.add_argument("--db", help="DuckDB store (default $FARM_DB or results/farm.duckdb)")
    parser.add_argument("--trials", type=int, help="trials per target (overrides the job file)")


def run(args: argparse.Namespace) -> int:
    from farm.display import make_console, print_fronts
    from farm.engine import JobRunner
    from farm.errors import UsageError

    spec = load_job(args.job)
    if args.trials is not None:
        if args.trials < 1:
            raise UsageError(f"--trials: expected a positive integer, got {args.trials}")
        spec = spec.with_trials(args.trials)
    store = Store(args.db)
    console = make_console()
    with Progress(
        TextColumn("{task.description:<18}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[last]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        tasks = {}

        def on_trial(row: dict) -> None:
            t = row["target"]
            last = (
                row["status"]
                if row["status"] == "failed"
                else (f"q={row['accuracy']:.3f} p95={row['latency_p95_ms']:.3f}ms")
            )
            progress.update(tasks[t], advance=1, last=last)

        runner = JobRunner(spec, store, address=args.address, progress=on_trial)
        console.print(f"[bold]job[/] {runner.job_id} → {store.path}")
        runner.prepare()
        for t in spec.targets:
            tasks[t] = progress.add_task(t, total=runner.studies[t].budget, last="")
        status = runner.run(prepared=True)
    job = store.resolve_job(runner.job_id)
    print_fronts(console, job, store.trials(runner.job_id))
    for m in runner.messages:
        console.print(f"[yellow]note:[/] {m}")
    console.print(f"job {runner.job_id}: {status}")
    return 130 if status == "interrupted" else 0
