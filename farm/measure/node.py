"""A measurement's process: fresh, on the hardware its target names, with the CPUs Ray granted
it, pinned one thread per physical core (docs/measurement.md, isolation).

Every measurement the farm makes on a node goes through here: a trial's evaluation
(:mod:`farm.worker.remote`) and the gate's re-measurement (:mod:`farm.measure.remote`).
"""

from __future__ import annotations

import os
import platform
import socket
import sys
from dataclasses import replace
from functools import cache

from farm.errors import NotFreshProcessError, WrongHardwareError
from targets.base import RuntimeOptions, TargetSpec

#: The environment variable that marks the worker processes of the build pool.
POOL_VARIABLE = "FARM_WORKER_POOL"


@cache
def loaded_by_builds_and_runtimes() -> tuple[str, ...]:
    """What a fresh process must not have loaded when its measurement starts: every library a
    runtime or a transform declares it needs (``Runtime.requires``, ``Transform.requires``);
    a measurement loads its own runtime when it compiles."""
    import optimizers
    from targets import runtime_classes

    modules = {m for cls in runtime_classes().values() for m in cls.requires}
    modules.update(m for t in optimizers.transforms() for m in t.requires)
    return tuple(sorted(modules))


def check_fresh_process() -> None:
    """Raise unless this process is fresh: no runtime loaded, not a build worker."""
    loaded = [m for m in loaded_by_builds_and_runtimes() if m in sys.modules]
    if loaded or os.environ.get(POOL_VARIABLE) == "build":
        what = f"with {', '.join(loaded)} loaded" if loaded else "of the build pool"
        raise NotFreshProcessError(f"refusing to measure in a worker process {what} (not fresh)")


def check_hardware(target: TargetSpec) -> None:
    """Refuse to measure a target this machine does not match (a mislabelled node)."""
    from targets._cuda import has_cuda_gpu

    arch = platform.machine()
    if arch != target.arch:
        raise WrongHardwareError(
            f"node {socket.gethostname()} advertises {target.resource} but is {arch}, "
            f"and {target.name} needs {target.arch}: refusing to measure"
        )
    if target.device == "cuda" and not has_cuda_gpu():
        raise WrongHardwareError(
            f"node {socket.gethostname()} advertises {target.resource} but has no CUDA GPU"
        )


def granted_cpus() -> int:
    """CPUs Ray granted this task (falls back to the affinity mask outside Ray)."""
    try:
        import ray

        if not ray.is_initialized():  # outside Ray: asking would start an instance
            raise LookupError("not in a Ray task")
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
        if cpus:
            return max(1, int(cpus))
    except Exception:
        pass
    return len(os.sched_getaffinity(0))


def gpu_slot() -> int:
    """The index of the GPU Ray gave this task (the first of ``CUDA_VISIBLE_DEVICES``), 0 when
    it names none."""
    first = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    return int(first) if first.isdigit() else 0


def prepare_process(target: TargetSpec, options: RuntimeOptions) -> RuntimeOptions:
    """Check the hardware, then give the runtime the CPUs Ray granted this task and pin the
    (fresh) process to one CPU per physical core before the runtime creates its threads."""
    from farm.measure.affinity import pin_to_cores

    check_hardware(target)
    cpus = granted_cpus()
    if options.threads != cpus:
        options = replace(options, threads=cpus)
    # Measurements on a node's other GPUs run beside this one: each takes the cores of its GPU.
    slot = gpu_slot() if target.device == "cuda" else 0
    pin_to_cores(options.threads, skip=slot * options.threads)
    return options
