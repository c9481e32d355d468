"""The small interface every target runtime implements.

A *runtime* (ONNX Runtime, OpenVINO, torch…) compiles an :class:`~farm.artifact.Artifact` with
:class:`RuntimeOptions` into a :class:`Session`, and a session runs batches. A *target* is a
catalog entry (``catalog.toml``) that names a runtime plus the hardware it must run on and a price.
This module imports no heavy library: listing targets or validating a job must stay cheap.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from farm.artifact import Artifact


@dataclass(frozen=True)
class TargetSpec:
    """One entry of ``targets/catalog.toml``."""

    name: str
    runtime: str
    device: str
    arch: str
    resource: str
    precisions: tuple[str, ...]
    export: str
    price_per_hour_usd: float
    price_source: str
    price_date: str
    int8_transform: str | None = None
    #: Runtime options a job may search: knob -> accepted values (``[target.knobs]``).
    knobs: dict[str, list[Any]] = field(default_factory=dict)
    #: The machine the price is for (``c7i.large``) and its CPU model as ``/proc/cpuinfo`` names
    #: it: a trial on another CPU is charged the same price and says so
    #: (``farm/engine/pricing.py``).
    machine: str | None = None
    machine_cpu: str | None = None

    @property
    def float_precisions(self) -> tuple[str, ...]:
        return tuple(p for p in self.precisions if p != "int8")


@dataclass(frozen=True)
class RuntimeOptions:
    """How a runtime is asked to run an artifact.

    ``precision`` is the *float* execution precision requested from the runtime (fp32, bf16,
    fp16); an int8 artifact is still compiled with ``precision="fp32"`` for its float parts.
    ``extra`` carries runtime-specific knobs (OpenVINO performance hint and streams, ORT
    execution mode), each validated by the runtime that reads it.
    """

    precision: str = "fp32"
    threads: int = 1
    batch_size: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def __hash__(self) -> int:
        # ``extra`` is a dict (runtimes read it as one): hashed by its sorted items.
        return hash(
            (self.precision, self.threads, self.batch_size, repr(sorted(self.extra.items())))
        )


def as_output(value: Any) -> np.ndarray:
    """A runtime output as numpy: float outputs as float32, integer ones unchanged."""
    out = np.asarray(value)
    return out.astype(np.float32, copy=False) if out.dtype.kind == "f" else out


class Session(abc.ABC):
    """A compiled model, ready to run batches on its runtime."""

    #: The float precision the runtime reports it actually uses (read back, never assumed).
    actual_precision: str = "unknown"

    @abc.abstractmethod
    def run_all(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run one batch (N, C, H, W float32) and return every output of the model, in the
        model's output order (float outputs as float32, integer ones as they come: a detector's
        labels stay int64)."""

    def run(self, batch: np.ndarray) -> np.ndarray:
        """The first output only, as float32 (a classifier's logits). Runtimes override this
        when fetching one output is cheaper than fetching all of them."""
        return np.asarray(self.run_all(batch)[0], dtype=np.float32)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the runtime's resources (sessions, thread pools)."""

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Runtime(abc.ABC):
    """A runtime backend. Subclasses live in their own module and import their library lazily."""

    #: Key used by catalog entries (``runtime = "onnxruntime"``).
    name: str
    #: Artifact formats ``compile`` accepts.
    accepts: tuple[str, ...]

    @classmethod
    @abc.abstractmethod
    def available(cls) -> bool:
        """True when the runtime's library imports on this machine."""

    @classmethod
    def version(cls) -> str:
        return "unknown"

    @abc.abstractmethod
    def compile(self, artifact: Artifact, options: RuntimeOptions, workdir: Any) -> Session:
        """Compile ``artifact`` for ``options``; ``workdir`` is a scratch directory (a Path)."""
