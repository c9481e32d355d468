"""The small interface every target runtime implements.

A *runtime* (ONNX Runtime, OpenVINO, torch…) compiles an :class:`~farm.artifact.Artifact` with
:class:`RuntimeOptions` into a :class:`Session`, and a session runs batches. A *target* is a
catalog entry (``catalog.toml``) that names a runtime plus the hardware it must run on and a price.

A runtime *declares* its facts as class attributes instead of leaving callers to probe for them:
the modules it needs (:attr:`Runtime.requires`), the float precisions and the knobs it accepts
(:attr:`Runtime.precisions`, :attr:`Runtime.knobs`), the artifact formats it compiles and those
it computes the fp32 reference of, and whether its sessions run on a device
(:attr:`Runtime.is_device`: they are then :class:`DeviceSession`\\ s, with the GPU hooks the
measurement uses). :meth:`Runtime.compile` validates the options against those declarations once,
with one message format for every runtime, and then calls the runtime's own :meth:`_compile`.

This module imports no heavy library: listing targets or validating a job must stay cheap.
"""

from __future__ import annotations

import abc
import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from farm.errors import UsageError

if TYPE_CHECKING:
    from farm.artifact import Artifact


@dataclass(frozen=True)
class TargetSpec:
    """One entry of ``targets/catalog.toml`` (or one registered from Python with
    :func:`targets.register_target`): where a model runs, on what hardware, at what price."""

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

    def __hash__(self) -> int:
        return hash(self.name)

    @property
    def float_precisions(self) -> tuple[str, ...]:
        return tuple(p for p in self.precisions if p != "int8")


@dataclass(frozen=True)
class RuntimeOptions:
    """How a runtime is asked to run an artifact.

    ``precision`` is the *float* execution precision requested from the runtime (fp32, bf16,
    fp16); an int8 artifact is still compiled with ``precision="fp32"`` for its float parts.
    ``extra`` carries runtime-specific knobs (OpenVINO performance hint and streams, ORT
    execution mode), each declared by the runtime that reads it (:attr:`Runtime.knobs`).
    """

    precision: str = "fp32"
    threads: int = 1
    batch_size: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> RuntimeOptions:
        """The options a trial's knob values ask for: ``precision`` (int8 runs its float parts
        at fp32), ``threads``, ``batch_size`` and the ``runtime.<knob>`` extras. The search
        builds candidates with it and ``farm gate`` rebuilds a stored trial's options with it."""
        precision = str(params["precision"])
        return cls(
            precision="fp32" if precision == "int8" else precision,
            threads=int(params["threads"]),
            batch_size=int(params["batch_size"]),
            extra={k.split(".", 1)[1]: v for k, v in params.items() if k.startswith("runtime.")},
        )

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
    #: The thread count the runtime runs with, read back from it after compiling (None where
    #: the runtime cannot say).
    threads: int | None = None
    #: The model's input shape as the compiled session sees it; None for a dynamic dimension
    #: (empty where the runtime cannot say).
    input_shape: tuple[int | None, ...] = ()

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


class DeviceSession(Session):
    """A session on an accelerator (a CUDA GPU): what the measurement asks of it besides
    :class:`Session`. The measurement checks ``isinstance(session, DeviceSession)``; a runtime
    whose sessions are device sessions says so with :attr:`Runtime.is_device`."""

    @abc.abstractmethod
    def device_query(self, batch: np.ndarray) -> Callable[[], object]:
        """A query for ``io = "device"``: ``batch`` staged in device memory once; each call
        runs the model, synchronizes, and leaves the outputs on the device."""

    @abc.abstractmethod
    def start_device_timing(self) -> bool:
        """Start recording the device's own time of each call (CUDA events); False where the
        runtime has no way to (the measurement then stores wall time only)."""

    @abc.abstractmethod
    def stop_device_timing(self) -> list[float]:
        """Device time (ms) of each call since :meth:`start_device_timing`, in call order."""

    @property
    @abc.abstractmethod
    def device_memory_mib(self) -> float | None:
        """Peak device memory of the session (MiB), None where the runtime cannot say."""


