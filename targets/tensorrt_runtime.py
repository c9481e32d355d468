"""TensorRT through torch-tensorrt's dynamo path (``runtime = "tensorrt"``), from a ``torch.export``
program. Install on GPU nodes with the ``cuda`` extra (docs/fleet.md, "GPU nodes").

Precision follows the model's dtypes: for ``"fp16"`` the module and its inputs are cast with
``.half()`` before compiling. torch-tensorrt >= 2.13 ignores ``enabled_precisions`` with
``ir="dynamo"`` (explicit typing is the default), so it is not passed. For ``"fp32"`` TF32 is
disabled (``disable_tf32=True``) so that fp32 means IEEE fp32. ``actual_precision`` is read from
the dtypes of the compiled program: the weights it was built from and the dtype its engine
returns for a probe batch.

int8: a program quantized with nvidia-modelopt (its Q/DQ nodes in the graph) is compiled as it
is, and reported as ``int8+<float>``. Quantizing is a build step, not this runtime's job: it
needs the workload's calibration data, which only transforms (``optimizers/``) receive.

Engines are cached on the node, per GPU model + TensorRT version + torch-tensorrt version +
input shape + precision + artifact (:func:`engine_cache_dir`, under
``$FARM_NODE_CACHE/tensorrt``), through torch-tensorrt's ``cache_built_engines`` /
``reuse_cached_engines``: an engine built for an H200 is never reused on an L4, and a second trial
of the same candidate (a resumed job, ``farm gate``'s confirmation) skips the build. ``compile_s``
says how long the build, or the reuse, took.

The engine is built for one static input shape, ``(batch_size, *rest)``, which is what the
measurement runs. The session is a cuda-torch session around the compiled module
(:class:`~targets.cuda_torch_runtime.CudaTorchSession`): the same ``io = "host"`` / ``"device"``
queries, CUDA-event device time, warm-up, and ``device_memory_mib`` (torch's peak allocation
since compile; TensorRT's workspaces go through torch's allocator in the dynamo runtime).
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farm.errors import RuntimeMissingError, TrialError, UsageError
from targets._cuda import node_cache_root, torch_cuda_problem
from targets.base import DeviceSession, Runtime, RuntimeOptions
from targets.cuda_torch_runtime import (
    CudaTorchSession,
    load_program,
    module_precision,
    set_fp32_math,
)
from targets.torch_runtime import DTYPE_NAMES, program_input_shape

if TYPE_CHECKING:
    from farm.artifact import Artifact

PRECISIONS = ("fp32", "fp16")
#: Words in the name of a graph node's operator that mark a quantized program (modelopt's
#: ``tensorrt.quantize_op``, ``quantized_decomposed.*``, ``aten.fake_quantize_*``).
_QUANTIZE_OP = re.compile(r"quantize", re.IGNORECASE)


def tensorrt_unavailable_reason() -> str | None:
    """Why TensorRT cannot run here, or None when it can."""
    for module in ("torch_tensorrt", "tensorrt"):
        if importlib.util.find_spec(module) is None:
            return f"{module} not installed (pip install -e '.[cuda]'; see docs/fleet.md)"
    return torch_cuda_problem()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-") or "unknown"


def engine_cache_dir(
    root: Path,
    gpu_model: str,
    versions: dict[str, str],
    input_shape: tuple[int, ...],
    precision: str,
    artifact_hash: str,
) -> Path:
    """Where the engines of one (GPU model, library versions, input shape, precision, artifact)
    live: a readable name plus a hash of all of it, so that no two of them share a directory."""
    shape = "x".join(str(d) for d in input_shape)
    libs = "-".join(f"{k}{v}" for k, v in sorted(versions.items()))
    parts = [gpu_model, libs, shape, precision, artifact_hash]
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]
    return root / "tensorrt" / _slug(f"{gpu_model}-{libs}-{shape}-{precision}-{digest}")


def program_is_quantized(program: Any) -> bool:
    """Whether an ExportedProgram holds quantize/dequantize nodes (a modelopt int8 model)."""
    return any(
        node.op == "call_function" and _QUANTIZE_OP.search(str(node.target))
        for node in program.graph.nodes
    )


class TensorRTSession(CudaTorchSession):
    """A cuda-torch session around the compiled module (a torch module calling the engines)."""

    label = "tensorrt"


class TensorRTRuntime(Runtime):
    name = "tensorrt"
    accepts = ("torch-export",)
    requires = ("torch_tensorrt", "tensorrt")
    precisions = PRECISIONS
    is_device = True

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

    def _compile(self, artifact: Artifact, options: RuntimeOptions, workdir: Path) -> DeviceSession:
        reason = tensorrt_unavailable_reason()
        if reason is not None:
            raise RuntimeMissingError(f"the tensorrt target cannot run here: {reason}")
        import tensorrt
        import torch
        import torch_tensorrt

        program = load_program(artifact, workdir, self.name)
        shape = program_input_shape(program)
        if not shape or any(d is None for d in shape[1:]):
            raise UsageError(f"tensorrt: the program's input needs a static image shape: {shape}")
        torch.set_num_threads(options.threads)
        fp32 = options.precision == "fp32"
        set_fp32_math(torch, allow_tf32=False)
        dtype = torch.float32 if fp32 else torch.float16
        torch.cuda.reset_peak_memory_stats()
        module = program.module().to("cuda").to(dtype)
        module.requires_grad_(False)
        input_shape = (options.batch_size, *(int(d) for d in shape[1:] if d is not None))
        versions = {"trt": tensorrt.__version__, "torch-trt": torch_tensorrt.__version__}
        cache = engine_cache_dir(
            node_cache_root(),
            torch.cuda.get_device_name(),
            versions,
            input_shape,
            options.precision,
            artifact.content_hash,
        )
        cache.mkdir(parents=True, exist_ok=True)
        example = torch.zeros(input_shape, dtype=dtype, device="cuda")
        try:
            compiled = torch_tensorrt.compile(
                module,
                ir="dynamo",
                inputs=[example],
                disable_tf32=fp32,
                use_explicit_typing=True,
                cache_built_engines=True,
                reuse_cached_engines=True,
                engine_cache_dir=str(cache),
            )
            out_dtype = str(compiled(example).dtype)
            torch.cuda.synchronize()
        except Exception as exc:
            raise TrialError(f"torch-tensorrt could not build the engine: {exc}") from exc
        weights = module_precision(module)
        engine_out = DTYPE_NAMES.get(out_dtype.removeprefix("torch."), out_dtype)
        precision = weights if weights == engine_out else f"{weights} (engine output {engine_out})"
        if program_is_quantized(program):
            precision = f"int8+{precision}"
        session = TensorRTSession(compiled, dtype, precision, input_shape, device="cuda")
        session.warm_up(options.batch_size, capture=False)
        return session


RUNTIME = TensorRTRuntime
