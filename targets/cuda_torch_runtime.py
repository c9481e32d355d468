"""PyTorch eager on an NVIDIA GPU (``runtime = "cuda-torch"``), from a ``torch.export`` program.

Options read from :class:`~targets.base.RuntimeOptions`: ``precision`` (``"fp32"`` or
``"fp16"``: the module *and* its inputs are cast with ``.half()``) and ``threads``
(``torch.set_num_threads``, for the host-side work).

Timing: CUDA kernels are asynchronous, so :meth:`CudaTorchSession.run` calls
``torch.cuda.synchronize()`` before it returns; a wall clock around ``run`` therefore covers the
host→device copy, the device work and the device→host copy of the logits (what a caller holding
numpy arrays waits for).

Precision: "fp32" means IEEE fp32. PyTorch lets cuDNN convolutions use TF32 on Ampere and newer
by default, which would silently measure a different model; the session turns TF32 off for fp32
and reads the settings back, reporting ``"tf32"`` if they did not stick.

Device memory: ``CudaTorchSession.device_memory_mib`` is ``torch.cuda.max_memory_allocated`` since
the session was compiled (weights, activations and workspaces torch allocated; not the CUDA
context itself).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from farm.errors import RuntimeMissingError, TrialError, UsageError
from targets.base import Runtime, RuntimeOptions, Session
from targets.torch_runtime import DTYPE_NAMES, program_input_shape

if TYPE_CHECKING:
    from farm.artifact import Artifact

PRECISIONS = ("fp32", "fp16")


def cuda_unavailable_reason() -> str | None:
    """Why eager torch cannot run on a CUDA GPU here, or None when it can."""
    if importlib.util.find_spec("torch") is None:
        return "torch not installed"
    import torch

    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU-only build (torch.version.cuda is None)"
    if not torch.cuda.is_available():
        return f"torch {torch.__version__} sees no CUDA GPU (torch.cuda.is_available() is False)"
    return None


def set_fp32_math(torch: Any, allow_tf32: bool) -> bool:
    """Allow or forbid TF32 for fp32 convolutions and matmuls; return whether TF32 is now on.

    Uses the ``fp32_precision`` settings of torch >= 2.9 when present, else ``allow_tf32``.
    """
    conv = getattr(torch.backends.cudnn, "conv", None)
    matmul = torch.backends.cuda.matmul
    if conv is not None and hasattr(conv, "fp32_precision"):
        conv.fp32_precision = "tf32" if allow_tf32 else "ieee"
        matmul.fp32_precision = "tf32" if allow_tf32 else "ieee"
        return "tf32" in (conv.fp32_precision, matmul.fp32_precision)
    torch.backends.cudnn.allow_tf32 = allow_tf32
    matmul.allow_tf32 = allow_tf32
    return bool(torch.backends.cudnn.allow_tf32 or matmul.allow_tf32)


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


def check_options(runtime: str, accepts: tuple[str, ...], artifact: Artifact, options: Any) -> None:
    if artifact.format not in accepts:
        raise UsageError(
            f"{runtime} compiles artifacts of format {list(accepts)}, got {artifact.format!r}"
        )
    if options.precision not in PRECISIONS:
        raise UsageError(
            f"{runtime}: precision must be one of {list(PRECISIONS)}, got {options.precision!r}"
        )
    if options.threads < 1:
        raise UsageError(f"{runtime}: `threads >= 1` must hold, but got {options.threads}")


class CudaTorchSession(Session):
    label = "cuda-torch"

    def __init__(
        self, module: Any, dtype: Any, actual_precision: str, input_shape: tuple[int | None, ...]
    ) -> None:
        import torch

        self._torch = torch
        self._module = module
        self._dtype = dtype
        self.actual_precision = actual_precision
        #: Input shape of the exported program; ``None`` for a dynamic (symbolic) dimension.
        self.input_shape = input_shape

    @property
    def threads(self) -> int:
        return int(self._torch.get_num_threads())

    @property
    def device_memory_mib(self) -> float:
        """Peak device memory torch allocated since compile (MiB)."""
        return self._torch.cuda.max_memory_allocated() / 2**20

    def run_all(self, batch: np.ndarray) -> list[np.ndarray]:
        from targets.torch_runtime import tensors_to_numpy

        if self._module is None:
            raise TrialError(f"{self.label} session used after close()")
        torch = self._torch
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        with torch.inference_mode():
            out = self._module(x.to("cuda").to(self._dtype))
            torch.cuda.synchronize()
            return tensors_to_numpy(out)

    def close(self) -> None:
        import gc

        self._module = None
        gc.collect()  # graph modules hold reference cycles: free their device memory now
        self._torch.cuda.empty_cache()


class CudaTorchRuntime(Runtime):
    name = "cuda-torch"
    accepts = ("torch-export",)

    @classmethod
    def available(cls) -> bool:
        return cuda_unavailable_reason() is None

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return cuda_unavailable_reason()

    @classmethod
    def version(cls) -> str:
        if importlib.util.find_spec("torch") is None:
            return "unknown"
        import torch

        return f"{torch.__version__} (CUDA {torch.version.cuda})"

    def compile(self, artifact: Artifact, options: RuntimeOptions, workdir: Any) -> Session:
        check_options(self.name, self.accepts, artifact, options)
        reason = cuda_unavailable_reason()
        if reason is not None:
            raise RuntimeMissingError(f"the cuda-torch target cannot run here: {reason}")
        import torch

        program = load_program(artifact, Path(workdir), self.name)
        torch.set_num_threads(options.threads)
        tf32 = set_fp32_math(torch, allow_tf32=False)
        dtype = torch.float16 if options.precision == "fp16" else torch.float32
        torch.cuda.reset_peak_memory_stats()
        try:
            module = program.module().to("cuda").to(dtype)
        except Exception as exc:
            raise TrialError(f"cuda-torch could not move the model to the GPU: {exc}") from exc
        precision = module_precision(module)
        if precision == "fp32" and tf32:
            precision = "tf32"
        return CudaTorchSession(module, dtype, precision, program_input_shape(program))


RUNTIME = CudaTorchRuntime
