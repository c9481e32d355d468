"""Which nodes are busy: a node runs at most one farm task (a build or a measurement) at a time.

The driver leases a node before it submits a task pinned to it (NodeAffinitySchedulingStrategy,
hard) and releases it when the task ends, so a measurement never shares its node with another
measurement or a build. One exception: a node with k GPUs runs up to k measurements of CUDA
targets at once, each on its own GPU (Ray's ``num_gpus=1`` sets its ``CUDA_VISIBLE_DEVICES``),
unless the job's measurement contract says ``exclusive_node = true``; the contract of each such
measurement records ``exclusive_node = false``.

The driver's leases cover one job; across jobs on one cluster, Ray itself keeps a node
exclusive through its :data:`NODE_SLOT` unit, which every farm task asks for
(:func:`node_slot`, :func:`measurement_resources`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from farm.cluster.lifecycle import NODE_SLOT, Node

__all__ = [
    "NODE_SLOT",
    "NodeLeases",
    "measurement_resources",
    "measurement_slots",
    "node_slot",
    "shares_gpus",
]


def shares_gpus(device: str, measurement: Mapping[str, Any]) -> bool:
    """Whether measurements of a target on ``device`` run one per GPU, beside each other: CUDA
    targets do, unless the job's ``[measurement]`` says ``exclusive_node = true``."""
    return device == "cuda" and not measurement.get("exclusive_node", False)


def measurement_slots(node: Node, per_gpu: bool) -> int:
    """How many measurements ``node`` runs at once: one per GPU when they share it, else one."""
    return max(1, node.gpus) if per_gpu else 1


def node_slot(node: Node) -> dict[str, float]:
    """The node's exclusivity unit, when it has one: Ray then keeps the node to this one task
    across every job on the cluster (the driver's own leases only cover this job)."""
    return {NODE_SLOT: 1.0} if node.slotted else {}


def measurement_resources(node: Node, cuda: bool, per_gpu: bool) -> dict[str, Any]:
    """Ray options of a measurement on ``node``: one GPU for a CUDA target (Ray then sets the
    task's ``CUDA_VISIBLE_DEVICES`` to it), and the node's exclusivity unit: all of it, or one
    GPU's share of it when measurements share the node's GPUs (so that no build, and no other
    job's task, joins them)."""
    gpus = 1 if cuda and node.gpus >= 1 else 0
    resources: dict[str, float] = {}
    if node.slotted:
        slots = measurement_slots(node, per_gpu and gpus == 1)
        resources[NODE_SLOT] = math.floor(10_000 / slots) / 10_000  # Ray counts in 1e-4 units
    return {"num_gpus": gpus, "resources": resources}


@dataclass
class _Lease:
    holders: list[str]
    #: True for a lease of one GPU (others may hold the node's other GPUs).
    per_gpu: bool
    slots: int


class NodeLeases:
    """The driver's record of which nodes are busy with farm tasks.

    A lease is either exclusive (a build, a CPU measurement, a GPU measurement on an exclusive
    node) or one GPU of the node (``per_gpu``): a node holds one exclusive lease, or up to one
    GPU lease per GPU."""

    def __init__(self) -> None:
        self._held: dict[str, _Lease] = {}

    def busy(self, node_id: str) -> bool:
        """True when no further lease fits on the node now (a node with a free GPU is not)."""
        lease = self._held.get(node_id)
        return lease is not None and (not lease.per_gpu or len(lease.holders) >= lease.slots)

    def acquire(self, nodes: list[Node], holder: str, per_gpu: bool = False) -> Node | None:
        """Lease a node of ``nodes``: the first free one (least-loaded order is the caller's),
        else, for a ``per_gpu`` lease, the first with a free GPU."""
        for node in nodes:
            if node.node_id not in self._held:
                slots = measurement_slots(node, per_gpu)
                self._held[node.node_id] = _Lease([holder], per_gpu, slots)
                return node
        if per_gpu:
            for node in nodes:
                lease = self._held[node.node_id]
                if lease.per_gpu and len(lease.holders) < lease.slots:
                    lease.holders.append(holder)
                    return node
        return None

    def release(self, node_id: str, holder: str | None = None) -> None:
        """End ``holder``'s lease on the node (any one of its leases when not named)."""
        lease = self._held.get(node_id)
        if lease is None:
            return
        if holder in lease.holders:
            lease.holders.remove(holder)
        elif lease.holders:
            lease.holders.pop()
        if not lease.holders:
            del self._held[node_id]

    def __len__(self) -> int:
        return sum(len(lease.holders) for lease in self._held.values())
