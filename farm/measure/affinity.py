"""Pinning a measurement to as many CPUs as it has runtime threads, one per physical core.

Without it the scheduler migrates a runtime's threads across the machine; on a many-core node two
threads that land on the SMT siblings of one core run ~1.4× slower, and a measurement flips
between the two states from run to run (seen: ResNet-18 p50 12 ms ↔ 17 ms on a quiet 16-CPU
machine). Pin *before* the runtime creates its thread pool: new threads inherit the mask.
Linux only; elsewhere nothing is pinned.
"""

from __future__ import annotations

import os
from pathlib import Path

_SYS_CPU = Path("/sys/devices/system/cpu")


def physical_core_cpus(allowed: set[int], sys_cpu: Path = _SYS_CPU) -> list[int]:
    """One CPU of each physical core among ``allowed``, grouped by socket, highest ids first.

    Highest first because CPU 0 (and its neighbours) usually carry the kernel's housekeeping and
    device interrupts; on a quiet 16-CPU VM, ResNet-18 ran 18 ms on CPUs 0-1 against 12 ms on
    the unpinned best case.
    """
    seen: set[tuple[str, str]] = set()
    chosen: list[tuple[str, int]] = []
    for cpu in sorted(allowed):
        topo = sys_cpu / f"cpu{cpu}" / "topology"
        try:
            package = (topo / "physical_package_id").read_text().strip()
            core = (topo / "core_id").read_text().strip()
        except OSError:
            package, core = "?", f"cpu{cpu}"  # no topology: treat each CPU as its own core
        if (package, core) not in seen:
            seen.add((package, core))
            chosen.append((package, cpu))
    chosen.sort(key=lambda pc: (pc[0], -pc[1]))
    return [cpu for _, cpu in chosen]


def pin_to_cores(threads: int, skip: int = 0) -> list[int] | None:
    """Restrict this process to ``threads`` CPUs on distinct physical cores; return them.

    ``skip``: cores left to others first (measurements on a node's other GPUs run at the same
    time, each on its own cores); counted round the node's cores when there are too few.
    Returns None (and changes nothing) when pinning is unavailable or when the process may not
    use more CPUs than that anyway, e.g. a Ray task already limited to its grant.
    """
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = os.sched_getaffinity(0)
    if len(allowed) <= threads:
        return None
    cores = physical_core_cpus(allowed)
    if cores and skip:
        start = skip % len(cores)
        cores = cores[start:] + cores[:start]
    cpus = cores[:threads] if len(cores) >= threads else sorted(allowed, reverse=True)[:threads]
    os.sched_setaffinity(0, cpus)
    return cpus
