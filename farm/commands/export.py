"""`farm export JOB --format parquet|csv|json -o PATH`: a job's trials as a file.

parquet and csv hold one row per trial (the store's columns; params and contract as JSON text).
json holds the job, every trial (params and contract as objects) with its raw latency samples,
and the environments: the format ``farm gate --baseline-file`` reads.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from farm.errors import UsageError
from farm.store import Store

FORMATS = ("parquet", "csv", "json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", help="job id, unique id prefix, or job name (newest of that name)")
    parser.add_argument("--format", choices=FORMATS, required=True, help="output format")
    parser.add_argument("-o", "--output", required=True, help="file to write")
    parser.add_argument("--db", help="DuckDB store (default $FARM_DB or results/farm.duckdb)")


def run(args: argparse.Namespace) -> int:
    from farm.gate import Snapshot

    store = Store(args.db)
    out = Path(args.output)
    if out.is_dir():
        raise UsageError(f"{out}: is a folder; give a file path with -o")
    snap = Snapshot.from_store(store, args.job, with_samples=args.format == "json")
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.format == "json":
        out.write_text(json.dumps(snap.to_json(), default=str, indent=1), encoding="utf-8")
    else:
        write_table(snap.trials, out, args.format)
    print(f"wrote {len(snap.trials)} trials of {snap.job_id} to {out} ({args.format})")
    return 0


def write_table(trials: list[dict], path: Path, fmt: str) -> None:
    """One row per trial, with the store's column types (via pandas + pyarrow)."""
    import pandas as pd

    frame = pd.DataFrame(trials)
    if fmt == "parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
