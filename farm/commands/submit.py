"""``farm submit JOB.toml --address http://HEAD:8265``: hand a job to a Ray cluster and return.

The job runs as a Ray Job (the Jobs API of the dashboard). What is uploaded is the farm's source
tree (this repository, minus ``.venv``, ``results``, ``.git``, model folders and caches: the
upload is refused above 100 MB), so the cluster runs the code you have here. The entrypoint,
``python -m farm.cli run JOB --address auto --db DB``, runs on the head node; the job file must
therefore lie inside the uploaded tree, and relative paths in it resolve there.

Where the results go: the driver is the only DuckDB writer and runs on the head, so the store is
a file *on the head node*: ``--db`` if given (a path on the head), else ``$FARM_DB`` as set on
the head, else ``~/farm-results/farm.duckdb`` in the home directory of the user running Ray
there. The uploaded tree is a temporary copy that Ray deletes, so the default is never inside it.

Authentication: Ray's token authentication stays on. The token is sent as a bearer header, read
from ``$RAY_AUTH_TOKEN``, else the file ``$RAY_AUTH_TOKEN_PATH``, else ``~/.ray/auth_token`` (where
``ray start`` and ``ray get-auth-token --generate`` put it), unless ``RAY_AUTH_MODE=disabled``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import time
from pathlib import Path
from typing import Any

from farm.errors import FarmError, UsageError

REPO_DIR = Path(__file__).resolve().parents[2]
#: Never uploaded: environments, results, models, VCS data and caches (gitignore syntax).
EXCLUDES = [
    ".venv",
    "venv",
    ".git",
    "results",
    "models",
    "__pycache__",
    "*.egg-info",
    ".pytest_cache",
    ".ruff_cache",
    ".mypy_cache",
]
DEFAULT_HEAD_DB = "${FARM_DB:-$HOME/farm-results/farm.duckdb}"
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", type=Path, help="the job file (TOML), inside the uploaded tree")
    parser.add_argument(
        "--address", required=True, help="the cluster's dashboard / Jobs API: http://HEAD:8265"
    )
    parser.add_argument(
        "--db",
        help="DuckDB store, a path on the head node "
        "(default: $FARM_DB there, else ~/farm-results/farm.duckdb)",
    )
    parser.add_argument("--trials", type=int, help="trials per target (overrides the job file)")
    parser.add_argument(
        "--python", default="python", help="interpreter on the head node (default: python)"
    )
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="PATTERN",
        help="also leave out of the upload (gitignore syntax; repeatable)",
    )
    parser.add_argument("--wait", action="store_true", help="wait for the job and print its log")
    parser.add_argument(
        "--timeout", type=float, default=3600.0, help="with --wait: give up after this many s"
    )


def run(args: argparse.Namespace) -> int:
    job_path = _job_in_tree(args.job)
    if args.trials is not None and args.trials < 1:
        raise UsageError(f"--trials: expected a positive integer, got {args.trials}")
    client = connect(args.address)
    entrypoint = make_entrypoint(job_path, args.db, args.trials, args.python)
    runtime_env = {"working_dir": str(REPO_DIR), "excludes": [*EXCLUDES, *args.exclude]}
    try:
        ray_job_id = client.submit_job(
            entrypoint=entrypoint,
            runtime_env=runtime_env,
            metadata={"farm_job_file": job_path.as_posix()},
        )
    except Exception as exc:
        hint = " (exclude large files with --exclude)" if "413" in str(exc) else ""
        raise FarmError(f"the cluster refused the job{hint}: {exc}") from exc
    print(f"submitted Ray job {ray_job_id} to {args.address}")
    print(f"  entrypoint: {entrypoint}")
    print(f"  follow it:  ray job logs --address {args.address} --follow {ray_job_id}")
    if not args.wait:
        return 0
    status = wait_for(client, ray_job_id, args.timeout)
    print(client.get_job_logs(ray_job_id), end="")
    print(f"Ray job {ray_job_id}: {status}")
    return 0 if status == "SUCCEEDED" else 1


def _job_in_tree(job: Path) -> Path:
    """The job file's path relative to the uploaded tree (it must lie inside it)."""
    if not job.is_file():
        raise UsageError(f"{job}: job file not found")
    resolved = job.resolve()
    if not resolved.is_relative_to(REPO_DIR):
        raise UsageError(
            f"{job}: the job file must be inside {REPO_DIR}, the tree uploaded to the cluster "
            "(relative paths in it resolve there); move or copy it there"
        )
    from farm.spec.job import load_job

    load_job(resolved)  # a bad job file fails here, with its field path, not on the cluster
    return resolved.relative_to(REPO_DIR)


def make_entrypoint(job: Path, db: str | None, trials: int | None, python: str) -> str:
    """The shell command the head node runs (``$FARM_DB``/``$HOME`` expand there)."""
    words = [shlex.quote(python), "-m", "farm.cli", "run", shlex.quote(job.as_posix())]
    words += ["--address", "auto", "--db", shlex.quote(db) if db else f'"{DEFAULT_HEAD_DB}"']
    if trials is not None:
        words += ["--trials", str(trials)]
    return " ".join(words)


def auth_headers() -> dict[str, str]:
    """The bearer token header for a cluster with token authentication (empty if none)."""
    from farm.cluster.lifecycle import auth_token

    if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        return {}
    token = auth_token()
    return {"Authorization": f"Bearer {token}"} if token else {}


def connect(address: str) -> Any:
    """A JobSubmissionClient for ``address``; an unreachable or wrong address is exit 2."""
    if not address.startswith(("http://", "https://")):
        raise UsageError(
            f"--address: expected the dashboard URL, e.g. http://HEAD:8265, got {address!r} "
            "(HEAD:6379 is the GCS port used by `ray start` and `farm run`)"
        )
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address, headers=auth_headers())
    except Exception as exc:
        raise UsageError(f"--address {address}: cannot reach the Ray Jobs API: {exc}") from None


def wait_for(client: Any, ray_job_id: str, timeout_s: float) -> str:
    """Poll until the Ray job ends; return its final status name."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = str(getattr(client.get_job_status(ray_job_id), "value", "UNKNOWN"))
        if status in TERMINAL:
            return status
        if time.monotonic() > deadline:
            raise FarmError(f"Ray job {ray_job_id} still {status} after {timeout_s:g} s")
        time.sleep(1.0)
