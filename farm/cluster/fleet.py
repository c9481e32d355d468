"""What each node of the cluster really is, and whether it deserves the targets it advertises.

A node joins the fleet with ``ray start --resources '{"target:NAME": 1}'``: a *claim* typed by a
person. :func:`probe_cluster` runs :func:`probe_node` on every alive node (a zero-CPU Ray task
pinned to it) and compares the claim with the hardware and the runtimes found there. A target a
node advertises but cannot serve is *mislabelled*: the worker would refuse those trials
(``farm.measure.node.check_hardware``); ``farm targets`` shows why before a job is run. The
verdicts are :mod:`farm.cluster.capabilities`'s, asked on the node.
"""

from __future__ import annotations

import platform
import socket
from dataclasses import asdict, dataclass, field
from typing import Any

from farm.cluster.capabilities import has_cuda_gpu, runtime_problem, target_problem
from farm.cluster.lifecycle import TARGET_PREFIX, alive_nodes
from targets import catalog

#: How long a node may take to answer a probe (a GPU node imports torch to check CUDA).
DEFAULT_TIMEOUT_S = 60.0


def probe_node(advertised: list[str]) -> dict[str, Any]:
    """Facts about the machine this runs on, and a verdict per catalog target (JSON-able)."""
    from farm.measure.environment import fingerprint

    fp = fingerprint()
    arch = platform.machine()
    gpu = has_cuda_gpu()
    runtimes = {r: runtime_problem(r, gpu) for r in sorted({t.runtime for t in catalog().values()})}
    problems = {name: target_problem(t, arch, runtimes) for name, t in catalog().items()}
    return {
        "host": socket.gethostname(),
        "arch": arch,
        "cpu_model": fp["cpu_model"],
        "cpu_flags": fp["cpu_flags"],
        "logical_cores": fp["logical_cores"],
        "memory_gib": fp["memory_gib"],
        "gpus": fp["gpus"],
        #: runtime key -> None when it runs here, else why not
        "runtimes": runtimes,
        "servable": sorted(name for name, p in problems.items() if p is None),
        "mislabelled": {name: problems[name] or "" for name in advertised if problems.get(name)},
        "unknown_targets": sorted(name for name in advertised if name not in problems),
    }


@dataclass
class NodeReport:
    """One node as Ray sees it (id, CPUs, advertised targets) plus what its probe found."""

    node_id: str
    ray_host: str
    cpus: int
    advertised: list[str]
    probe: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def mislabelled(self) -> dict[str, str]:
        """Advertised targets this node cannot serve, with the reason."""
        out = dict(self.probe.get("mislabelled", {}))
        for name in self.probe.get("unknown_targets", []):
            out[name] = f"{TARGET_PREFIX}{name} is not a catalog target"
        return out

    @property
    def serves(self) -> list[str]:
        """Advertised targets this node can serve: what the farm will schedule there."""
        return [t for t in self.advertised if t in self.probe.get("servable", [])]

    @property
    def could_serve(self) -> list[str]:
        """Targets this node could serve but does not advertise."""
        return [t for t in self.probe.get("servable", []) if t not in self.advertised]

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "serves": self.serves,
            "could_serve": self.could_serve,
            "mislabelled": self.mislabelled,
        }


def probe_cluster(timeout_s: float = DEFAULT_TIMEOUT_S) -> list[NodeReport]:
    """Probe every alive node of the connected Ray cluster; a silent node gets an ``error``."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    # max_calls=1: asking a runtime may import it; the worker exits rather than stay in the pool
    # an evaluation's fresh worker is taken from (farm.worker.remote)
    remote_probe = ray.remote(num_cpus=0, max_retries=0, max_calls=1)(probe_node)
    reports: dict[Any, NodeReport] = {}
    for node in alive_nodes():
        report = NodeReport(node.node_id, node.host, node.cpus, list(node.targets))
        strategy = NodeAffinitySchedulingStrategy(node.node_id, soft=False)
        ref = remote_probe.options(scheduling_strategy=strategy).remote(report.advertised)
        reports[ref] = report
    if not reports:
        return []
    ready, pending = ray.wait(list(reports), num_returns=len(reports), timeout=timeout_s)
    for ref in ready:
        try:
            reports[ref].probe = ray.get(ref)
        except Exception as exc:
            reports[ref].error = f"probe failed: {type(exc).__name__}: {exc}"
    for ref in pending:
        reports[ref].error = f"no answer within {timeout_s:g} s"
        ray.cancel(ref, force=True)
    return sorted(reports.values(), key=lambda r: (r.ray_host, r.node_id))
