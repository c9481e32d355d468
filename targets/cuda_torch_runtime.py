"""PyTorch on an NVIDIA GPU (``runtime = "cuda-torch"``), from a ``torch.export`` program, with
the settings that decide its speed on a GPU as searchable knobs.

Options read from :class:`~targets.base.RuntimeOptions`:
- ``precision``: ``fp32``, ``fp16`` or ``bf16``: the module's parameters and its inputs are cast
  to that dtype; outputs come back as float32.
- ``threads``: ``torch.set_num_threads``, for the host-side work.
- ``extra``: the catalog's ``[cuda-torch.knobs]``, searched as ``runtime.<knob>``
  (:class:`GpuKnobs`):
  - ``channels_last`` (bool): NHWC weights and inputs, cuDNN's fast layout for convolutions on
    tensor cores.
  - ``cuda_graphs`` (bool): capture one forward at the session's batch size as a CUDA graph and
    replay it: one launch instead of one per kernel, which is most of the time at batch 1.
  - ``compile``: ``off`` (eager) or a ``torch.compile`` mode: ``default``,
    ``max-autotune-no-cudagraphs``, ``reduce-overhead``, ``max-autotune``. The last two capture
    CUDA graphs themselves (inductor's CUDA graph trees), so with them ``cuda_graphs`` changes
    nothing; :attr:`CudaTorchSession.graphs` says who captured (``farm``, ``inductor`` or None).
  - ``fp32_math``: ``ieee`` (default) or ``tf32``: whether fp32 convolutions and matmuls may run
    on TF32 tensor cores. Set for every precision and read back: ``actual_precision`` is
    ``tf32`` for an fp32 model whenever TF32 is on, so "fp32" always means IEEE fp32.

``compile()`` does all the one-time work, so that ``compile_s`` holds it and no latency sample
does: loading, moving to the GPU, ``torch.compile`` (lazy: it compiles on the first call) and
its autotuning, cuDNN's algorithm search (``cudnn.benchmark``: a session has one input shape),
CUDA graph capture, then :data:`WARMUP_CALLS` calls at the session's batch size, after which
compiled graphs are captured (inductor's CUDA graph trees run a function once eagerly, record
it on the second call and replay it from the third). A batch that does not fit in device memory
fails there, with how much memory the GPU has.

What a query times is the measurement contract's ``io``:
- ``host``: :meth:`CudaTorchSession.run`: numpy in, numpy out. The input goes through a pinned
  buffer to the GPU and the outputs come back; it returns when the copy back is done.
- ``device``: :meth:`CudaTorchSession.device_query`: the input is staged in device memory once
  (into the CUDA graph's own input buffer when there is one); each call runs the model and
  synchronizes; the outputs stay on the GPU.
Between :meth:`~CudaTorchSession.start_device_timing` and
:meth:`~CudaTorchSession.stop_device_timing`, each forward is bracketed by CUDA events on the
current stream: the time the GPU spent on the model, without host-side work or copies; the
worker stores it beside the wall-clock samples.

Device memory: ``device_memory_mib`` is ``torch.cuda.max_memory_allocated`` since the session was
compiled (weights, activations, workspaces, graph pools; not the CUDA context).

The same code runs on the CPU (:func:`build_session` with ``device="cpu"``) without the CUDA-only
parts (graphs, events, pinned memory): that is how it is tested on machines without a GPU, and
what ``scripts/gpu_check.py --dry-run`` exercises.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from farm.errors import RuntimeMissingError, TrialError, UsageError
from targets._cuda import torch_cuda_problem
from targets.base import DeviceSession, Runtime, RuntimeOptions
from targets.torch_runtime import DTYPE_NAMES, program_input_shape, tensors_to_numpy

if TYPE_CHECKING:
    from farm.artifact import Artifact

PRECISIONS = ("fp32", "fp16", "bf16")
TORCH_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
COMPILE_MODES = ("off", "default", "max-autotune-no-cudagraphs", "reduce-overhead", "max-autotune")
#: ``torch.compile`` modes that capture CUDA graphs themselves (CUDA graph trees).
INDUCTOR_GRAPH_MODES = frozenset({"reduce-overhead", "max-autotune"})
FP32_MATH = ("ieee", "tf32")
#: Calls made at the session's batch size before compile() returns: enough for CUDA graph trees
#: to run once eagerly, record, and replay.
WARMUP_CALLS = 3


def set_fp32_math(torch: Any, allow_tf32: bool) -> bool:
    """Allow or forbid TF32 for fp32 convolutions and matmuls; return whether TF32 is now on
    (read back, not assumed).

    Through the ``allow_tf32`` flags: on torch >= 2.9 setting them also sets the newer
    ``fp32_precision`` settings consistently, whereas setting only the newer ones (cuDNN conv
    but not cuDNN RNN, say) leaves a combination torch refuses to read back, and torch.export
    and inductor do read it.
    """
    torch.backends.cudnn.allow_tf32 = allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    return bool(torch.backends.cudnn.allow_tf32 or torch.backends.cuda.matmul.allow_tf32)


def module_precision(module: Any) -> str:
    """The float dtypes of a module's parameters and buffers, as ``fp16``/``fp32``/``fp16+fp32``."""
    tensors = [*module.parameters(), *module.buffers()]
    dtypes = {str(t.dtype).removeprefix("torch.") for t in tensors if t.is_floating_point()}
    return "+".join(sorted(DTYPE_NAMES.get(d, d) for d in dtypes)) or "fp32"


