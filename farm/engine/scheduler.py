"""Where and when a trial's next task may run: the alive nodes, their leases, and which
targets have lost every node that served them.

A study asks only when a node could start its trial (:meth:`Scheduler.node_free_for`): a trial
asked earlier would only wait in a queue (its ``trial_s`` counts from the ask) and the sampler
would ask it knowing less. Builds prefer nodes that serve the fewest targets (sparing the
measurers); an evaluation takes a node serving its target with the CPUs its threads need, or
one GPU of it when CUDA measurements share nodes (:func:`farm.cluster.leases.shares_gpus`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from farm.cluster.leases import NodeLeases, measurement_slots, shares_gpus

if TYPE_CHECKING:
    from farm.cluster.lifecycle import Node
    from farm.engine.studies import TrialRun
    from targets.base import TargetSpec


class Scheduler:
    """The driver's view of the nodes a job may use, and its leases on them."""

    def __init__(self, targets: Mapping[str, TargetSpec], measurement: Mapping[str, Any]):
        self.targets = targets
        self.measurement = measurement
        self.leases = NodeLeases()
        #: Alive nodes, less those lost.
        self.nodes: list[Node] = []
        #: Nodes a task was lost on (died, unschedulable, mislabelled): never leased again.
        self.lost: set[str] = set()

    def refresh(self, alive: Iterable[Node]) -> None:
        """Take the cluster's alive nodes (less those this job lost)."""
        self.nodes = [n for n in alive if n.node_id not in self.lost]

    def exclude(self, node_id: str) -> None:
        """Never lease this node again."""
        self.lost.add(node_id)
        self.refresh(self.nodes)

    def serving(self, target: str) -> list[Node]:
        return [n for n in self.nodes if target in n.targets]

    def most_cpus(self, target: str) -> int:
        """The CPUs of the largest node still serving ``target`` (0: none does)."""
        return max((n.cpus for n in self.serving(target)), default=0)

    def per_gpu(self, target: str) -> bool:
        return shares_gpus(self.targets[target].device, self.measurement)

    def capacity(self, target: str) -> int:
        """Measurements of ``target`` that can run at once: one per serving node, or one per
        GPU of it for a CUDA target whose measurements share nodes."""
        per_gpu = self.per_gpu(target)
        return sum(measurement_slots(n, per_gpu) for n in self.serving(target))

    def node_free_for(self, target: str, waiting: Iterable[TrialRun]) -> bool:
        """Whether a new trial of ``target`` could start now: a node serving it is free and no
        waiting trial has a claim on it."""
        free = [n for n in self.serving(target) if not self.leases.busy(n.node_id)]
        claims = sum(
            1 for r in waiting if r.stage == "build" or any(r.target in n.targets for n in free)
        )
        return len(free) > claims

    def lease_build(self, holder: str) -> Node | None:
        """A free node for a build, preferring nodes that serve few targets."""
        candidates = sorted(self.nodes, key=lambda n: len(n.targets))
        return self.leases.acquire([n for n in candidates if n.cpus >= 1], holder)

    def lease_evaluation(self, target: str, threads: int, holder: str) -> Node | None:
        """A node serving ``target`` with ``threads`` CPUs, leased whole or by one GPU."""
        serving = [n for n in self.serving(target) if n.cpus >= threads]
        return self.leases.acquire(serving, holder, per_gpu=self.per_gpu(target))

    def release(self, node: Node, holder: str) -> None:
        self.leases.release(node.node_id, holder)

    def serves_job(self, node: Node) -> bool:
        """Whether the node measures a target of this job (its builds then warm a worker)."""
        return any(t in node.targets for t in self.targets)
