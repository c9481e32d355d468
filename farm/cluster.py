"""Ray: start or join a cluster, find which nodes serve which targets, and keep nodes exclusive.

Locally (no ``--address``) the farm starts Ray on this machine and advertises, as custom
resources, the catalog targets whose runtime libraries are installed and whose architecture and
device match this machine. On a fleet, nodes join with ``ray start --resources
'{"target:NAME": 1}'`` and the farm reads those resources.

Exclusivity: a node runs at most one farm task (a build or a measurement) at a time. The driver
leases a node before it submits a task pinned to it (NodeAffinitySchedulingStrategy, hard) and
releases it when the task ends, so a measurement never shares its node with another measurement
or a build.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
from dataclasses import dataclass, field

from targets import catalog

TARGET_PREFIX = "target:"
#: A node that advertises one unit of this resource lets Ray itself keep it exclusive: every farm
#: task on it asks for the unit, so even two jobs on one cluster never share the node.
NODE_SLOT = "farm:node"

#: Python modules whose presence means a runtime can run here (checked without importing them).
RUNTIME_IMPORTS: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "onnxruntime": ("onnxruntime",),
    "openvino": ("openvino",),
    "onnxruntime-cuda": ("onnxruntime",),
    "tensorrt": ("torch_tensorrt", "tensorrt"),
    "cuda-torch": ("torch",),
}


def has_cuda_gpu() -> bool:
    """A CUDA GPU is visible (driver present). Cheap: does not import torch."""
    return shutil.which("nvidia-smi") is not None and os.path.exists("/dev/nvidia0")


def local_targets() -> list[str]:
    """Catalog targets this machine can serve: runtime installed, architecture and device match."""
    arch = platform.machine()
    served = []
    for name, t in catalog().items():
        if t.arch != arch or (t.device == "cuda" and not has_cuda_gpu()):
            continue
        if not all(importlib.util.find_spec(m) is not None for m in RUNTIME_IMPORTS[t.runtime]):
            continue
        if t.device == "cuda":
            # A GPU box with, say, the CPU build of onnxruntime must not advertise
            # cuda-onnxruntime: ask the runtime itself (this may import torch).
            from farm.fleet import runtime_problem

            if runtime_problem(t.runtime, gpu=True) is not None:
                continue
        served.append(name)
    return served


@dataclass(frozen=True)
class Node:
    node_id: str
    host: str
    cpus: int
    targets: tuple[str, ...]
    #: True when the node advertises NODE_SLOT (exclusivity enforced by Ray across jobs).
    slotted: bool = False
    resources: dict[str, float] = field(default_factory=dict, compare=False)


def start_or_connect(address: str | None, num_cpus: int | None = None) -> None:
    """Start a local Ray instance advertising the local targets, or join ``address``."""
    import ray

    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, log_to_driver=False)
        return
    resources = {f"{TARGET_PREFIX}{t}": 1.0 for t in local_targets()}
    resources[NODE_SLOT] = 1.0
    ray.init(
        num_cpus=num_cpus or os.cpu_count(),
        resources=resources,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )


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
                resources=dict(res),
            )
        )
    return nodes


class NodeLeases:
    """The driver's record of which nodes are busy with a farm task."""

    def __init__(self) -> None:
        self._busy: dict[str, str] = {}

    def busy(self, node_id: str) -> bool:
        return node_id in self._busy

    def acquire(self, nodes: list[Node], holder: str) -> Node | None:
        """Lease the first free node of ``nodes`` (least-loaded order is the caller's)."""
        for node in nodes:
            if node.node_id not in self._busy:
                self._busy[node.node_id] = holder
                return node
        return None

    def release(self, node_id: str) -> None:
        self._busy.pop(node_id, None)

    def __len__(self) -> int:
        return len(self._busy)
