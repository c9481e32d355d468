"""Ray's lifecycle: start or join a cluster, authenticate, and list the alive nodes and the
targets each serves.

Locally (no ``--address``) the farm starts Ray on this machine and advertises, as custom
resources, the catalog targets whose runtime libraries are installed and whose architecture and
device match this machine. On a fleet, nodes join with ``ray start --resources
'{"target:NAME": 1}'`` and the farm reads those resources.

Exclusivity (one farm task per node at a time) is :mod:`farm.cluster.leases`'s; what this
machine can serve is :mod:`farm.cluster.capabilities`'s.

Joining: before ``ray.init(address=…)`` the GCS is asked once, over gRPC, whether it answers and
whether it wants a token, so that an unreachable head or a token-auth cluster joined without
``RAY_AUTH_MODE=token`` is one clear line at once instead of Ray's 20 s of retries ending in a
misleading ``Failed to connect to Ray cluster at …``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from farm.cluster.capabilities import local_targets
from farm.errors import UsageError

TARGET_PREFIX = "target:"
#: A node that advertises one unit of this resource lets Ray itself keep it exclusive: every farm
#: task on it asks for the unit, so even two jobs on one cluster never share the node
#: (:mod:`farm.cluster.leases`).
NODE_SLOT = "farm:node"


@dataclass(frozen=True)
class Node:
    """An alive node of the cluster as the driver schedules on it."""

    node_id: str
    host: str
    cpus: int
    targets: tuple[str, ...]
    #: True when the node advertises NODE_SLOT (exclusivity enforced by Ray across jobs).
    slotted: bool = False
    #: The node's IP as Ray knows it (``NodeManagerAddress``): hosts of a fleet often share a
    #: hostname (``vm``, ``localhost``), their addresses do not.
    ip: str | None = None
    resources: dict[str, float] = field(default_factory=dict, compare=False)

    @property
    def gpus(self) -> int:
        """GPUs Ray counts on the node (detected, or ``ray start --num-gpus``)."""
        return int(self.resources.get("GPU", 0))


def start_or_connect(address: str | None, num_cpus: int | None = None) -> None:
    """Start a local Ray instance advertising the local targets, or join ``address``.

    Without an address the farm always starts its *own* local instance (``address="local"``):
    a leftover ``ray_current_cluster`` file of a dead cluster must not make it try to join that
    cluster, and a live ``ray start`` cluster on this machine is only used when asked for
    (``--address auto``); it is mentioned once so nobody wonders where their nodes went.
    """
    import ray

    if ray.is_initialized():
        return
    if address:
        join(address)
        return
    running = running_cluster()
    if running is not None:
        print(
            f"farm: a Ray cluster started with `ray start` is running at {running}; this run "
            "starts its own local Ray instance (pass --address auto to use that cluster)",
            file=sys.stderr,
        )
    resources = {f"{TARGET_PREFIX}{t}": 1.0 for t in local_targets()}
    resources[NODE_SLOT] = 1.0
    ray.init(
        address="local",
        num_cpus=num_cpus or os.cpu_count(),
        resources=resources,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )


def join(address: str) -> None:
    """Join the cluster at ``address`` (``HOST:PORT`` or ``auto``); bad addresses and missing
    authentication are a :class:`UsageError` with what to do."""
    import ray

    if address != "auto" and "://" not in address:
        check_joinable(address)
    try:
        ray.init(address=address, log_to_driver=False)
    except ConnectionError as exc:
        raise UsageError(f"--address {address}: cannot join the Ray cluster: {exc}") from None


def auth_mode() -> str:
    """Ray's ``RAY_AUTH_MODE`` as this process sees it (Ray's default for clients: disabled)."""
    return os.environ.get("RAY_AUTH_MODE", "").strip().lower() or "disabled"


def auth_token() -> str | None:
    """The cluster token Ray would send: ``$RAY_AUTH_TOKEN``, else the file named by
    ``$RAY_AUTH_TOKEN_PATH``, else ``~/.ray/auth_token``; None when there is none."""
    token = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    if token:
        return token
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    token = path.read_text().strip() if path.is_file() else ""
    return token or None


#: What :func:`probe_gcs` can answer.
GCS_OK, GCS_UNAUTHENTICATED, GCS_UNREACHABLE, GCS_UNKNOWN = (
    "ok",
    "unauthenticated",
    "unreachable",
    "unknown",
)


def probe_gcs(address: str, token: str | None = None, timeout_s: float = 3.0) -> str:
    """Ask the GCS at ``HOST:PORT`` for its cluster id, once: ``ok``, ``unauthenticated`` (it
    wants a token, or another one), ``unreachable`` (nothing answers), or ``unknown`` (the
    question itself could not be asked; the caller then lets ``ray.init`` find out)."""
    try:
        import grpc
        from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc
    except ImportError:
        return GCS_UNKNOWN
    metadata = [("authorization", f"Bearer {token}")] if token else None
    channel = grpc.insecure_channel(address)
    try:
        stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)
        request = gcs_service_pb2.GetClusterIdRequest()  # type: ignore[attr-defined]
        stub.GetClusterId(request, timeout=timeout_s, metadata=metadata)
        return GCS_OK
    except grpc.RpcError as exc:
        code = exc.code() if hasattr(exc, "code") else None
        if code == grpc.StatusCode.UNAUTHENTICATED:
            return GCS_UNAUTHENTICATED
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return GCS_UNREACHABLE
        return GCS_UNKNOWN
    except ValueError:  # not a HOST:PORT grpc understands
        return GCS_UNKNOWN
    finally:
        channel.close()


def check_joinable(address: str) -> None:
    """Raise a one-line :class:`UsageError` when ``address`` cannot be joined as things stand:
    nothing answers there, or the cluster wants a token this process will not send."""
    token = auth_token() if auth_mode() == "token" else None
    answer = probe_gcs(address, token)
    if answer == GCS_UNREACHABLE:
        raise UsageError(
            f"--address {address}: no Ray cluster answers there (start its head with "
            "`ray start --head --port PORT`, or check the host, the port and the firewall)"
        )
    if answer != GCS_UNAUTHENTICATED:
        return
    if auth_mode() != "token":
        raise UsageError(
            f"--address {address}: the Ray cluster there uses token authentication and "
            f"RAY_AUTH_MODE is {auth_mode()!r} here: `export RAY_AUTH_MODE=token` (with the "
            "cluster's token in ~/.ray/auth_token, $RAY_AUTH_TOKEN_PATH or $RAY_AUTH_TOKEN; "
            "see docs/fleet.md)"
        )
    where = (
        "$RAY_AUTH_TOKEN"
        if os.environ.get("RAY_AUTH_TOKEN", "").strip()
        else (os.environ.get("RAY_AUTH_TOKEN_PATH") or "~/.ray/auth_token")
    )
    problem = "no token found" if token is None else f"the token in {where} is not the cluster's"
    raise UsageError(
        f"--address {address}: the Ray cluster there refused this machine's token ({problem}): "
        "copy the head's ~/.ray/auth_token here (chmod 600; see docs/fleet.md)"
    )


def running_cluster() -> str | None:
    """The address of a live cluster started on this machine with ``ray start`` (Ray records
    it in ``ray_current_cluster`` under its temp dir, and leaves the file behind when the
    cluster dies), or None."""
    try:
        from ray._common.utils import get_ray_address_file
    except ImportError:
        return None
    path = Path(get_ray_address_file(None))
    try:
        address = path.read_text().strip()
    except OSError:
        return None
    if not address:
        return None
    return address if probe_gcs(address, timeout_s=1.0) in (GCS_OK, GCS_UNAUTHENTICATED) else None


def alive_nodes() -> list[Node]:
    import ray

    nodes = []
    for n in ray.nodes():
        if not n.get("Alive"):
            continue
        res = n.get("Resources", {})
        targets = tuple(sorted(k[len(TARGET_PREFIX) :] for k in res if k.startswith(TARGET_PREFIX)))
        nodes.append(
            Node(
                node_id=n["NodeID"],
                host=n.get("NodeManagerHostname") or n.get("NodeManagerAddress", "?"),
                cpus=int(res.get("CPU", 0)),
                targets=targets,
                slotted=NODE_SLOT in res,
                ip=n.get("NodeManagerAddress"),
                resources=dict(res),
            )
        )
    return nodes
