"""`farm export JOB --format parquet|csv|json -o PATH [--with-artifacts DIR]`: a job as a file.

parquet and csv hold one row per trial (the store's columns; params and contract as JSON text).
json holds the job, every trial (params and contract as objects, its ``build_key`` and
``artifact_hash``) with its raw latency samples, and the environments: the format ``farm gate
--baseline-file`` reads. ``--with-artifacts DIR`` also copies the completed trials' artifacts
from the store's cache into ``DIR/<build_key>/`` (the cache's own layout) and records DIR in the
file, relative to it, so that the gate can re-measure this baseline on another run or machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from farm.errors import UsageError
from farm.store.db import Store

if TYPE_CHECKING:
    from farm.store.records import TrialRecord

FORMATS = ("parquet", "csv", "json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", help="job id, unique id prefix, or job name (newest of that name)")
    parser.add_argument("--format", choices=FORMATS, required=True, help="output format")
    parser.add_argument("-o", "--output", required=True, help="file to write")
    parser.add_argument("--db", help="DuckDB store (default $FARM_DB or results/farm.duckdb)")
    parser.add_argument(
        "--with-artifacts",
        metavar="DIR",
        help="json only: copy the trials' artifacts into DIR and record it in the file, so "
        "`farm gate --baseline-file` can re-measure this job elsewhere",
    )


def run(args: argparse.Namespace) -> int:
    from farm.gate.snapshot import Snapshot

    store = Store(args.db)
    out = Path(args.output)
    if out.is_dir():
        raise UsageError(f"{out}: is a folder; give a file path with -o")
    artifacts = Path(args.with_artifacts) if args.with_artifacts else None
    if artifacts is not None:
        if args.format != "json":
            raise UsageError(
                f"--with-artifacts: only with --format json (the file `farm gate "
                f"--baseline-file` reads), got --format {args.format}"
            )
        if artifacts.exists() and not artifacts.is_dir():
            raise UsageError(f"--with-artifacts {artifacts}: exists and is not a folder")
    snap = Snapshot.from_store(store, args.job, with_samples=args.format == "json")
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.format == "json":
        recorded = None
        if artifacts is not None:
            assert snap.artifacts_dir is not None  # from_store always sets it
            copied, missing = copy_artifacts(snap.trials, snap.artifacts_dir, artifacts)
            recorded = relative_to_file(artifacts, out)
            print(f"copied {copied} artifacts of {snap.job_id} to {artifacts}")
            for line in missing:
                print(f"farm export: warning: {line}", file=sys.stderr)
        doc = snap.to_json(artifacts_dir=recorded)
        out.write_text(json.dumps(doc, default=str, indent=1), encoding="utf-8")
    else:
        write_table(snap.trials, out, args.format)
    print(f"wrote {len(snap.trials)} trials of {snap.job_id} to {out} ({args.format})")
    return 0


def copy_artifacts(trials: list[TrialRecord], cache_dir: Path, dest: Path) -> tuple[int, list[str]]:
    """Copy each completed trial's artifact (by build key, checked against its stored hash)
    from ``cache_dir`` into ``dest``; returns how many distinct artifacts were copied and a line
    per trial whose artifact could not be (it then cannot be confirmed from this export)."""
    from farm.errors import CannotConfirm
    from farm.gate.confirm import find_artifact
    from farm.store.artifacts import ArtifactCache

    target = ArtifactCache(dest)
    copied: set[str] = set()
    missing = []
    for t in trials:
        if not t.completed or t.build_key in copied:
            continue
        try:
            artifact = find_artifact(t, [cache_dir])
        except CannotConfirm as exc:
            missing.append(f"{t.target} #{t.trial_number}: {exc}")
            continue
        assert t.build_key is not None  # find_artifact refuses a trial without one
        target.save(t.build_key, artifact)
        copied.add(t.build_key)
    return len(copied), missing


def relative_to_file(folder: Path, file: Path) -> str:
    """``folder`` as the export records it: relative to the file's folder (so the two can move
    together, e.g. as one CI artifact), absolute when they are on different drives."""
    try:
        return os.path.relpath(folder.resolve(), file.resolve().parent)
    except ValueError:
        return str(folder.resolve())


def write_table(trials: list[TrialRecord], path: Path, fmt: str) -> None:
    """One row per trial, with the store's column types (via pandas + pyarrow). The per-trial
    ``metrics`` map stays in the JSON export (and the store's ``metrics`` table)."""
    import pandas as pd

    from farm.store.records import TRIAL_COLUMNS

    frame = pd.DataFrame([t.to_row() for t in trials], columns=list(TRIAL_COLUMNS))
    if fmt == "parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
