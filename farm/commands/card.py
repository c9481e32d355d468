"""`farm card JOB [--budget FILE] [-o card.md]`: the job's release note (model card)."""

from __future__ import annotations

import argparse
from pathlib import Path

from farm.errors import UsageError
from farm.store.db import Store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", help="job id, unique id prefix, or job name (newest of that name)")
    parser.add_argument("--budget", help="budget file (TOML): the card shows what it recommends")
    parser.add_argument("-o", "--output", help="write the Markdown here (default: print it)")
    parser.add_argument("--db", help="DuckDB store (default $FARM_DB or results/farm.duckdb)")


def run(args: argparse.Namespace) -> int:
    from farm.release.budget import load_budget
    from farm.release.card import build_card, to_markdown

    budget = load_budget(args.budget) if args.budget else None
    text = to_markdown(build_card(Store(args.db), args.job, budget))
    if args.output is None:
        print(text, end="")
        return 0
    out = Path(args.output)
    if out.is_dir():
        raise UsageError(f"{out}: is a folder; give a file path with -o")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}")
    return 0
