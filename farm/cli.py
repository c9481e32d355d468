"""The ``farm`` command line.

Each sub-command lives in ``farm/commands/<name>.py`` and exposes ``add_arguments(parser)`` and
``run(args) -> int``. They are imported only when chosen, so ``farm --help`` stays cheap.
Exit codes: 0 success, 1 a check failed (gate, recommend found nothing), 2 bad input.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from farm.errors import FarmError, UsageError

#: sub-command -> (module in farm.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run", "run an optimization job from a job file"),
    "jobs": ("jobs", "list the jobs in the store, newest first"),
    "pareto": ("pareto", "show a job's Pareto front(s), per target and across targets"),
    "measure": ("measure", "measure one model on one target with the farm's harness"),
    "report": ("report", "write a job's self-contained HTML report"),
    "recommend": ("recommend", "pick the best configuration per target under a budget"),
    "gate": ("gate", "CI gate: budgets and regressions against a baseline job"),
    "export": ("export", "export a job's trials as parquet, csv or json"),
    "targets": ("targets", "list the cluster's nodes and the targets each serves"),
    "submit": ("submit", "hand a job to a Ray cluster (Ray Jobs) and return"),
    "resume": ("resume", "continue an interrupted job from the store"),
    "history": ("history", "how a job name's p95, cost and quality moved over its jobs"),
    "card": ("card", "write a job's release note: every KPI of what would ship, per target"),
    "gallery": ("gallery", "draw the images a candidate broke and fixed against fp32"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="farm", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        # No -h here: `farm CMD --help` is answered by the command's own parser (second pass),
        # which knows its arguments. They are added lazily, to keep start-up cheap.
        p = sub.add_parser(name, help=help_text, description=help_text, add_help=False)
        p.set_defaults(_module=module_name)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    # First pass: find the command; second pass: parse its own arguments.
    known, _ = parser.parse_known_args(argv)
    module = importlib.import_module(f"farm.commands.{known._module}")
    command_parser = argparse.ArgumentParser(
        prog=f"farm {known.command}", description=COMMANDS[known.command][1]
    )
    module.add_arguments(command_parser)
    args = command_parser.parse_args(argv[1:] if argv and argv[0] == known.command else argv)
    try:
        return int(module.run(args) or 0)
    except UsageError as exc:
        print(f"farm {known.command}: error: {exc}", file=sys.stderr)
        return 2
    except FarmError as exc:
        print(f"farm {known.command}: failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"farm {known.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
