"""What a machine can serve: the catalog targets whose runtime runs here and whose architecture
and device match, and why not for the others.

Asked without a cluster (which targets a local Ray instance advertises) and on every node of one
(:mod:`farm.cluster.fleet`'s probe). Each runtime declares what it needs (``Runtime.requires``,
``Runtime.unavailable_reason``); nothing here knows a runtime by name. A runtime's library is
imported only to ask a question its modules' presence cannot answer (does this onnxruntime have
the CUDA provider, does this torch see a GPU), and only for targets that already match.
"""

from __future__ import annotations

import platform

from targets import catalog, runtime_class
from targets._cuda import has_cuda_gpu
from targets.base import TargetSpec

__all__ = [
    "has_cuda_gpu",
    "local_targets",
    "runtime_import_problem",
    "runtime_problem",
    "target_problem",
]


def runtime_import_problem(runtime: str) -> str | None:
    """Which module ``runtime`` requires is missing here (checked without importing), or None."""
    missing = runtime_class(runtime).missing_module()
    return None if missing is None else f"module `{missing}` is not installed"


def runtime_problem(runtime: str, gpu: bool) -> str | None:
    """Why ``runtime`` cannot run on this machine, or None when it can.

    A device runtime is asked for its own reason only when a GPU is visible (it may import
    torch, which takes seconds)."""
    problem = runtime_import_problem(runtime)
    if problem is not None:
        return problem
    cls = runtime_class(runtime)
    if cls.is_device and not gpu:
        return "no CUDA GPU visible"
    return cls.unavailable_reason()


def target_problem(target: TargetSpec, arch: str, runtimes: dict[str, str | None]) -> str | None:
    """Why this machine cannot serve ``target``, or None when it can."""
    if arch != target.arch:
        return f"machine is {arch}, {target.name} needs {target.arch}"
    problem = runtimes.get(target.runtime, "unknown runtime")
    return None if problem is None else f"runtime {target.runtime}: {problem}"


def local_targets() -> list[str]:
    """Catalog targets this machine can serve: runtime installed, architecture and device match."""
    arch = platform.machine()
    gpu = has_cuda_gpu()
    served = []
    for name, t in catalog().items():
        if t.arch != arch or (t.device == "cuda" and not gpu):
            continue
        if runtime_import_problem(t.runtime) is not None:
            continue
        # A GPU box with, say, the CPU build of onnxruntime must not advertise
        # cuda-onnxruntime: ask the runtime itself (this may import torch).
        if runtime_class(t.runtime).is_device and runtime_problem(t.runtime, gpu) is not None:
            continue
        served.append(name)
    return served