class Runtime(abc.ABC):
    """A runtime backend. Subclasses live in their own module, import their library lazily, and
    declare their facts in the class attributes below."""

    #: Key used by catalog entries (``runtime = "onnxruntime"``).
    name: ClassVar[str]
    #: Artifact formats ``compile`` accepts.
    accepts: ClassVar[tuple[str, ...]]
    #: Float execution precisions ``RuntimeOptions.precision`` may ask for.
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)
    #: Runtime options (``RuntimeOptions.extra``) it reads: knob -> accepted values, or None
    #: when the runtime checks the value itself in :meth:`_compile` (any other knob is refused).
    knobs: ClassVar[Mapping[str, tuple[Any, ...] | None]] = {}
    #: Python modules that must be importable for the runtime to run here (checked with
    #: ``importlib.util.find_spec``, without importing them).
    requires: ClassVar[tuple[str, ...]] = ()
    #: Its sessions run on a device (a GPU) and are :class:`DeviceSession`\ s.
    is_device: ClassVar[bool] = False
    #: Artifact formats whose fp32 reference predictions (what every candidate's fidelity is
    #: measured against) this runtime computes for a job.
    reference_for: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def missing_module(cls) -> str | None:
        """The first module of :attr:`requires` that is not installed here, or None."""
        for module in cls.requires:
            if importlib.util.find_spec(module) is None:
                return module
        return None

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Why the runtime cannot run on this machine, or None when it can. Runtimes that need
        more than their modules (a GPU, a CUDA build) extend it; it may import the library."""
        missing = cls.missing_module()
        return None if missing is None else f"module `{missing}` is not installed"

    @classmethod
    def available(cls) -> bool:
        """True when the runtime can run on this machine."""
        return cls.unavailable_reason() is None

    @classmethod
    def version(cls) -> str:
        return "unknown"

    @classmethod
    def check_options(cls, artifact: Artifact, options: RuntimeOptions) -> None:
        """Refuse, with a :class:`UsageError` naming the runtime, what this runtime declares it
        does not take: the artifact's format, the precision, a thread count below one, an
        unknown knob or a value the knob does not accept."""
        if artifact.format not in cls.accepts:
            raise UsageError(
                f"{cls.name} compiles artifacts of format {list(cls.accepts)}, "
                f"got {artifact.format!r}"
            )
        if options.precision not in cls.precisions:
            raise UsageError(
                f"{cls.name}: precision must be one of {list(cls.precisions)}, "
                f"got {options.precision!r}"
            )
        if options.threads < 1:
            raise UsageError(f"{cls.name}: `threads >= 1` must hold, but got {options.threads}")
        unknown = sorted(set(options.extra) - set(cls.knobs))
        if unknown:
            known = list(cls.knobs)
            what = f"known: {known}" if known else "it takes none"
            raise UsageError(f"{cls.name}: unknown option(s) {unknown}; {what}")
        for knob, value in options.extra.items():
            accepted = cls.knobs[knob]
            if accepted is not None and not _one_of(value, accepted):
                wanted = (
                    "true or false"
                    if set(accepted) == {False, True}
                    else f"one of {list(accepted)}"
                )
                raise UsageError(f"{cls.name}: option `{knob}`: expected {wanted}, got {value!r}")

    def compile(self, artifact: Artifact, options: RuntimeOptions, workdir: Any) -> Session:
        """Compile ``artifact`` for ``options``; ``workdir`` is a scratch directory.

        Validates the options against the runtime's declarations (:meth:`check_options`), then
        compiles (:meth:`_compile`, which raises :class:`~farm.errors.RuntimeMissingError` when
        the runtime cannot run here and :class:`~farm.errors.TrialError` when the artifact
        does not compile)."""
        self.check_options(artifact, options)
        return self._compile(artifact, options, Path(workdir))

    @abc.abstractmethod
    def _compile(self, artifact: Artifact, options: RuntimeOptions, workdir: Path) -> Session:
        """The runtime's own compile, with options already validated."""


def _one_of(value: Any, accepted: tuple[Any, ...]) -> bool:
    """``value in accepted``, with types compared too (``1`` is not ``True``)."""
    return any(value == a and type(value) is type(a) for a in accepted)
