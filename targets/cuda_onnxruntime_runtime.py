"""ONNX Runtime on an NVIDIA GPU (``runtime = "onnxruntime-cuda"``): the CUDA execution provider,
or the TensorRT execution provider in front of it.

Needs the ``onnxruntime-gpu`` wheel (the ``cuda`` extra; uninstall the CPU ``onnxruntime`` wheel
first, the two share the ``onnxruntime`` module); the TensorRT provider also needs TensorRT's
libraries (docs/fleet.md, "GPU nodes"). Options read from :class:`~targets.base.RuntimeOptions`:
- ``precision``: ``"fp32"`` or ``"fp16"``. With the CUDA provider, fp16 converts the ONNX
  model's float tensors to float16 (onnxconverter-common's converter when installed, else the
  copy that ships in ``onnxruntime.transformers``), keeping the graph's inputs and outputs float32
  and the operators on the converter's block list in fp32. With the TensorRT provider the graph
  stays fp32 and ``trt_fp16_enable`` lets TensorRT pick fp16 per layer (``actual_precision``
  ``fp16+fp32``).
- ``threads``: ``intra_op_num_threads`` (for nodes that fall back to the CPU).
- ``extra["provider"]``: ``"cuda"`` (default) or ``"tensorrt"`` (the catalog's
  ``[cuda-onnxruntime.knobs]``). TensorRT engines are cached on the node per GPU model +
  TensorRT and ONNX Runtime versions + input shape + precision + model
  (``trt_engine_cache_path``, see :func:`targets.tensorrt_runtime.engine_cache_dir`), with the
  input shape fixed to ``(batch_size, C, H, W)`` by an optimization profile.

"fp32" means IEEE fp32: the provider option ``use_tf32`` is turned off and read back from the
session, and ``actual_precision`` says ``"tf32"`` if it stayed on. For fp16, ``actual_precision``
is read from the converted graph: ``"fp16"`` when every float initializer is float16,
``"fp16+fp32"`` when the converter kept some in fp32. If ONNX Runtime silently falls back to the
CPU (the provider failed to load), compile refuses instead of measuring the CPU under a CUDA name.

``session.run`` copies the outputs back to host memory, so it returns only when the device work is
done: the harness's wall clock covers it (``io = "host"``). For ``io = "device"``,
:meth:`CudaOnnxRuntimeSession.device_query` binds an input staged in GPU memory once and leaves
the outputs there (IOBinding), synchronizing after each run. ONNX Runtime runs on its own CUDA
stream and exposes no events, so this target records wall time only (no device time).
``device_memory_mib`` is this process's GPU memory as ``nvidia-smi`` reports it (None where the
driver hides per-process figures, e.g. in containers).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from farm.errors import RuntimeMissingError, TrialError, UsageError
from targets._cuda import gpu_name, has_cuda_gpu, node_cache_root, process_gpu_memory_mib
from targets.base import DeviceSession, Runtime, RuntimeOptions
from targets.onnxruntime_runtime import OnnxRuntimeSession, ort_version, session_options

if TYPE_CHECKING:
    from farm.artifact import Artifact

PRECISIONS = ("fp32", "fp16")
_PROVIDER = "CUDAExecutionProvider"
_TENSORRT = "TensorrtExecutionProvider"
#: ``extra["provider"]`` -> the execution provider it puts first.
PROVIDERS = {"cuda": _PROVIDER, "tensorrt": _TENSORRT}
#: Distribution names TensorRT's libraries come as (their version keys the engine cache).
_TENSORRT_DISTRIBUTIONS = ("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt-libs")


def cuda_ep_unavailable_reason() -> str | None:
    """Why the CUDA execution provider cannot run here, or None when it can."""
    if importlib.util.find_spec("onnxruntime") is None:
        return "onnxruntime not installed"
    import onnxruntime as ort

    if _PROVIDER not in ort.get_available_providers():
        return (
            f"onnxruntime {ort.__version__} has no {_PROVIDER} here (a CPU build; "
            "install onnxruntime-gpu: pip install -e '.[cuda]')"
        )
    if not has_cuda_gpu():
        return "no CUDA GPU visible (nvidia-smi or /dev/nvidia0 missing)"
    return None


def to_fp16(model: Any) -> Any:
    """An fp16 copy of an ONNX ModelProto with float32 inputs and outputs."""
    try:
        from onnxconverter_common import float16 as converter
    except ImportError:
        try:
            from onnxruntime.transformers import float16 as converter
        except ImportError:
            raise RuntimeMissingError(
                "fp16 on onnxruntime-cuda needs an fp16 converter: pip install onnxconverter-common"
            ) from None
    return converter.convert_float_to_float16(model, keep_io_types=True)


def graph_precision(model: Any) -> str:
    """``fp16``, ``fp32`` or ``fp16+fp32`` from the dtypes of the graph's float initializers."""
    from onnx import TensorProto

    names = {TensorProto.FLOAT: "fp32", TensorProto.FLOAT16: "fp16", TensorProto.BFLOAT16: "bf16"}
    found = {names[t.data_type] for t in model.graph.initializer if t.data_type in names}
    return "+".join(sorted(found)) or "fp32"


def tensorrt_library_version() -> str:
    """The installed TensorRT libraries' version (package metadata), or ``"unknown"``."""
    from importlib import metadata

    for name in _TENSORRT_DISTRIBUTIONS:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "unknown"


def input_dims(model: Any) -> tuple[str, tuple[int | None, ...]]:
    """The first graph input's name and shape (None for a symbolic dimension)."""
    first = model.graph.input[0]
    dims = first.type.tensor_type.shape.dim
    return first.name, tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)


