"""`farm resume JOB`: continue an interrupted job from the store.

Each study is rebuilt from the stored trials (told to Optuna again, not re-run) and the job goes
on to its trial budget. Trials that were in flight when the driver died were never stored; they
are asked again under new numbers, so no trial is stored twice. A thin layer over
:func:`farm.api.resume`.
"""

from __future__ import annotations

import argparse

from farm.commands.run import add_common_arguments, finish


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", help="job id, unique id prefix, or job name")
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from farm import api

    job = api.resume(
        args.job, address=args.address, db=args.db, trials=args.trials, mlflow=args.mlflow
    )
    return finish(job)
