"""Ray and the machines: starting or joining a cluster (:mod:`~farm.cluster.lifecycle`), node
leases that keep a measurement alone on its node (:mod:`~farm.cluster.leases`), what a machine
can serve (:mod:`~farm.cluster.capabilities`) and what each node of a fleet really is
(:mod:`~farm.cluster.fleet`).
"""

from __future__ import annotations

from farm.cluster.capabilities import has_cuda_gpu, local_targets
from farm.cluster.leases import (
    NODE_SLOT,
    NodeLeases,
    measurement_resources,
    measurement_slots,
    node_slot,
    shares_gpus,
)
from farm.cluster.lifecycle import TARGET_PREFIX, Node, alive_nodes, start_or_connect

__all__ = [
    "NODE_SLOT",
    "TARGET_PREFIX",
    "Node",
    "NodeLeases",
    "alive_nodes",
    "has_cuda_gpu",
    "local_targets",
    "measurement_resources",
    "measurement_slots",
    "node_slot",
    "shares_gpus",
    "start_or_connect",
]
