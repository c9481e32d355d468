"""docs/fleet.md's loopback recipe, for real: two `ray start` nodes with token authentication.

The head starts on 127.0.0.1 (Ray records it under this machine's own IP), a worker on 127.0.0.2,
each advertising one target; then, as the docs say, `farm targets --address` lists both and a
job runs across both, and without `RAY_AUTH_MODE=token` farm says in one line what to set.

Isolation, beyond the docs' steps: free ports instead of 6390/52365/10001 (another Ray on this
machine may hold them), a token file of its own (``RAY_AUTH_TOKEN_PATH``, never
``~/.ray/auth_token``) and a temp dir of its own. Each `ray start --block` runs in its own
session; teardown kills those two process groups, and nothing else (never `ray stop`, which
would stop every Ray on the machine).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
RAY = Path(sys.executable).parent / "ray"
WORKER_IP = "127.0.0.2"
JOB = """
name = "loopback"
targets = ["cpu-onnxruntime", "cpu-openvino"]
[workload]
name = "digits"
[search]
trials_per_target = 2
seed = 1
precision = ["fp32"]
batch_size = [1, 8]
threads = [1]
[measurement]
min_duration_s = 0.2
max_duration_s = 0.5
min_samples = 32
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Fleet:
    address: str
    env: dict[str, str]
    tmp: Path


def _ray_start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(RAY), "start", "--block", "--disable-usage-stats", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: torn down by killpg, alone
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """The `ray start --block` process and everything it started (its process group)."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        if sig == signal.SIGTERM:  # the group's other members may outlive `ray start`
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        return


def _alive_nodes(address: str, env: dict[str, str], want: int, timeout_s: float = 120) -> None:
    """Wait until the cluster lists ``want`` alive nodes (the worker registers after a while)."""
    code = (
        "import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False); "
        "print(sum(n['Alive'] for n in ray.nodes()))"
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = subprocess.run(
            [sys.executable, "-c", code, address], env=env, capture_output=True, text=True
        )
        if done.returncode == 0 and done.stdout.strip().endswith(str(want)):
            return
        time.sleep(2)
    raise RuntimeError(f"the cluster at {address} did not list {want} nodes in {timeout_s:g} s")


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    import ray

    ray.shutdown()  # the session's in-process Ray must not be what answers
    tmp = Path(tempfile.mkdtemp(prefix="fl", dir="/tmp"))  # short: Ray's socket paths are long
    token = tmp / "token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",  # docs/fleet.md: on every machine and in every shell
        "RAY_AUTH_TOKEN_PATH": str(token),
        "PATH": f"{RAY.parent}{os.pathsep}{os.environ['PATH']}",
    }
    for key in ("RAY_AUTH_TOKEN", "RAY_ADDRESS"):
        env.pop(key, None)
    port = _free_port()
    address = f"127.0.0.1:{port}"
    head_res = '{"target:cpu-onnxruntime": 1, "farm:node": 1}'
    worker_res = '{"target:cpu-openvino": 1, "farm:node": 1}'
    isolation = ["--temp-dir", str(tmp / "ray")]
    head = _ray_start(
        [
            "--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", "1",
            "--resources", head_res, "--include-dashboard=false",
            "--dashboard-agent-listen-port", str(_free_port()),
            "--ray-client-server-port", str(_free_port()), *isolation,
        ],
        env,
        tmp / "head.log",
    )  # fmt: skip
    procs = [head]
    try:
        _alive_nodes(address, env, 1)
        worker = _ray_start(
            [
                "--address", address, "--node-ip-address", WORKER_IP, "--num-cpus", "1",
                "--resources", worker_res,
                "--dashboard-agent-listen-port", str(_free_port()), *isolation,
            ],
            env,
            tmp / "worker.log",
        )  # fmt: skip
        procs.append(worker)
        _alive_nodes(address, env, 2)
        yield Fleet(address, env, tmp)
    finally:
        for proc in reversed(procs):
            _stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


def _farm(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "farm.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_without_the_auth_variable_farm_says_what_to_set(fleet: Fleet) -> None:
    env = {k: v for k, v in fleet.env.items() if k != "RAY_AUTH_MODE"}
    started = time.monotonic()
    done = _farm(["targets", "--address", fleet.address], env)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr  # one line, not Ray's 20 s of retries
    assert "uses token authentication" in lines[0] and "export RAY_AUTH_MODE=token" in lines[0]
    assert time.monotonic() - started < 15


def test_targets_lists_both_nodes_with_their_ips(fleet: Fleet) -> None:
    done = _farm(["targets", "--address", fleet.address, "--json"], fleet.env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    nodes = json.loads(done.stdout)["nodes"]
    by_ip = {n["ip"]: n for n in nodes}
    assert len(nodes) == 2 and WORKER_IP in by_ip
    assert by_ip[WORKER_IP]["advertised"] == ["cpu-openvino"]
    (head,) = [n for n in nodes if n["ip"] != WORKER_IP]
    assert head["advertised"] == ["cpu-onnxruntime"]


def test_a_job_runs_across_both_nodes_and_records_their_ips(fleet: Fleet) -> None:
    from farm.store.db import Store

    job = fleet.tmp / "job.toml"
    job.write_text(JOB)
    db = fleet.tmp / "results" / "farm.duckdb"
    done = _farm(["run", str(job), "--address", fleet.address, "--db", str(db)], fleet.env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    store = Store(db)
    (row,) = store.jobs()
    trials = store.trials(row.job_id)
    assert len(trials) == 4 and all(t.status == "completed" for t in trials), trials
    ips = {
        target: {t.node_ip for t in trials if t.target == target}
        for target in ("cpu-onnxruntime", "cpu-openvino")
    }
    assert ips["cpu-openvino"] == {WORKER_IP}
    (head_ip,) = ips["cpu-onnxruntime"]
    assert head_ip and head_ip != WORKER_IP
