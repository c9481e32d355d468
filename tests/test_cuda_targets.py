"""The CUDA targets: the shared runtime contract on a real GPU, and clear refusals without one.

GPU tests are marked ``gpu`` and skip by capability, with the runtime's own reason (no GPU,
a CPU-only torch, onnxruntime without the CUDA provider, torch-tensorrt missing).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from _tiny_models import TinyModels, random_batch
from test_targets_contract import TargetContract, tiny  # noqa: F401 - the shared fixture

from farm.artifact import Artifact
from farm.errors import RuntimeMissingError
from targets import RuntimeOptions, runtime_class

CUDA_RUNTIMES = ("cuda-torch", "onnxruntime-cuda", "tensorrt")


def _reason(runtime_key: str) -> str | None:
    return runtime_class(runtime_key).unavailable_reason()  # type: ignore[attr-defined]


class CudaContract(TargetContract):
    """The shared contract plus what a GPU target adds: fp16, and device memory read back."""

    precisions: ClassVar[dict[str, str]] = {"fp32": "fp32", "fp16": "fp16"}
    atol: ClassVar[float] = 1e-3

    @pytest.fixture(autouse=True)
    def _needs_the_runtime(self) -> None:
        reason = _reason(self.runtime_key)
        if reason is not None:
            pytest.skip(f"{self.runtime_key}: {reason}")

    def test_fp16_runs_close_to_the_reference(self, tiny: TinyModels, tmp_path: Path) -> None:  # noqa: F811
        x = random_batch(4, seed=3)
        with self.compile(tiny, tmp_path, precision="fp16", batch=4) as session:
            out = session.run(x)
            memory = session.device_memory_mib  # type: ignore[attr-defined]
        assert out.dtype == np.float32
        np.testing.assert_allclose(out, tiny.reference(x), atol=5e-2, rtol=5e-2)
        assert memory is None or memory > 0


@pytest.mark.gpu
class TestCudaTorch(CudaContract):
    runtime_key = "cuda-torch"
    artifact_format = "torch-export"


@pytest.mark.gpu
class TestCudaOnnxRuntime(CudaContract):
    runtime_key = "onnxruntime-cuda"
    artifact_format = "onnx"


@pytest.mark.gpu
class TestTensorRT(CudaContract):
    runtime_key = "tensorrt"
    artifact_format = "torch-export"


@pytest.mark.parametrize("runtime_key", CUDA_RUNTIMES)
def test_without_its_gpu_stack_a_cuda_runtime_refuses_and_says_why(
    runtime_key: str,
    tiny: TinyModels,  # noqa: F811
    tmp_path: Path,
) -> None:
    reason = _reason(runtime_key)
    if reason is None:
        pytest.skip(f"{runtime_key} runs here; its refusal cannot be observed")
    cls = runtime_class(runtime_key)
    assert not cls.available()
    fmt = cls.accepts[0]
    artifact = Artifact.read_from(fmt, [tiny.pt2 if fmt == "torch-export" else tiny.onnx])
    with pytest.raises(RuntimeMissingError, match="cannot run here") as info:
        cls().compile(artifact, RuntimeOptions(), tmp_path)
    assert reason in str(info.value)


def test_fp16_conversion_keeps_float32_io_and_reports_fp16(tiny: TinyModels) -> None:  # noqa: F811
    """Runs on the CPU: the converted graph is what the CUDA provider would execute."""
    import onnx
    import onnxruntime as ort

    from targets.cuda_onnxruntime_runtime import graph_precision, to_fp16

    model = onnx.load(str(tiny.onnx))
    assert graph_precision(model) == "fp32"
    half = to_fp16(model)
    assert graph_precision(half) == "fp16"
    assert half.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    session = ort.InferenceSession(half.SerializeToString(), providers=["CPUExecutionProvider"])
    x = random_batch(2, seed=1)
    out = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(out, tiny.reference(x), atol=5e-2, rtol=5e-2)
