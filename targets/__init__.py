"""Hardware targets: the catalog (``catalog.toml``) and the runtime backends behind it.

Backends are imported lazily by name, so that ``farm --help`` or validating a job file never
imports torch, ONNX Runtime or OpenVINO.

A target can also be added from Python, without a file of this package changing:
:func:`register_target` records a :class:`TargetSpec` and its :class:`~targets.base.Runtime`
class in this process. The engine hands both to its workers with each evaluation, so such a target
runs on Ray workers that never saw the registration.
"""

from __future__ import annotations

import importlib
import tomllib
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from targets.base import DeviceSession, RuntimeOptions, Session, TargetSpec

if TYPE_CHECKING:
    from farm.artifact import Artifact
    from targets.base import Runtime

CATALOG_PATH = Path(__file__).with_name("catalog.toml")

#: Runtime key -> module in this package that defines ``RUNTIME`` (a Runtime subclass).
#: A fixed table: user input never chooses what gets imported.
RUNTIME_MODULES: dict[str, str] = {
    "torch": "targets.torch_runtime",
    "onnxruntime": "targets.onnxruntime_runtime",
    "openvino": "targets.openvino_runtime",
    "onnxruntime-cuda": "targets.cuda_onnxruntime_runtime",
    "tensorrt": "targets.tensorrt_runtime",
    "cuda-torch": "targets.cuda_torch_runtime",
}

#: The catalog's table of GPU prices (``[gpu-prices.<GPU>]``): not a target.
GPU_PRICES = "gpu-prices"

#: Targets and runtimes registered from Python in this process (:func:`register_target`).
_REGISTERED_TARGETS: dict[str, TargetSpec] = {}
_REGISTERED_RUNTIMES: dict[str, type[Runtime]] = {}


@cache
def _catalog_file() -> dict[str, Any]:
    return tomllib.loads(CATALOG_PATH.read_text())


@cache
def _file_targets() -> dict[str, TargetSpec]:
    return {
        name: TargetSpec(name=name, **{**entry, "precisions": tuple(entry["precisions"])})
        for name, entry in _catalog_file().items()
        if name != GPU_PRICES
    }


def catalog() -> dict[str, TargetSpec]:
    """All targets, by name: the catalog file's and those registered in this process."""
    return {**_file_targets(), **_REGISTERED_TARGETS}


def register_target(spec: TargetSpec, runtime_cls: type[Runtime]) -> None:
    """Add a target (and the runtime it names) to this process's catalog.

    ``spec.runtime`` must be ``runtime_cls.name``; a name the catalog file already uses is
    refused, as is a runtime key that names another class. Registering the same pair again is
    harmless (a test module imported twice)."""
    if spec.runtime != runtime_cls.name:
        raise ValueError(
            f"target {spec.name!r} names runtime {spec.runtime!r}, but the class given is "
            f"runtime {runtime_cls.name!r}"
        )
    if spec.name in _file_targets():
        raise ValueError(f"target {spec.name!r} is a catalog target; pick another name")
    known = _REGISTERED_RUNTIMES.get(runtime_cls.name)
    if runtime_cls.name in RUNTIME_MODULES or (known is not None and known is not runtime_cls):
        raise ValueError(f"runtime {runtime_cls.name!r} is already another class")
    _REGISTERED_RUNTIMES[runtime_cls.name] = runtime_cls
    _REGISTERED_TARGETS[spec.name] = spec


def unregister_target(name: str) -> None:
    """Forget a target registered with :func:`register_target` (and its runtime, when no other
    registered target names it)."""
    spec = _REGISTERED_TARGETS.pop(name, None)
    if spec is not None and all(t.runtime != spec.runtime for t in _REGISTERED_TARGETS.values()):
        _REGISTERED_RUNTIMES.pop(spec.runtime, None)


def gpu_price_table() -> dict[str, dict[str, Any]]:
    """The catalog's ``[gpu-prices]`` rows as written (``farm/engine/pricing.py`` reads them)."""
    return {name: dict(row) for name, row in _catalog_file().get(GPU_PRICES, {}).items()}


def get_target(name: str) -> TargetSpec:
    try:
        return catalog()[name]
    except KeyError:
        known = ", ".join(sorted(catalog()))
        raise KeyError(f"unknown target {name!r}; known targets: {known}") from None


def runtime_class(runtime: str) -> type[Runtime]:
    """The backend class for a runtime key (imports its module)."""
    registered = _REGISTERED_RUNTIMES.get(runtime)
    if registered is not None:
        return registered
    module = importlib.import_module(RUNTIME_MODULES[runtime])
    return module.RUNTIME


def runtime_classes() -> dict[str, type[Runtime]]:
    """Every runtime class known here, by key (imports each backend's module, not its
    library)."""
    return {key: runtime_class(key) for key in [*RUNTIME_MODULES, *_REGISTERED_RUNTIMES]}


def runtime_available(runtime: str) -> bool:
    """Whether the runtime can run here; never raises."""
    try:
        return runtime_class(runtime).available()
    except Exception:
        return False


def reference_session(source: Artifact, workdir: Path, module: Any = None) -> Session:
    """An fp32 session computing a workload's reference predictions on this machine.

    ``module``: the workload's model as an eager ``torch.nn.Module`` (a ``torch-state`` source
    is run as it is, without export); otherwise the source is compiled in ``workdir`` by the
    runtime that declares itself the reference for its format (:attr:`Runtime.reference_for`),
    with as many threads as the machine has CPUs."""
    import os

    if module is not None:
        from targets.torch_runtime import module_session

        return module_session(module)
    runtimes = [cls for cls in runtime_classes().values() if source.format in cls.reference_for]
    if not runtimes:
        raise KeyError(f"no runtime computes the reference of a {source.format!r} model")
    options = RuntimeOptions(threads=os.cpu_count() or 1)
    return runtimes[0]().compile(source, options, workdir)


__all__ = [
    "CATALOG_PATH",
    "GPU_PRICES",
    "DeviceSession",
    "RuntimeOptions",
    "Session",
    "TargetSpec",
    "catalog",
    "get_target",
    "gpu_price_table",
    "reference_session",
    "register_target",
    "runtime_available",
    "runtime_class",
    "runtime_classes",
    "unregister_target",
]
