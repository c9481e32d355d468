"""`farm gate`: CI gate on budgets and regressions. Exit 0 pass, 1 fail, 2 bad input.

Latency regressions are confirmed before they fail the gate: both artifacts re-measured,
interleaved, on one node serving the target (:mod:`farm.gate.confirm`, docs/ci.md)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from farm.errors import UsageError
from farm.store.db import Store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from farm.gate.checks import DEFAULT_ACCURACY_TOLERANCE
    from farm.gate.confirm import DEFAULT_DRIFT, DEFAULT_LIMIT, DEFAULT_MAX_ROUNDS
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
        "--accuracy-tolerance",
        type=float,
        default=DEFAULT_ACCURACY_TOLERANCE,
        help=f"accuracy drop that counts as a regression (default {DEFAULT_ACCURACY_TOLERANCE})",
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
    parser.add_argument("--markdown", help="write a GitHub-flavoured markdown summary here")
    parser.add_argument("--junit", help="write JUnit XML here")
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")


def run(args: argparse.Namespace) -> int:
    from farm.gate.checks import (
        GateOptions,
        Snapshot,
        render_junit,
        render_markdown,
        render_text,
        run_gate,
    )
    from farm.gate.confirm import Confirmer, ConfirmOptions, min_rounds
    from farm.gate.kpi import parse_tolerances
    from farm.release.budget import load_budget

    if args.budget is None and args.baseline is None and args.baseline_file is None:
        raise UsageError("nothing to check: give --budget, --baseline or --baseline-file")
    if args.threshold < 0:
        raise UsageError(f"--threshold: expected a fraction >= 0, got {args.threshold}")
    if not 0 < args.alpha < 1:
        raise UsageError(f"--alpha: expected a number in (0, 1), got {args.alpha}")
    if args.confidence is not None and not 0.5 <= args.confidence < 1:
        raise UsageError(f"--confidence: expected a number in [0.5, 1), got {args.confidence}")
    if args.drift < 0:
        raise UsageError(f"--drift: expected a fraction >= 0, got {args.drift}")
    if args.confirm_rounds < min_rounds(args.alpha):
        raise UsageError(
            f"--confirm-rounds: expected at least {min_rounds(args.alpha)} (the fewest rounds "
            f"with a {1 - args.alpha:.0%} interval of the median at --alpha {args.alpha:g}), "
            f"got {args.confirm_rounds}"
        )
    if args.confirm_limit < 1:
        raise UsageError(f"--confirm-limit: expected at least 1, got {args.confirm_limit}")
    artifacts = Path(args.baseline_artifacts) if args.baseline_artifacts else None
    if artifacts is not None and not artifacts.is_dir():
        raise UsageError(
            f"--baseline-artifacts {artifacts}: not a folder (expected the DIR of "
            "`farm export --with-artifacts DIR`)"
        )
    budget = load_budget(args.budget) if args.budget else None
    store = Store(args.db)
    candidate = Snapshot.from_store(store, args.candidate)
    if args.baseline:
        baseline = Snapshot.from_store(store, args.baseline)
    elif args.baseline_file:
        baseline = Snapshot.from_file(args.baseline_file)
    else:
        baseline = None
    options = GateOptions(
        threshold=args.threshold,
        alpha=args.alpha,
        accuracy_tolerance=args.accuracy_tolerance,
        kpi_tolerances=parse_tolerances(args.kpi_tolerance),
        confidence=args.confidence,
        allow_different_env=args.allow_different_env,
        allow_different_contract=args.allow_different_contract,
    )
    confirmer = None
    if baseline is not None and not args.no_confirm:
        confirm_options = ConfirmOptions(
            drift=args.drift,
            max_rounds=args.confirm_rounds,
            limit=args.confirm_limit,
            baseline_artifacts=artifacts,
            address=args.address,
        )
        confirmer = Confirmer(candidate, baseline, confirm_options, store, _progress)
    try:
        result = run_gate(candidate, budget, baseline, options, confirmer)
    finally:
        if confirmer is not None:
            confirmer.close()
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


def _progress(line: str) -> None:
    """Confirmation progress, on stderr so that stdout stays the verdict (or the JSON)."""
    print(f"farm gate: {line}", file=sys.stderr, flush=True)


def _write(path: str, text: str) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
