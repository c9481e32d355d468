"""`farm gallery JOB [--trial N] [-o DIR]`: the images a candidate broke and fixed against its
target's fp32 baseline, drawn side by side (fp32's prediction, the candidate's), as PNG files.
Without ``--trial``: what each target would ship (the recommend rule among feasible trials)."""

from __future__ import annotations

import argparse

from farm.store.db import Store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", help="job id, unique id prefix, or job name (newest of that name)")
    parser.add_argument("--trial", type=int, help="this trial number on every target that has it")
    parser.add_argument("-o", "--output", default="gallery", help="folder (default: gallery)")
    parser.add_argument("--limit", type=int, default=8, help="images per kind (default 8)")
    parser.add_argument("--db", help="DuckDB store (default $FARM_DB or results/farm.duckdb)")


def run(args: argparse.Namespace) -> int:
    from dashboards.gallery import gallery, shipped, write
    from farm.errors import UsageError

    store = Store(args.db)
    job_id = store.resolve_job(args.job).job_id
    if args.trial is None:
        picks = shipped(store, job_id)
    else:
        picks = sorted(k for k in store.comparisons(job_id) if k[1] == args.trial)
        if not picks:
            raise UsageError(f"trial {args.trial} of job {job_id} was not compared with a baseline")
    tiles, notes = gallery(store, job_id, picks, args.limit)
    paths = write(tiles, args.output)
    for note in notes:
        print(f"note: {note}")
    broken = sum(t.kind == "broken" for t in tiles)
    print(
        f"wrote {len(paths)} images ({broken} broken, {len(paths) - broken} fixed) to {args.output}"
    )
    return 0
