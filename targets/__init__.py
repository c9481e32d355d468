"""Hardware targets: the catalog (``catalog.toml``) and the runtime backends behind it.

Backends are imported lazily by name, so that ``farm --help`` or validating a job file never
imports torch, ONNX Runtime or OpenVINO.
"""

from __future__ import annotations

import importlib
import tomllib
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from targets.base import RuntimeOptions, Session, TargetSpec

if TYPE_CHECKING:
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


@cache
def _catalog_file() -> dict[str, Any]:
    return tomllib.loads(CATALOG_PATH.read_text())


@cache
def catalog() -> dict[str, TargetSpec]:
    """All targets of the catalog, by name."""
    return {
        name: TargetSpec(name=name, **{**entry, "precisions": tuple(entry["precisions"])})
        for name, entry in _catalog_file().items()
        if name != GPU_PRICES
    }


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
    module = importlib.import_module(RUNTIME_MODULES[runtime])
    return module.RUNTIME


def runtime_available(runtime: str) -> bool:
    """Whether the runtime's library imports here; never raises."""
    try:
        return runtime_class(runtime).available()
    except Exception:
        return False


__all__ = [
    "CATALOG_PATH",
    "GPU_PRICES",
    "RuntimeOptions",
    "Session",
    "TargetSpec",
    "catalog",
    "get_target",
    "gpu_price_table",
    "runtime_available",
    "runtime_class",
]
