"""ONNX Runtime on an NVIDIA GPU (``runtime = "onnxruntime-cuda"``): the CUDA execution provider.

Needs the ``onnxruntime-gpu`` wheel (the ``cuda`` extra; uninstall the CPU ``onnxruntime`` wheel
first, the two share the ``onnxruntime`` module). Options read from
:class:`~targets.base.RuntimeOptions`:
- ``precision``: ``"fp32"`` or ``"fp16"``. fp16 converts the ONNX model's float tensors to
  float16 (onnxconverter-common's converter when installed, else the copy that ships in
  ``onnxruntime.transformers``), keeping the graph's inputs and outputs float32 and the operators
  on the converter's block list in fp32.
- ``threads``: ``intra_op_num_threads`` (for nodes that fall back to the CPU).

"fp32" means IEEE fp32: the provider option ``use_tf32`` is turned off and read back from the
session, and ``actual_precision`` says ``"tf32"`` if it stayed on. For fp16, ``actual_precision``
is read from the converted graph: ``"fp16"`` when every float initializer is float16,
``"fp16+fp32"`` when the converter kept some in fp32. If ONNX Runtime silently falls back to the
CPU (the provider failed to load), compile refuses instead of measuring the CPU under a CUDA name.

``session.run`` copies the outputs back to host memory, so it returns only when the device work is
done: the harness's wall clock covers it. ``device_memory_mib`` is this process's GPU memory as
``nvidia-smi`` reports it (None where the driver hides per-process figures, e.g. in containers).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farm.errors import RuntimeMissingError, TrialError, UsageError
from targets.base import Runtime, RuntimeOptions, Session
from targets.onnxruntime_runtime import OnnxRuntimeSession, ort_version, session_options

if TYPE_CHECKING:
    from farm.artifact import Artifact

PRECISIONS = ("fp32", "fp16")
_PROVIDER = "CUDAExecutionProvider"


def cuda_ep_unavailable_reason() -> str | None:
    """Why the CUDA execution provider cannot run here, or None when it can."""
    from farm.cluster import has_cuda_gpu

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


def process_gpu_memory_mib(pid: int | None = None) -> float | None:
    """GPU memory used by process ``pid`` (default: this one) per ``nvidia-smi``, or None."""
    import shutil
    import subprocess

    if shutil.which("nvidia-smi") is None:
        return None
    pid = os.getpid() if pid is None else pid
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0] == str(pid) and parts[1].isdigit():
            return float(parts[1])
    return None


class CudaOnnxRuntimeSession(OnnxRuntimeSession):
    """The CPU target's session plus device memory; ``threads`` serve nodes on the CPU."""

    runtime_name = "onnxruntime-cuda"

    @property
    def device_memory_mib(self) -> float | None:
        return process_gpu_memory_mib()


class CudaOnnxRuntime(Runtime):
    name = "onnxruntime-cuda"
    accepts = ("onnx",)

    @classmethod
    def available(cls) -> bool:
        return cuda_ep_unavailable_reason() is None

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return cuda_ep_unavailable_reason()

    @classmethod
    def version(cls) -> str:
        return ort_version()

    def compile(self, artifact: Artifact, options: RuntimeOptions, workdir: Any) -> Session:
        if artifact.format not in self.accepts:
            raise UsageError(
                f"onnxruntime-cuda compiles artifacts of format {list(self.accepts)}, "
                f"got {artifact.format!r}"
            )
        if options.precision not in PRECISIONS:
            raise UsageError(
                f"onnxruntime-cuda: precision must be one of {list(PRECISIONS)}, "
                f"got {options.precision!r}"
            )
        if options.threads < 1:
            raise UsageError(
                f"onnxruntime-cuda: `threads >= 1` must hold, but got {options.threads}"
            )
        reason = cuda_ep_unavailable_reason()
        if reason is not None:
            raise RuntimeMissingError(f"the onnxruntime-cuda target cannot run here: {reason}")
        import onnx
        import onnxruntime as ort

        path = artifact.write_to(Path(workdir))
        try:
            model = onnx.load(str(path))
            if options.precision == "fp16":
                model = to_fp16(model)
        except RuntimeMissingError:
            raise
        except Exception as exc:
            raise TrialError(
                f"onnxruntime-cuda could not prepare {artifact.main_file}: {exc}"
            ) from exc
        so = session_options(ort, options.threads)
        cuda_options = {"device_id": "0", "use_tf32": "0"}
        try:
            session = ort.InferenceSession(
                model.SerializeToString(),
                so,
                providers=[(_PROVIDER, cuda_options), "CPUExecutionProvider"],
            )
        except Exception as exc:
            raise TrialError(
                f"onnxruntime-cuda could not load {artifact.main_file}: {exc}"
            ) from exc
        if _PROVIDER not in session.get_providers():
            raise TrialError(
                f"onnxruntime fell back to {session.get_providers()}: the {_PROVIDER} did not "
                "load (CUDA/cuDNN libraries missing or mismatched?); refusing to measure the CPU"
            )
        precision = graph_precision(model)
        used = session.get_provider_options().get(_PROVIDER, {})
        if precision == "fp32" and used.get("use_tf32", "0") != "0":
            precision = "tf32"
        return CudaOnnxRuntimeSession(session, precision)


RUNTIME = CudaOnnxRuntime
