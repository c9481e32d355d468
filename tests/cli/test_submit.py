"""``farm submit`` against a real Ray head started by the test, with token authentication on.

The head is ``ray start --head --block`` in its own process group, so the test stops exactly the
cluster it started (``ray stop`` would stop every Ray on the machine, other tests' included).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from farm.cli import main

REPO = Path(__file__).resolve().parents[2]
RAY = Path(sys.executable).with_name("ray")
JOB = "farm/jobs/digits.toml"  # inside the uploaded tree, as farm submit requires


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Head:
    dashboard: str
    env: dict[str, str]


@pytest.fixture(scope="module")
def head() -> Iterator[Head]:
    """A one-node Ray head on free ports, serving the digits job's three CPU targets."""
    import ray

    ray.shutdown()  # the session's in-process Ray must not answer `--address auto`
    tmp = Path(tempfile.mkdtemp(prefix="fs", dir="/tmp"))  # short: Ray's socket paths are long
    token = tmp / "token"
    token.write_text(secrets.token_hex(32))
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token),
        "PATH": f"{RAY.parent}{os.pathsep}{os.environ['PATH']}",  # `python` is this venv's
    }
    env.pop("RAY_AUTH_TOKEN", None)
    env.pop("RAY_ADDRESS", None)
    port, dash, agent, client = (_free_port() for _ in range(4))
    resources = '{"target:cpu-torch": 1, "target:cpu-onnxruntime": 1, "target:cpu-openvino": 1}'
    command = [
        str(RAY), "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
        "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}", f"--temp-dir={tmp / 'r'}",
        f"--resources={resources}", "--include-dashboard=true",
        # Fixed by default (52365, 10001): another Ray on this machine may hold them.
        f"--dashboard-agent-listen-port={agent}", f"--ray-client-server-port={client}",
    ]  # fmt: skip
    proc = subprocess.Popen(
        command,
        env=env,
        cwd=tmp,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{dash}"
    try:
        _wait_for_dashboard(url, proc)
        yield Head(url, env)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)


def _wait_for_dashboard(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/api/version", timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers (401 without a token): it is up
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"the Ray dashboard did not come up at {url} in {timeout_s:g} s")


def _farm(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "farm.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_submit_runs_a_job_to_completion_into_the_head_store(head: Head, tmp_path: Path) -> None:
    from farm.store.db import Store

    db = tmp_path / "results" / "farm.duckdb"  # a path on the head (this machine)
    args = ["submit", JOB, "--address", head.dashboard, "--db", str(db), "--trials", "1", "--wait"]
    done = _farm(args, head.env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "submitted Ray job" in done.stdout and "SUCCEEDED" in done.stdout
    (job,) = Store(db).jobs()
    assert job.status == "completed"
    # One trial (the baseline) on each of the job file's three targets, each with a status.
    assert job.trials == 3 and job.completed == 3


def test_without_the_token_the_cluster_refuses(head: Head) -> None:
    env = {**head.env, "RAY_AUTH_TOKEN": "0" * 64}  # a wrong token, not none
    done = _farm(["submit", JOB, "--address", head.dashboard], env)
    assert done.returncode != 0
    assert "submitted" not in done.stdout


def test_a_bad_address_or_job_file_is_exit_2(head: Head, tmp_path: Path) -> None:
    assert main(["submit", JOB, "--address", "127.0.0.1:6379"]) == 2
    assert main(["submit", str(tmp_path / "missing.toml"), "--address", head.dashboard]) == 2
    outside = tmp_path / "job.toml"
    shutil.copy(REPO / JOB, outside)
    assert main(["submit", str(outside), "--address", head.dashboard]) == 2
    assert main(["submit", JOB, "--address", f"http://127.0.0.1:{_free_port()}"]) == 2