def load_program(artifact: Artifact, workdir: Path, runtime: str) -> Any:
    """Load a ``torch-export`` artifact; a corrupt file is the trial's failure."""
    import torch

    path = artifact.write_to(workdir)
    try:
        return torch.export.load(str(path))
    except Exception as exc:
        raise TrialError(f"{runtime} could not load {artifact.main_file}: {exc}") from exc


@dataclass(frozen=True)
class GpuKnobs:
    """The runtime knobs of ``cuda-torch`` (``RuntimeOptions.extra``), validated."""

    channels_last: bool = False
    cuda_graphs: bool = False
    compile: str = "off"
    fp32_math: str = "ieee"

    @classmethod
    def from_extra(cls, runtime: str, extra: Mapping[str, Any]) -> GpuKnobs:
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(extra) - set(known))
        if unknown:
            raise UsageError(f"{runtime}: unknown option(s) {unknown}; known: {known}")
        for name in ("channels_last", "cuda_graphs"):
            if name in extra and not isinstance(extra[name], bool):
                raise UsageError(
                    f"{runtime}: option `{name}`: expected true or false, got {extra[name]!r}"
                )
        for name, choices in (("compile", COMPILE_MODES), ("fp32_math", FP32_MATH)):
            if name in extra and extra[name] not in choices:
                raise UsageError(
                    f"{runtime}: option `{name}`: expected one of {list(choices)}, "
                    f"got {extra[name]!r}"
                )
        return cls(**extra)

    @property
    def graphs(self) -> str | None:
        """Who captures CUDA graphs: ``inductor`` (its compile modes that do), ``farm``
        (``cuda_graphs``) or None."""
        if self.compile in INDUCTOR_GRAPH_MODES:
            return "inductor"
        return "farm" if self.cuda_graphs else None


class DeviceTimer:
    """CUDA events recorded around each forward while timing is on, read once at the end.

    ``start()`` creates (and records once, which makes CUDA create them) a pool of events large
    enough for a few seconds of batch-1 queries, so that a timed call only records two events;
    a longer measurement grows the pool in steps. ``stop()`` synchronizes once and returns one
    duration (ms) per timed call."""

    POOL_STEP = 16_384

    def __init__(self, torch: Any) -> None:
        self._torch = torch
        self._events: list[Any] = []
        self._used = 0
        self.on = False

    def _grow(self) -> None:
        fresh = [self._torch.cuda.Event(enable_timing=True) for _ in range(self.POOL_STEP)]
        for event in fresh:
            event.record()
        self._events.extend(fresh)

    def start(self) -> None:
        if not self._events:
            self._grow()
            self._torch.cuda.synchronize()
        self._used = 0
        self.on = True

    def mark(self) -> None:
        if self._used == len(self._events):
            self._grow()
        self._events[self._used].record()
        self._used += 1

    def stop(self) -> list[float]:
        self.on = False
        self._torch.cuda.synchronize()
        ev = self._events[: self._used - self._used % 2]
        return [float(ev[i].elapsed_time(ev[i + 1])) for i in range(0, len(ev), 2)]


class CudaGraphForward:
    """A forward captured as a CUDA graph for one input shape. A call with another input copies
    it into the graph's static input first; a call with another shape runs the model eagerly."""

    def __init__(self, torch: Any, forward: Callable[[Any], Any], example: Any) -> None:
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):  # lazy initialisation and autotuning, off the capture
            for _ in range(WARMUP_CALLS):
                forward(example)
        torch.cuda.current_stream().wait_stream(stream)
        self.static_input = example.clone()
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.static_output = forward(self.static_input)
        self._forward = forward

    def stage(self, x: Any) -> Any:
        """``x`` copied into the graph's input buffer (what a call with it would copy)."""
        if x.shape != self.static_input.shape:
            return x
        self.static_input.copy_(x)
        return self.static_input

    def __call__(self, x: Any) -> Any:
        if x is not self.static_input:
            if x.shape != self.static_input.shape:
                return self._forward(x)
            self.static_input.copy_(x)
        self.graph.replay()
        return self.static_output


