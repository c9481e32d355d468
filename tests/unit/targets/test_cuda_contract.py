"""The CUDA targets' runtimes: the shared runtime contract on a real GPU and clear refusals
without one (fp16 conversion checked on the CPU).

GPU tests are marked ``gpu`` and skip by capability, with the runtime's own reason (no GPU,
a CPU-only torch, onnxruntime without the CUDA provider, torch-tensorrt missing). TensorRT and
the ONNX Runtime GPU build cannot be installed on this project's machines (docs/fleet.md says how
to on a GPU node), so their tests skip everywhere here.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from support.target_contract import TargetContract
from support.tiny_models import TinyModels, random_batch

from farm.artifact import Artifact
from farm.errors import RuntimeMissingError, TrialError
from targets import DeviceSession, RuntimeOptions, runtime_class
from targets.cuda_torch_runtime import (
    COMPILE_MODES,
)

CUDA_RUNTIMES = ("cuda-torch", "onnxruntime-cuda", "tensorrt")


def _reason(runtime_key: str) -> str | None:
    return runtime_class(runtime_key).unavailable_reason()


class CudaContract(TargetContract):
    """The shared contract plus what a GPU target adds: fp16, and device memory read back."""

    precisions: ClassVar[dict[str, str]] = {"fp32": "fp32", "fp16": "fp16"}
    atol: ClassVar[float] = 1e-3

    @pytest.fixture(autouse=True)
    def _needs_the_runtime(self) -> None:
        reason = _reason(self.runtime_key)
        if reason is not None:
            pytest.skip(f"{self.runtime_key}: {reason}")

    def test_fp16_runs_close_to_the_reference(self, tiny: TinyModels, tmp_path: Path) -> None:
        x = random_batch(4, seed=3)
        with self.compile(tiny, tmp_path, precision="fp16", batch=4) as session:
            out = session.run(x)
            assert isinstance(session, DeviceSession)
            memory = session.device_memory_mib
        assert out.dtype == np.float32
        np.testing.assert_allclose(out, tiny.reference(x), atol=5e-2, rtol=5e-2)
        assert memory is None or memory > 0


@pytest.mark.gpu
class TestCudaTorch(CudaContract):
    runtime_key = "cuda-torch"
    artifact_format = "torch-export"
    precisions: ClassVar[dict[str, str]] = {"fp32": "fp32", "fp16": "fp16", "bf16": "bf16"}

    def test_tf32_is_off_for_fp32_unless_asked_and_read_back(
        self,
        tiny: TinyModels,
        tmp_path: Path,
    ) -> None:
        with self.compile(tiny, tmp_path / "a", fp32_math="tf32") as session:
            assert session.actual_precision == "tf32"
        with self.compile(tiny, tmp_path / "b") as session:
            assert session.actual_precision == "fp32"

    @pytest.mark.parametrize("batch", [1, 4])
    def test_a_cuda_graph_replays_what_eager_computes(
        self,
        tiny: TinyModels,
        tmp_path: Path,
        batch: int,
    ) -> None:
        with self.compile(tiny, tmp_path, batch=batch, cuda_graphs=True) as session:
            assert session.graphs == "farm"  # type: ignore[attr-defined]
            for seed in (5, 6):  # a new input is copied into the graph's buffer
                y = random_batch(batch, seed=seed)
                np.testing.assert_allclose(session.run(y), tiny.reference(y), atol=self.atol)
            other = random_batch(batch + 1, seed=7)  # another shape runs eagerly
            np.testing.assert_allclose(session.run(other), tiny.reference(other), atol=self.atol)

    def test_device_io_leaves_the_output_on_the_gpu_and_events_time_it(
        self,
        tiny: TinyModels,
        tmp_path: Path,
    ) -> None:
        with self.compile(tiny, tmp_path, batch=2, channels_last=True, cuda_graphs=True) as s:
            assert isinstance(s, DeviceSession)
            query = s.device_query(random_batch(2))
            assert s.start_device_timing()
            out = [query() for _ in range(5)]
            times = s.stop_device_timing()
        assert out[-1].is_cuda
        assert len(times) == 5 and all(t > 0 for t in times)

    def test_a_batch_that_does_not_fit_says_how_much_memory_the_gpu_has(
        self,
        tiny: TinyModels,
        tmp_path: Path,
    ) -> None:
        with pytest.raises(TrialError, match=r"batch 2000000 does not fit in the memory of the"):
            self.compile(tiny, tmp_path, batch=2_000_000)

    @pytest.mark.slow
    @pytest.mark.parametrize("mode", [m for m in COMPILE_MODES if m != "off"])
    def test_every_compile_mode_runs_and_matches(
        self,
        tiny: TinyModels,
        tmp_path: Path,
        mode: str,
    ) -> None:
        x = random_batch(2, seed=2)
        with self.compile(tiny, tmp_path, batch=2, compile=mode) as session:
            np.testing.assert_allclose(session.run(x), tiny.reference(x), atol=1e-2)


@pytest.mark.gpu
class TestCudaOnnxRuntime(CudaContract):
    runtime_key = "onnxruntime-cuda"
    artifact_format = "onnx"

    def test_device_io_binds_the_input_on_the_gpu(
        self,
        tiny: TinyModels,
        tmp_path: Path,
    ) -> None:
        with self.compile(tiny, tmp_path, batch=2) as session:
            assert isinstance(session, DeviceSession)
            query = session.device_query(random_batch(2))
            # IOBinding leaves the outputs on the GPU: the query returns nothing, and runs again
            assert query() is None and query() is None
            assert not session.start_device_timing()  # ONNX Runtime has no CUDA events
            assert session.stop_device_timing() == []

    def test_the_tensorrt_provider_runs_or_says_why_not(
        self,
        tiny: TinyModels,
        tmp_path: Path,
    ) -> None:
        try:
            session = self.compile(tiny, tmp_path, precision="fp16", batch=2, provider="tensorrt")
        except RuntimeMissingError as exc:
            pytest.skip(str(exc))
        with session:
            x = random_batch(2)
            np.testing.assert_allclose(session.run(x), tiny.reference(x), atol=5e-2, rtol=5e-2)
            assert session.actual_precision == "fp16+fp32"


@pytest.mark.gpu
class TestTensorRT(CudaContract):
    runtime_key = "tensorrt"
    artifact_format = "torch-export"

    def test_engines_are_cached_per_gpu_version_and_shape(
        self,
        tiny: TinyModels,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setenv("FARM_NODE_CACHE", str(tmp_path / "cache"))
        with self.compile(tiny, tmp_path / "a", precision="fp16", batch=2):
            pass
        assert len(list((tmp_path / "cache" / "tensorrt").iterdir())) == 1
        with self.compile(tiny, tmp_path / "b", precision="fp16", batch=2):
            pass  # reused: still one directory
        with self.compile(tiny, tmp_path / "c", precision="fp16", batch=4):
            pass
        assert len(list((tmp_path / "cache" / "tensorrt").iterdir())) == 2


@pytest.mark.parametrize("runtime_key", CUDA_RUNTIMES)
def test_without_its_gpu_stack_a_cuda_runtime_refuses_and_says_why(
    runtime_key: str,
    tiny: TinyModels,
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


def test_fp16_conversion_keeps_float32_io_and_reports_fp16(tiny: TinyModels) -> None:
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
