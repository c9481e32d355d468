"""`farm history NAME`: how each target's p95, cost and quality moved over the jobs of a name.

Per target it follows the configuration ``farm recommend`` picks under ``--budget``, else the
target's baseline, job after job (oldest first), and flags change points with the gate's own test
on the raw latency samples of consecutive jobs (see :mod:`farm.release.history`). ``--json`` for CI
dashboards, ``--html`` for a self-contained page with the chart. Exit 0 (a history is a report,
not a gate: ``farm gate`` fails builds).
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from rich.console import Console

    from farm.release.history import History


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from farm.commands.run import positive_int
    from farm.release.significance import DEFAULT_ALPHA, DEFAULT_THRESHOLD

    parser.add_argument("name", help="the job name (the `name` of the job file)")
    parser.add_argument("--budget", help="follow the recommended configuration under this budget")
    parser.add_argument("--db", help="DuckDB store (default $FARM_DB or results/farm.duckdb)")
    parser.add_argument("--last", type=positive_int, help="only the newest N jobs")
    parser.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help=f"median change that counts as a step (default {DEFAULT_THRESHOLD})",
    )
    parser.add_argument(
        "--alpha",
        type=float,
        default=DEFAULT_ALPHA,
        help=f"significance level of the Mann-Whitney U test (default {DEFAULT_ALPHA})",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--html", metavar="PATH", help="also write a page with the chart here")


def run(args: argparse.Namespace) -> int:
    from farm.api import open_store
    from farm.display import make_console
    from farm.gate.options import GateOptions, OptionError
    from farm.release.budget import load_budget
    from farm.release.history import release_history

    try:  # the gate's own test, so the gate's own checks of its options
        GateOptions(threshold=args.threshold, alpha=args.alpha)
    except OptionError as exc:
        raise exc.for_cli() from None
    budget = load_budget(args.budget) if args.budget else None
    store = open_store(args.db).store
    history = release_history(
        store, args.name, budget, last=args.last, threshold=args.threshold, alpha=args.alpha
    )
    if args.html:
        from dashboards.history_page import write_history

        path = write_history(history, args.html)
        if not args.json:
            print(f"wrote {path}")
    if args.json:
        print(json.dumps(history.to_dict(), default=str, indent=2))
    else:
        print_history(make_console(), history)
    return 0


def print_history(console: Console, history: History) -> None:
    """One table per target: the jobs oldest first, change points in red."""
    from rich.table import Table

    from farm.display import short_params

    console.print(
        f"[bold]{history.name}[/]: {len(history.jobs)} job(s), following each target's "
        f"{history.basis} configuration"
    )
    for target in history.targets:
        table = Table(title=target, title_justify="left")
        for header in ("job", "created", "configuration", "p95 ms", "USD / 1k", "quality"):
            numeric = header in ("p95 ms", "USD / 1k", "quality")
            justify: Literal["left", "right"] = "right" if numeric else "left"
            table.add_column(header, justify=justify, no_wrap=header == "job")
        table.add_column("change", overflow="fold")
        for p in history.of_target(target):
            name = p.job_id if not p.label else f"{p.label}\n[dim]{p.job_id}[/dim]"
            if p.trial_number is None:
                table.add_row(name, f"{p.created_at:%Y-%m-%d %H:%M}", f"[dim]{p.note}[/]")
                continue
            change = f"[bold red]{', '.join(p.changes)}[/]" if p.changes else ""
            extra = f"[dim]{p.note}[/]" if p.note else ""
            table.add_row(
                name,
                f"{p.created_at:%Y-%m-%d %H:%M}",
                f"#{p.trial_number} {short_params(p.params)}",
                _f(p.p95_ms, ".3f"),
                _f(p.cost_per_1k_usd, ".3g"),
                _f(p.quality, ".4f"),
                "\n".join(x for x in (change, extra) if x),
            )
        console.print(table)
    for p in history.changes:
        console.print(f"[red]change:[/] {p.target} in {p.label or p.job_id}: {p.detail}")
    console.print(f"how: {history.method}", style="dim")


def _f(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)
