"""`farm gate`: CI gate on budgets and regressions. Exit 0 pass, 1 fail, 2 bad input.

Latency regressions are confirmed before they fail the gate: both artifacts re-measured,
interleaved, on one node serving the target (:mod:`farm.gate.confirm`, docs/ci.md)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from farm.errors import UsageError
from farm.store.db import Store

if TYPE_CHECKING:
    from farm.gate.options import ConfirmOptions, GateOptions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from farm.release.comparable import DEFAULT_QUALITY_TOLERANCE
    from farm.release.significance import DEFAULT_ALPHA, DEFAULT_THRESHOLD

    parser.add_argument("--candidate", required=True, help="the job under test (id, prefix, name)")
    parser.add_argument("--budget", help="budget file (TOML; see docs/budgets.md)")
    base = parser.add_mutually_exclusive_group()
    base.add_argument("--baseline", help="baseline job in the same store (id, prefix, name)")
    base.add_argument("--baseline-file", help="baseline from `farm export --format json`")
    parser.add_argument("--db", help="DuckDB store (default $FARM_DB or results/farm.duckdb)")
    parser.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help=f"median slowdown that counts as a regression (default {DEFAULT_THRESHOLD})",
    )
    parser.add_argument(
        "--alpha",
        type=float,
        default=DEFAULT_ALPHA,
        help=f"significance level of the Mann-Whitney U test (default {DEFAULT_ALPHA})",
    )
    parser.add_argument(
        "--quality-tolerance",
        "--accuracy-tolerance",
        dest="quality_tolerance",
        type=float,
        default=DEFAULT_QUALITY_TOLERANCE,
        help="drop of the primary quality metric (accuracy, mAP…) that counts as a regression "
        f"(default {DEFAULT_QUALITY_TOLERANCE}; --accuracy-tolerance is its older name)",
    )
    parser.add_argument(
        "--kpi-tolerance",
        action="append",
        metavar="NAME=VALUE",
        help="largest change of a release KPI in its bad direction that is not a regression, "
        "e.g. ece=0.02 (repeatable; defaults in docs/ci.md)",
    )
    parser.add_argument(
        "--confidence", type=float, help="confidence of the tail-latency bound (default: budget's)"
    )
    parser.add_argument(
        "--allow-different-env",
        action="store_true",
        help="compare even when the machines or library versions differ",
    )
    parser.add_argument(
        "--allow-different-contract",
        action="store_true",
        help="compare even when the measurement contracts differ",
    )
    _add_confirm_arguments(parser)
    parser.add_argument("--markdown", help="write a GitHub-flavoured markdown summary here")
    parser.add_argument("--junit", help="write JUnit XML here")
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")


def _add_confirm_arguments(parser: argparse.ArgumentParser) -> None:
    """The confirmation's flags (:class:`farm.gate.options.ConfirmOptions`)."""
    from farm.gate.options import DEFAULT_DRIFT, DEFAULT_LIMIT, DEFAULT_MAX_ROUNDS

    confirm = parser.add_argument_group(
        "confirmation", "re-measuring both artifacts, interleaved, before a latency verdict"
    )
    confirm.add_argument(
        "--no-confirm",
        action="store_true",
        help="judge latency on the stored samples alone (the store-only rule; no re-measurement)",
    )
    confirm.add_argument(
        "--baseline-artifacts",
        metavar="DIR",
        help="folder holding the baseline's artifacts (`farm export --with-artifacts DIR`); "
        "default: the folder the export file records, then this store's artifact cache",
    )
    confirm.add_argument("--address", help="Ray cluster to measure on (default: start one here)")
    confirm.add_argument(
        "--drift",
        type=float,
        default=DEFAULT_DRIFT,
        help="between-job drift the stored numbers may carry: configurations whose stored "
        f"slowdown is above threshold - drift are re-measured (default {DEFAULT_DRIFT})",
    )
    confirm.add_argument(
        "--confirm-rounds",
        type=int,
        default=DEFAULT_MAX_ROUNDS,
        help="at most this many interleaved rounds per configuration "
        f"(default {DEFAULT_MAX_ROUNDS})",
    )
    confirm.add_argument(
        "--confirm-limit",
        type=int,
        default=DEFAULT_LIMIT,
        help="re-measure at most this many configurations, largest stored slowdown first "
        f"(default {DEFAULT_LIMIT})",
    )


def run(args: argparse.Namespace) -> int:
    from farm.api import Job
    from farm.gate.render import render_junit, render_markdown, render_text
    from farm.release.budget import load_budget

    if args.budget is None and args.baseline is None and args.baseline_file is None:
        raise UsageError("nothing to check: give --budget, --baseline or --baseline-file")
    options, confirm = _options(args)  # refused before the store is opened
    budget = load_budget(args.budget) if args.budget else None
    store = Store(args.db)
    job = Job(store, store.resolve_job(args.candidate).job_id)
    baseline = Path(args.baseline_file) if args.baseline_file else args.baseline
    result = job.gate(
        budget, baseline, options=options, confirm=confirm or False, progress=_progress
    )
    if args.markdown:
        _write(args.markdown, render_markdown(result))
    if args.junit:
        _write(args.junit, render_junit(result))
    if args.json:
        doc = {"passed": result.passed, "checks": [asdict(c) for c in result.checks]}
        print(json.dumps({**doc, "notes": result.notes}, indent=2))
    else:
        print(render_text(result))
    return 0 if result.passed else 1


def _options(args: argparse.Namespace) -> tuple[GateOptions, ConfirmOptions | None]:
    """The options the flags give, checked by the option classes themselves (the API's own
    checks), their errors naming the flags."""
    from farm.gate.kpi import parse_tolerances
    from farm.gate.options import ConfirmOptions, GateOptions, OptionError

    try:
        options = GateOptions(
            threshold=args.threshold,
            alpha=args.alpha,
            quality_tolerance=args.quality_tolerance,
            kpi_tolerances=parse_tolerances(args.kpi_tolerance),
            confidence=args.confidence,
            allow_different_env=args.allow_different_env,
            allow_different_contract=args.allow_different_contract,
        )
        if args.no_confirm:
            return options, None
        confirm = ConfirmOptions(
            drift=args.drift,
            confirm_rounds=args.confirm_rounds,
            confirm_limit=args.confirm_limit,
            baseline_artifacts=Path(args.baseline_artifacts) if args.baseline_artifacts else None,
            address=args.address,
        )
        confirm.check_rounds(options.alpha)
    except OptionError as exc:
        raise exc.for_cli() from None
    return options, confirm


def _progress(line: str) -> None:
    """Confirmation progress, on stderr so that stdout stays the verdict (or the JSON)."""
    print(f"farm gate: {line}", file=sys.stderr, flush=True)


def _write(path: str, text: str) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
