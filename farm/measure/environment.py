"""The environment fingerprint: what a measurement ran on, stored once per distinct environment.

Cheap by design: it reads ``/proc``, asks ``nvidia-smi`` (if present) and reads installed package
versions from their metadata. It imports no runtime and never initialises CUDA, so it can run on
every measurement. Only facts that change the numbers go in; volatile ones (host name, clock
speed, load) stay out so that identical machines share one ``env_id``.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

#: CPU flags that change which kernels a runtime can use (x86: AVX-512, VNNI, BF16, AMX;
#: Arm: NEON/ASIMD, dot product, SVE, bf16/i8mm).
RELEVANT_CPU_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "neon",
    "asimd",
    "asimddp",
    "sve",
    "sve2",
    "bf16",
    "i8mm",
)

#: Libraries whose versions are part of the fingerprint (distribution names).
PACKAGES = (
    "numpy",
    "onnx",
    "onnxruntime",
    "onnxruntime-gpu",
    "openvino",
    "torch",
    "torchvision",
    "nncf",
    "tensorrt",
    "torch-tensorrt",
)

REPO_DIR = Path(__file__).resolve().parents[1]


def fingerprint() -> dict[str, Any]:
    """Facts about this machine and software that a latency number depends on (JSON-able)."""
    cpu = parse_cpuinfo(_read("/proc/cpuinfo"))
    return {
        "cpu_model": cpu["model"] or platform.processor() or "unknown",
        "arch": platform.machine(),
        "cpu_flags": cpu["flags"],
        "logical_cores": os.cpu_count() or 0,
        "cpus_available": _cpus_available(),
        "memory_gib": _memory_gib(),
        "gpus": _gpus(),
        "os": f"{platform.system()} {platform.release()}",
        "libc": " ".join(platform.libc_ver()).strip() or "unknown",
        "python": platform.python_version(),
        "python_implementation": sys.implementation.name,
        "packages": package_versions(),
        "farm_commit": git_commit(),
    }


def env_id(fp: dict[str, Any]) -> str:
    """A stable content hash of a fingerprint (key order does not matter)."""
    text = json.dumps(fp, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_cpuinfo(text: str) -> dict[str, Any]:
    """CPU model and the relevant flags from ``/proc/cpuinfo`` text (x86 or Arm)."""
    model = ""
    flags: set[str] = set()
    arm_ids: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "model name" and not model:
            model = value
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
        elif key in ("CPU implementer", "CPU part") and key not in arm_ids:
            arm_ids[key] = value
    if not model and arm_ids:
        model = "arm " + " ".join(f"{k.split()[-1]}={v}" for k, v in sorted(arm_ids.items()))
    return {"model": model, "flags": sorted(f for f in RELEVANT_CPU_FLAGS if f in flags)}


def package_versions() -> dict[str, str]:
    """Installed versions of :data:`PACKAGES` (read from metadata; nothing is imported)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_commit(repo: Path = REPO_DIR) -> str:
    """The farm's ``git rev-parse HEAD`` (``+dirty`` when tracked files differ), or "unknown"."""
    if shutil.which("git") is None:
        return "unknown"
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=5
        )
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "diff", "--quiet", "HEAD"], cwd=repo, capture_output=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty.returncode == 1 else "")


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _cpus_available() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 0


def _memory_gib() -> float:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 2**20, 1)
    try:
        import psutil

        return round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        return 0.0


def _gpus() -> list[dict[str, str]]:
    """NVIDIA GPUs from ``nvidia-smi`` (model, driver, memory); empty without one."""
    from targets._cuda import gpus

    return gpus()


def trial_gpu_model(gpus: list[dict[str, Any]], visible_devices: str | None) -> str | None:
    """The model of the GPU a process ran on, from its node's GPU list (``nvidia-smi`` order)
    and its ``CUDA_VISIBLE_DEVICES``: the GPU whose index comes first there (Ray gives each GPU
    task one index), else the node's first GPU. None on a node without a GPU."""
    if not gpus:
        return None
    first = (visible_devices or "").split(",")[0].strip()
    if first.isdigit() and int(first) < len(gpus):
        return str(gpus[int(first)]["model"])
    return str(gpus[0]["model"])
