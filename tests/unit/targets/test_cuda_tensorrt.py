"""TensorRT and ONNX Runtime's TensorRT provider, what runs without them: engine cache keys, a
quantized program recognised, the provider's profile and cache, and its validation."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
from support.tiny_models import TinyModels

from farm.artifact import Artifact
from farm.errors import UsageError
from targets import RuntimeOptions, runtime_class


def test_tensorrt_engines_are_keyed_by_gpu_versions_shape_precision_and_model(
    tmp_path: Path,
) -> None:
    from targets.tensorrt_runtime import engine_cache_dir

    def key(**change: Any) -> Path:
        parts: dict[str, Any] = {
            "gpu_model": "NVIDIA H200",
            "versions": {"trt": "10.9", "torch-trt": "2.13"},
            "input_shape": (8, 3, 224, 224),
            "precision": "fp16",
            "artifact_hash": "abc",
        }
        parts.update(change)
        return engine_cache_dir(tmp_path, **parts)

    base = key()
    assert base == key() and base.parent == tmp_path / "tensorrt"
    assert "NVIDIA-H200" in base.name and "8x3x224x224" in base.name
    changed = [
        key(gpu_model="NVIDIA L4"),
        key(versions={"trt": "10.10", "torch-trt": "2.13"}),
        key(input_shape=(16, 3, 224, 224)),
        key(precision="fp32"),
        key(artifact_hash="def"),
    ]
    assert len({base, *changed}) == 6


def test_a_modelopt_style_quantized_program_is_recognised() -> None:
    import torch

    from targets.tensorrt_runtime import program_is_quantized

    class FakeQuant(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.fake_quantize_per_tensor_affine(x, 0.1, 0, -128, 127).relu()

    class Plain(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.relu()

    x = (torch.randn(1, 3, 4, 4),)
    assert program_is_quantized(torch.export.export(FakeQuant(), x))
    assert not program_is_quantized(torch.export.export(Plain(), x))


def test_the_tensorrt_provider_gets_a_fixed_profile_and_a_cache(
    tiny: TinyModels,
    tmp_path: Path,
) -> None:
    import onnx

    from targets.cuda_onnxruntime_runtime import tensorrt_provider_options

    model = onnx.load(str(tiny.onnx))
    options = tensorrt_provider_options(model, 8, True, tmp_path)
    assert options["trt_profile_opt_shapes"] == "input:8x3x32x32"
    assert options["trt_profile_min_shapes"] == options["trt_profile_max_shapes"]
    assert options["trt_fp16_enable"] == "True"
    assert options["trt_engine_cache_path"] == str(tmp_path)
    assert tensorrt_provider_options(model, 1, False, tmp_path)["trt_fp16_enable"] == "False"


def test_onnxruntime_cuda_validates_its_provider_before_looking_for_a_gpu(
    tiny: TinyModels,
    tmp_path: Path,
) -> None:
    artifact = Artifact.read_from("onnx", [tiny.onnx])
    runtime = runtime_class("onnxruntime-cuda")()
    with pytest.raises(UsageError, match="provider`: expected one of"):
        runtime.compile(artifact, RuntimeOptions(extra={"provider": "rocm"}), tmp_path)
    with pytest.raises(UsageError, match="unknown option"):
        runtime.compile(artifact, RuntimeOptions(extra={"streams": 2}), tmp_path)


@pytest.mark.skipif(
    importlib.util.find_spec("torch_tensorrt") is None,
    reason="torch-tensorrt is not installed: it needs a GPU node (pip install -e '.[cuda]')",
)
def test_tensorrt_reports_its_versions() -> None:
    assert "TensorRT" in runtime_class("tensorrt").version()
