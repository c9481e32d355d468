"""`farm resume JOB`: continue an interrupted job from the store.

Each study is rebuilt from the stored trials (told to Optuna again, not re-run) and the job goes
on to its trial budget. Trials that were in flight when the driver died were never stored; they
are asked again under new numbers, so no trial is stored twice.
"""

from __future__ import annotations

import argparse

from farm.commands.run import add_common_arguments, execute
from farm.errors import UsageError
from farm.spec import JobSpec
from farm.store import Store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", help="job id, unique id prefix, or job name")
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    store = Store(args.db)
    job = store.resolve_job(args.job)
    if job["status"] == "completed":
        raise UsageError(f"job {job['job_id']} already completed; nothing to resume")
    spec = JobSpec.from_json(job["spec"])
    if args.trials is not None:
        spec = spec.with_trials(args.trials)
    return execute(spec, store, args.address, resume_job=job["job_id"])
