"""CUDA facts shared by the GPU runtimes and by the farm's view of a machine.

Whether a GPU is visible, whether torch can use it, which GPUs ``nvidia-smi`` lists and how much
memory a process holds on them, where a node keeps its compiled engines. One place, so that the
farm (``farm.cluster.capabilities``, the measurement's environment) and the runtimes ask the same
questions the same way. Cheap: nothing here imports torch unless a function says it does.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tempfile
from pathlib import Path


def has_cuda_gpu() -> bool:
    """A CUDA GPU is visible (driver present). Cheap: does not import torch."""
    return shutil.which("nvidia-smi") is not None and os.path.exists("/dev/nvidia0")


def torch_cuda_problem() -> str | None:
    """Why torch cannot run on a CUDA GPU here, or None when it can (imports torch)."""
    if importlib.util.find_spec("torch") is None:
        return "torch not installed"
    import torch

    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU-only build (torch.version.cuda is None)"
    if not torch.cuda.is_available():
        return f"torch {torch.__version__} sees no CUDA GPU (torch.cuda.is_available() is False)"
    return None


def _nvidia_smi(*args: str) -> list[list[str]] | None:
    """``nvidia-smi ARGS --format=csv,noheader[,nounits]`` as rows of stripped fields; None when
    there is no ``nvidia-smi`` or it fails."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", *args], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return [[p.strip() for p in line.split(",")] for line in out.stdout.strip().splitlines()]


def gpus() -> list[dict[str, str]]:
    """NVIDIA GPUs from ``nvidia-smi`` (model, driver, memory), in its order; empty without one.

    ``nvidia-smi`` rather than ``torch.cuda``: importing torch and initialising CUDA would cost
    seconds and change the process being measured."""
    rows = _nvidia_smi("--query-gpu=name,driver_version,memory.total", "--format=csv,noheader")
    return [{"model": r[0], "driver": r[1], "memory": r[2]} for r in rows or () if len(r) == 3]


def gpu_name() -> str:
    """The first GPU's model per ``nvidia-smi`` (the engine caches' key), or ``"unknown"``."""
    found = gpus()
    return found[0]["model"] if found else "unknown"


def process_gpu_memory_mib(pid: int | None = None) -> float | None:
    """GPU memory used by process ``pid`` (default: this one) per ``nvidia-smi``, or None."""
    rows = _nvidia_smi("--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits")
    pid = os.getpid() if pid is None else pid
    for parts in rows or ():
        if len(parts) == 2 and parts[0] == str(pid) and parts[1].isdigit():
            return float(parts[1])
    return None


def node_cache_root() -> Path:
    """The node-local cache (``$FARM_NODE_CACHE``, as the build tasks use)."""
    default = Path(tempfile.gettempdir()) / "farm-node"
    return Path(os.environ.get("FARM_NODE_CACHE", default))
