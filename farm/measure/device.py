"""The device's own time and memory of a measurement on a GPU target.

A runtime whose sessions run on a device declares it (``Runtime.is_device``) and its sessions are
:class:`~targets.base.DeviceSession`\\ s: the measurement starts their timer (CUDA events) before
the harness runs and reads it after, keeping the times of the calls the harness reported.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from targets.base import DeviceSession

if TYPE_CHECKING:
    from farm.measure import Measurement
    from targets.base import Session, TargetSpec


@dataclass(frozen=True)
class DeviceFigures:
    """What a device session adds to a measurement (all None on a CPU target)."""

    #: The GPU's own time of the reported samples (CUDA events; docs/measurement.md).
    device_latency_p50_ms: float | None = None
    device_latency_p95_ms: float | None = None
    #: Peak device memory of the session (MiB), where the runtime reports it.
    device_memory_mib: float | None = None


def start_device_timing(session: Session) -> bool:
    """Start the session's device timer, where it has one."""
    return isinstance(session, DeviceSession) and bool(session.start_device_timing())


def device_figures(session: Session, timing: bool, result: Measurement) -> DeviceFigures:
    """The GPU's own time of the samples the measurement reported, and the session's peak device
    memory. The timer saw every call: the warm-up runs, the discarded samples, the reported ones
    (``Measurement.samples_ms`` are calls ``warmup_runs + discarded_samples`` onwards)."""
    from farm.measure import percentile

    if not isinstance(session, DeviceSession):
        return DeviceFigures()
    timed = session.stop_device_timing() if timing else []
    first = result.warmup_runs + result.discarded_samples
    kept = timed[first : first + result.n_samples]
    method = result.contract.percentile_method
    ok = len(kept) == result.n_samples > 0
    memory = session.device_memory_mib
    return DeviceFigures(
        device_latency_p50_ms=percentile(kept, 50, method) if ok else None,
        device_latency_p95_ms=percentile(kept, 95, method) if ok else None,
        device_memory_mib=None if memory is None else float(memory),
    )


def trial_gpu(target: TargetSpec, environment: dict[str, Any]) -> str | None:
    """The model of the GPU this process ran a CUDA target on (None for CPU targets)."""
    from farm.measure.environment import trial_gpu_model

    if target.device != "cuda":
        return None
    return trial_gpu_model(environment.get("gpus", []), os.environ.get("CUDA_VISIBLE_DEVICES"))