def tensorrt_provider_options(
    model: Any, batch_size: int, fp16: bool, cache_dir: Path
) -> dict[str, str]:
    """TensorRT provider options: fp16 allowed or not, engines and timing cache in
    ``cache_dir``, and one optimization profile fixed at ``(batch_size, C, H, W)``."""
    name, shape = input_dims(model)
    if len(shape) < 2 or any(d is None for d in shape[1:]):
        raise UsageError(
            f"onnxruntime-cuda (tensorrt): the model's input needs a static image shape: {shape}"
        )
    profile = f"{name}:" + "x".join(str(d) for d in (batch_size, *shape[1:]))
    return {
        "device_id": "0",
        "trt_fp16_enable": "True" if fp16 else "False",
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(cache_dir),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(cache_dir),
        "trt_profile_min_shapes": profile,
        "trt_profile_opt_shapes": profile,
        "trt_profile_max_shapes": profile,
    }


class CudaOnnxRuntimeSession(OnnxRuntimeSession, DeviceSession):
    """The CPU target's session plus device memory and device-resident queries; ``threads``
    serve nodes on the CPU. ONNX Runtime exposes no CUDA events: no device time."""

    runtime_name = "onnxruntime-cuda"

    @property
    def device_memory_mib(self) -> float | None:
        return process_gpu_memory_mib()

    def start_device_timing(self) -> bool:
        return False

    def stop_device_timing(self) -> list[float]:
        return []

    def device_query(self, batch: np.ndarray) -> Callable[[], object]:
        """A query for ``io = "device"``: the input copied to the GPU once and bound there, the
        outputs bound to the GPU; each call runs and synchronizes (IOBinding)."""
        import onnxruntime as ort

        session = self._session
        if session is None:
            raise TrialError(f"{self.runtime_name} session used after close()")
        x = np.ascontiguousarray(batch, dtype=np.float32)
        binding = session.io_binding()
        binding.bind_ortvalue_input(self._input, ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0))
        for name in self._all_outputs:
            binding.bind_output(name, "cuda")

        def query() -> object:
            session.run_with_iobinding(binding)
            binding.synchronize_outputs()
            return None

        return query


class CudaOnnxRuntime(Runtime):
    name = "onnxruntime-cuda"
    accepts = ("onnx",)
    requires = ("onnxruntime",)
    precisions = PRECISIONS
    knobs = MappingProxyType({"provider": tuple(PROVIDERS)})
    is_device = True

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return cuda_ep_unavailable_reason()

    @classmethod
    def version(cls) -> str:
        return ort_version()

    def _compile(
        self, artifact: Artifact, options: RuntimeOptions, workdir: Path
    ) -> CudaOnnxRuntimeSession:
        provider = options.extra.get("provider", "cuda")
        reason = cuda_ep_unavailable_reason()
        if reason is not None:
            raise RuntimeMissingError(f"the onnxruntime-cuda target cannot run here: {reason}")
        import onnx
        import onnxruntime as ort

        first = PROVIDERS[provider]
        if first not in ort.get_available_providers():
            raise RuntimeMissingError(
                f"the onnxruntime-cuda target cannot run here with provider={provider!r}: "
                f"onnxruntime {ort.__version__} has no {first} (TensorRT's libraries missing; "
                "see docs/fleet.md)"
            )
        fp16 = options.precision == "fp16"
        path = artifact.write_to(workdir)
        try:
            model = onnx.load(str(path))
            if fp16 and provider == "cuda":
                model = to_fp16(model)
        except RuntimeMissingError:
            raise
        except Exception as exc:
            raise TrialError(
                f"onnxruntime-cuda could not prepare {artifact.main_file}: {exc}"
            ) from exc
        so = session_options(ort, options.threads)
        cuda_options = {"device_id": "0", "use_tf32": "0"}
        providers: list[Any] = [(_PROVIDER, cuda_options), "CPUExecutionProvider"]
        if provider == "tensorrt":
            from targets.tensorrt_runtime import engine_cache_dir

            _, shape = input_dims(model)
            cache = engine_cache_dir(
                node_cache_root(),
                gpu_name(),
                {"trt": tensorrt_library_version(), "ort": ort.__version__},
                (options.batch_size, *(d or 0 for d in shape[1:])),
                options.precision,
                artifact.content_hash,
            )
            cache.mkdir(parents=True, exist_ok=True)
            trt = tensorrt_provider_options(model, options.batch_size, fp16, cache)
            providers.insert(0, (_TENSORRT, trt))
        try:
            session = ort.InferenceSession(model.SerializeToString(), so, providers=providers)
        except Exception as exc:
            raise TrialError(
                f"onnxruntime-cuda could not load {artifact.main_file}: {exc}"
            ) from exc
        if first not in session.get_providers():
            raise TrialError(
                f"onnxruntime fell back to {session.get_providers()}: the {first} did not "
                "load (CUDA/cuDNN/TensorRT libraries missing or mismatched?); refusing to "
                "measure something else under this target's name"
            )
        precision = graph_precision(model)
        used = session.get_provider_options().get(_PROVIDER, {})
        if precision == "fp32" and used.get("use_tf32", "0") != "0":
            precision = "tf32"
        if provider == "tensorrt" and fp16:
            precision = "fp16+fp32"  # TensorRT picks fp16 or fp32 per layer
        return CudaOnnxRuntimeSession(session, precision)


RUNTIME = CudaOnnxRuntime