class CudaTorchSession(DeviceSession):
    """A torch forward on one device (``cuda``; ``cpu`` for tests), fed from numpy or from a
    staged device tensor."""

    label = "cuda-torch"

    def __init__(
        self,
        forward: Callable[[Any], Any],
        dtype: Any,
        actual_precision: str,
        input_shape: tuple[int | None, ...],
        *,
        device: str = "cuda",
        channels_last: bool = False,
        graphs: str | None = None,
        compiled: bool = False,
    ) -> None:
        import torch

        self._torch = torch
        self._forward: Callable[[Any], Any] | None = forward
        self._dtype = dtype
        self._device = device
        self._memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.actual_precision = actual_precision
        #: Input shape of the program; ``None`` for a dynamic (symbolic) dimension.
        self.input_shape = input_shape
        #: Who captured CUDA graphs: ``farm``, ``inductor`` or None.
        self.graphs = graphs
        self._compiled = compiled
        self._pinned: Any = None
        self._timer = DeviceTimer(torch) if device == "cuda" else None
        #: ``torch.get_num_threads()`` read back (process-wide: the one the runtime uses).
        self.threads = int(torch.get_num_threads())

    @property
    def device_memory_mib(self) -> float | None:
        """Peak device memory torch allocated since compile (MiB); None on the CPU."""
        if self._device != "cuda":
            return None
        return float(self._torch.cuda.max_memory_allocated()) / 2**20

    def _stage(self, batch: np.ndarray) -> Any:
        """A numpy batch as the model's input on its device: dtype and memory layout applied."""
        torch = self._torch
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        if self._device == "cuda":
            if self._pinned is None or self._pinned.shape != x.shape:
                self._pinned = torch.empty(x.shape, dtype=torch.float32, pin_memory=True)
            self._pinned.copy_(x)
            x = self._pinned.to(self._device, non_blocking=True)
        x = x.to(self._dtype)
        return x.contiguous(memory_format=self._memory_format) if x.dim() == 4 else x

    def _call(self, x: Any) -> Any:
        forward = self._forward
        if forward is None:
            raise TrialError(f"{self.label} session used after close()")
        if self.graphs == "inductor":
            # CUDA graph trees reuse their output buffers: a new step, earlier outputs dropped.
            self._torch.compiler.cudagraph_mark_step_begin()
        timer = self._timer
        if timer is not None and timer.on:
            timer.mark()
            out = forward(x)
            timer.mark()
            return out
        return forward(x)

    def _synchronize(self) -> None:
        if self._device == "cuda":
            self._torch.cuda.synchronize()

    def run_all(self, batch: np.ndarray) -> list[np.ndarray]:
        if self._forward is None:
            raise TrialError(f"{self.label} session used after close()")
        return tensors_to_numpy(self._call(self._stage(batch)))  # the copy back synchronizes

    def device_query(self, batch: np.ndarray) -> Callable[[], object]:
        """A query for ``io = "device"``: ``batch`` staged in device memory once (into the CUDA
        graph's input buffer when there is one); each call runs the model and synchronizes, and
        leaves the outputs on the device."""
        x = self._stage(batch)
        if isinstance(self._forward, CudaGraphForward):
            x = self._forward.stage(x)
        self._synchronize()
        call, synchronize = self._call, self._synchronize

        def query() -> object:
            out = call(x)
            synchronize()
            return out

        return query

    def start_device_timing(self) -> bool:
        """Start recording CUDA-event time per forward; False where there are no events."""
        if self._timer is None:
            return False
        self._timer.start()
        return True

    def stop_device_timing(self) -> list[float]:
        """Device time (ms) of each forward since :meth:`start_device_timing`, in call order."""
        return self._timer.stop() if self._timer is not None else []

    def warm_up(self, batch_size: int, capture: bool) -> None:
        """The one-time work at the session's batch size: CUDA graph capture when asked, then
        :data:`WARMUP_CALLS` calls (compiles, autotunes, lets CUDA graph trees record)."""
        torch = self._torch
        dims = [d for d in self.input_shape[1:]]
        if not dims or any(d is None for d in dims):
            raise UsageError(f"{self.label}: the model's input needs a static image shape: {dims}")
        generator = torch.Generator().manual_seed(0)
        example = torch.randn((batch_size, *dims), generator=generator).numpy()
        x = self._stage(example)
        if capture:
            assert self._forward is not None
            self._forward = CudaGraphForward(torch, self._forward, x)
        for _ in range(WARMUP_CALLS):
            self._call(x)
        self._synchronize()

    def close(self) -> None:
        import gc

        self._forward = None
        self._pinned = None
        if self._compiled:
            self._torch._dynamo.reset()  # compiled code and CUDA graph trees' memory pools
        gc.collect()  # graph modules hold reference cycles: free their device memory now
        if self._device == "cuda":
            self._torch.cuda.empty_cache()


