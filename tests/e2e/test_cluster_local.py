"""farm.cluster.lifecycle: a local run starts its own Ray whatever else ran here; joining says what
is wrong.

A leftover ``ray_current_cluster`` is written under a temp dir of the test's own (``RAY_TMPDIR``),
never under /tmp/ray where every Ray of this machine looks. A "GCS" that wants a token is a small
gRPC server speaking Ray's own GCS protocol (``GetClusterId``), so the token checks run in a
second instead of on a real cluster (tests/test_fleet_loopback.py does that).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import pytest

from farm.cluster.lifecycle import (
    GCS_OK,
    GCS_UNAUTHENTICATED,
    GCS_UNREACHABLE,
    check_joinable,
    probe_gcs,
    running_cluster,
)
from farm.errors import UsageError

TOKEN = "a" * 64
REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def token_gcs() -> Iterator[str]:
    """A GCS stand-in with token authentication on: GetClusterId answers only with TOKEN."""
    import grpc
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    class Servicer(gcs_service_pb2_grpc.NodeInfoGcsServiceServicer):  # type: ignore[misc]
        def GetClusterId(self, request: object, context: grpc.ServicerContext) -> object:
            sent = dict(context.invocation_metadata()).get("authorization")
            if sent != f"Bearer {TOKEN}":
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "InvalidAuthToken")
            return gcs_service_pb2.GetClusterIdReply()  # type: ignore[attr-defined]

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    gcs_service_pb2_grpc.add_NodeInfoGcsServiceServicer_to_server(Servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None)


@pytest.fixture
def ray_tmpdir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temp dir of Ray's own for this test (short: Ray's socket paths are long)."""
    tmp = Path(tempfile.mkdtemp(prefix="fc", dir="/tmp"))
    monkeypatch.setenv("RAY_TMPDIR", str(tmp))
    (tmp / "ray").mkdir()
    yield tmp
    shutil.rmtree(tmp, ignore_errors=True)


def _no_auth_env(monkeypatch: pytest.MonkeyPatch, mode: str | None, token: str | None) -> None:
    for key in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(key, raising=False)
    if mode is not None:
        monkeypatch.setenv("RAY_AUTH_MODE", mode)
    if token is not None:
        monkeypatch.setenv("RAY_AUTH_TOKEN", token)


def test_probe_tells_ok_unauthenticated_and_unreachable(token_gcs: str) -> None:
    assert probe_gcs(token_gcs) == GCS_UNAUTHENTICATED
    assert probe_gcs(token_gcs, TOKEN) == GCS_OK
    assert probe_gcs(f"127.0.0.1:{_free_port()}") == GCS_UNREACHABLE


def test_a_token_cluster_without_the_auth_variable_says_what_to_set(
    token_gcs: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_auth_env(monkeypatch, None, TOKEN)  # a token is there, but Ray would not send it
    with pytest.raises(UsageError) as err:
        check_joinable(token_gcs)
    text = str(err.value)
    assert "\n" not in text and "export RAY_AUTH_MODE=token" in text and token_gcs in text
    assert "RAY_AUTH_MODE is 'disabled' here" in text


def test_a_wrong_token_is_named_and_the_right_one_passes(
    token_gcs: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_auth_env(monkeypatch, "token", "b" * 64)
    with pytest.raises(UsageError, match=r"refused this machine's token .*\$RAY_AUTH_TOKEN"):
        check_joinable(token_gcs)
    _no_auth_env(monkeypatch, "token", TOKEN)
    check_joinable(token_gcs)  # no error: ray.init may go on


def test_nothing_listening_is_one_clear_line() -> None:
    address = f"127.0.0.1:{_free_port()}"
    with pytest.raises(UsageError, match=r"no Ray cluster answers there"):
        check_joinable(address)


def test_farm_targets_exits_2_with_one_line(token_gcs: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    done = subprocess.run(
        [sys.executable, "-m", "farm.cli", "targets", "--address", token_gcs],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("farm targets: error: --address")
    assert "RAY_AUTH_MODE=token" in lines[0]


def test_running_cluster_reads_rays_address_file(token_gcs: str, ray_tmpdir: Path) -> None:
    address_file = ray_tmpdir / "ray" / "ray_current_cluster"
    assert running_cluster() is None  # no file
    address_file.write_text(f"127.0.0.1:{_free_port()}")
    assert running_cluster() is None  # a dead cluster's leftover
    address_file.write_text(token_gcs)
    assert running_cluster() == token_gcs  # alive (it answers, if only to refuse)


LOCAL_RUN = """
import ray
from farm.cluster.lifecycle import alive_nodes, start_or_connect
start_or_connect(None, num_cpus=1)
nodes = alive_nodes()
print("nodes", len(nodes), "ip", nodes[0].ip, "targets", ",".join(nodes[0].targets))
ray.shutdown()
"""


def _local_run(ray_tmpdir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmpdir)}
    env.pop("RAY_ADDRESS", None)
    return subprocess.run(
        [sys.executable, "-c", LOCAL_RUN],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_dead_clusters_leftover_does_not_stop_a_local_run(ray_tmpdir: Path) -> None:
    """The issue's crash: `ray.init(num_cpus=…)` joined the dead head named in the file."""
    (ray_tmpdir / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{_free_port()}")
    done = _local_run(ray_tmpdir)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "nodes 1 ip " in done.stdout and "cpu-onnxruntime" in done.stdout
    assert "is running at" not in done.stderr  # dead: nothing to mention
    ip = done.stdout.split(" ip ")[1].split()[0]
    assert ip not in ("", "None")


def test_a_live_cluster_is_mentioned_but_not_joined(token_gcs: str, ray_tmpdir: Path) -> None:
    (ray_tmpdir / "ray" / "ray_current_cluster").write_text(token_gcs)
    done = _local_run(ray_tmpdir)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"running at {token_gcs}; this run starts its own local Ray instance" in done.stderr
    assert "--address auto" in done.stderr
    assert "nodes 1 " in done.stdout  # its own one-node instance, with the local targets
