"""TensorRT through torch-tensorrt's dynamo path (``runtime = "tensorrt"``), from a ``torch.export``
program. Install on GPU nodes with the ``cuda`` extra (``pip install -e '.[cuda]'``).

Precision follows the model's dtypes: for ``"fp16"`` the module and its inputs are cast with
``.half()`` before compiling. torch-tensorrt >= 2.13 ignores ``enabled_precisions`` with
``ir="dynamo"`` (explicit typing is the default), so it is not passed. For ``"fp32"`` TF32 is
disabled (``disable_tf32=True``) so that fp32 means IEEE fp32. ``actual_precision`` is read from
the dtypes of the compiled program: the weights it was built from and the dtype its engine
returns for a probe batch. int8 (through nvidia-modelopt) is not offered yet.

The engine is built for one static input shape, ``(batch_size, *rest)``, which is what the
measurement runs. ``TensorRTSession.run`` synchronises the device before returning, and
``device_memory_mib`` reports torch's peak allocation since compile (TensorRT's own workspace
allocations go through torch's allocator in the dynamo runtime; the CUDA context does not count).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farm.errors import RuntimeMissingError, TrialError, UsageError
from targets.base import Runtime, RuntimeOptions, Session
from targets.cuda_torch_runtime import (
    CudaTorchSession,
    check_options,
    cuda_unavailable_reason,
    load_program,
    module_precision,
    set_fp32_math,
)
from targets.torch_runtime import DTYPE_NAMES, program_input_shape

if TYPE_CHECKING:
    from farm.artifact import Artifact


def tensorrt_unavailable_reason() -> str | None:
    """Why TensorRT cannot run here, or None when it can."""
    for module in ("torch_tensorrt", "tensorrt"):
        if importlib.util.find_spec(module) is None:
            return f"{module} not installed (pip install -e '.[cuda]')"
    return cuda_unavailable_reason()


class TensorRTSession(CudaTorchSession):
    """Runs like a cuda-torch session (the compiled module is a torch module around the engine)."""

    label = "tensorrt"


class TensorRTRuntime(Runtime):
    name = "tensorrt"
    accepts = ("torch-export",)

    @classmethod
    def available(cls) -> bool:
        return tensorrt_unavailable_reason() is None

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return tensorrt_unavailable_reason()

    @classmethod
    def version(cls) -> str:
        if importlib.util.find_spec("torch_tensorrt") is None:
            return "unknown"
        import tensorrt
        import torch_tensorrt

        return f"torch-tensorrt {torch_tensorrt.__version__}, TensorRT {tensorrt.__version__}"

    def compile(self, artifact: Artifact, options: RuntimeOptions, workdir: Any) -> Session:
        check_options(self.name, self.accepts, artifact, options)
        reason = tensorrt_unavailable_reason()
        if reason is not None:
            raise RuntimeMissingError(f"the tensorrt target cannot run here: {reason}")
        import torch
        import torch_tensorrt

        program = load_program(artifact, Path(workdir), self.name)
        shape = program_input_shape(program)
        if not shape or any(d is None for d in shape[1:]):
            raise UsageError(f"tensorrt: the program's input needs a static image shape: {shape}")
        torch.set_num_threads(options.threads)
        fp32 = options.precision == "fp32"
        set_fp32_math(torch, allow_tf32=False)
        dtype = torch.float32 if fp32 else torch.float16
        torch.cuda.reset_peak_memory_stats()
        module = program.module().to("cuda").to(dtype)
        dims = [int(d) for d in shape[1:] if d is not None]  # C, H, W are static in exports
        example = torch.zeros((options.batch_size, *dims), dtype=dtype, device="cuda")
        try:
            compiled = torch_tensorrt.compile(
                module, ir="dynamo", inputs=[example], disable_tf32=fp32, use_explicit_typing=True
            )
            with torch.inference_mode():
                out_dtype = str(compiled(example).dtype)
            torch.cuda.synchronize()
        except Exception as exc:
            raise TrialError(f"torch-tensorrt could not build the engine: {exc}") from exc
        weights = module_precision(module)
        engine_out = DTYPE_NAMES.get(out_dtype.removeprefix("torch."), out_dtype)
        precision = weights if weights == engine_out else f"{weights} (engine output {engine_out})"
        return TensorRTSession(compiled, dtype, precision, (options.batch_size, *shape[1:]))


RUNTIME = TensorRTRuntime