def does_not_fit(torch: Any, label: str, batch_size: int, exc: BaseException) -> str:
    """A batch too large for the GPU, said with the GPU's memory."""
    free, total = torch.cuda.mem_get_info()
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return (
        f"{label}: batch {batch_size} does not fit in the memory of the "
        f"{torch.cuda.get_device_name()} ({total / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free "
        f"after the attempt): search smaller batch sizes for this model on this GPU ({first})"
    )


def build_session(
    program: Any, options: RuntimeOptions, device: str = "cuda", label: str = "cuda-torch"
) -> CudaTorchSession:
    """Compile an ExportedProgram into a warmed-up session on ``device`` (see the module's doc).

    ``device="cpu"`` runs the same path without CUDA graphs, events and pinned memory."""
    import torch

    knobs = GpuKnobs.from_extra(label, options.extra)
    if knobs.cuda_graphs and device != "cuda":
        raise UsageError(f"{label}: option `cuda_graphs`: CUDA graphs need a GPU, not {device}")
    torch.set_num_threads(options.threads)
    tf32 = set_fp32_math(torch, allow_tf32=knobs.fp32_math == "tf32")
    dtype = getattr(torch, TORCH_DTYPES[options.precision])
    if device == "cuda":
        torch.backends.cudnn.benchmark = True  # one input shape per session: pick the fastest
        torch.cuda.reset_peak_memory_stats()
    try:
        module = program.module().to(device).to(dtype)
    except Exception as exc:
        raise TrialError(f"{label} could not move the model to {device}: {exc}") from exc
    module.requires_grad_(False)  # no autograd graph, and one grad mode for torch.compile
    if knobs.channels_last:
        module = module.to(memory_format=torch.channels_last)
    precision = module_precision(module)
    if precision == "fp32" and tf32:
        precision = "tf32"
    forward: Callable[[Any], Any] = module
    if knobs.compile != "off":
        mode = None if knobs.compile == "default" else knobs.compile
        forward = torch.compile(module, mode=mode, dynamic=False)
    session = CudaTorchSession(
        forward,
        dtype,
        precision,
        program_input_shape(program),
        device=device,
        channels_last=knobs.channels_last,
        graphs=knobs.graphs if device == "cuda" else None,
        compiled=knobs.compile != "off",
    )
    session.label = label
    oom = getattr(torch.cuda, "OutOfMemoryError", MemoryError)
    try:
        session.warm_up(options.batch_size, capture=session.graphs == "farm")
    except oom as exc:
        session.close()
        raise TrialError(does_not_fit(torch, label, options.batch_size, exc)) from None
    except (UsageError, TrialError):
        session.close()
        raise
    except Exception as exc:
        session.close()
        step = "torch.compile" if knobs.compile != "off" else "the first calls"
        what = f" (compile={knobs.compile})" if knobs.compile != "off" else ""
        raise TrialError(f"{label}: {step} failed{what}: {exc}") from exc
    return session


class CudaTorchRuntime(Runtime):
    name = "cuda-torch"
    accepts = ("torch-export",)
    requires = ("torch",)
    precisions = PRECISIONS
    knobs = MappingProxyType(
        {
            "channels_last": (False, True),
            "cuda_graphs": (False, True),
            "compile": COMPILE_MODES,
            "fp32_math": FP32_MATH,
        }
    )
    is_device = True

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return torch_cuda_problem()

    @classmethod
    def version(cls) -> str:
        if importlib.util.find_spec("torch") is None:
            return "unknown"
        import torch

        return f"{torch.__version__} (CUDA {torch.version.cuda})"

    def _compile(self, artifact: Artifact, options: RuntimeOptions, workdir: Path) -> DeviceSession:
        reason = torch_cuda_problem()
        if reason is not None:
            raise RuntimeMissingError(f"the cuda-torch target cannot run here: {reason}")
        program = load_program(artifact, workdir, self.name)
        return build_session(program, options, "cuda", self.name)


RUNTIME = CudaTorchRuntime
