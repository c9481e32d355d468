"""Job files and handles shared by tests (imported by conftest and test modules)."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SMALL_JOB = """
name = "small"
targets = ["cpu-onnxruntime", "cpu-openvino"]
[workload]
name = "digits"
[search]
trials_per_target = 3
seed = 1
precision = ["fp32", "int8"]
batch_size = [1, 8]
threads = [1]
[constraints]
max_accuracy_drop = 0.02
[measurement]
min_duration_s = 0.2
max_duration_s = 0.6
min_samples = 32
"""


@dataclass(frozen=True)
class SmallJob:
    db: Path
    job_id: str
    results: Path


#: `python -m farm.cli` with Ctrl-C's default handler: a process started from a background
#: shell (`cmd &`, as a CI runner may start the suite) inherits SIGINT *ignored*, and Python
#: keeps it ignored, so the interrupt a test sends would never arrive.
DRIVER = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from farm.cli import main; sys.exit(main(sys.argv[1:]))"
)


def start_driver(job_file: Path, db: Path, **popen: Any) -> subprocess.Popen[str]:
    """`farm run JOB --db DB` in its own process: a driver a test can interrupt or kill."""
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, "run", str(job_file), "--db", str(db)],
        text=True,
        **popen,
    )


def wait_for_trials(db: Path, count: int, driver: subprocess.Popen[str], timeout: float) -> None:
    """Wait until the store's newest job has ``count`` trials (or the driver ends)."""
    from farm.store.db import Store

    store = Store(db)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and driver.poll() is None:
        try:
            if len(store.trials(store.jobs()[0].job_id)) >= count:
                return
        except Exception:  # no store or no job yet, or a write holds the file
            pass
        time.sleep(0.2)


def run_refused(job_file: Path, capsys: Any) -> str:
    """`farm run JOB` in this process, refused: asserts exit 2 and that no store was written
    beside the job; returns what it printed on stderr."""
    from farm.cli import main

    db = job_file.parent / "farm.duckdb"
    assert main(["run", str(job_file), "--db", str(db)]) == 2
    assert not db.exists()
    return str(capsys.readouterr().err)
