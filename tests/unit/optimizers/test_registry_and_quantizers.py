"""Transforms on the real digits model: export, ORT and NNCF int8, config validation."""

from __future__ import annotations

import io

import numpy as np
import pytest
from support.digits import accuracy, ort_logits, torch_logits

import optimizers
from farm.errors import UsageError
from optimizers import BuildContext, apply


@pytest.fixture(scope="module")
def ctx(digits) -> BuildContext:
    return BuildContext(digits.data(), seed=0)


@pytest.fixture(scope="module")
def fp32_accuracy(digits_artifact, digits) -> float:
    ev = digits.data().eval
    return accuracy(torch_logits(digits_artifact, ev.x), ev.y)


def test_export_onnx_matches_torch_with_dynamic_batch(digits_artifact, onnx_artifact, digits):
    import onnx

    model = onnx.load_from_string(onnx_artifact.files["model.onnx"])
    assert [i.name for i in model.graph.input] == ["input"]
    assert [o.name for o in model.graph.output] == ["logits"]
    assert model.opset_import[0].version == 17
    for n in (1, 7):
        x = digits.data().eval.x[:n]
        got = ort_logits(onnx_artifact.files["model.onnx"], x)
        assert got.shape == (n, 10)
        np.testing.assert_allclose(got, torch_logits(digits_artifact, x), atol=1e-4, rtol=0)
    chain = [t["name"] for t in onnx_artifact.meta["transforms"]]
    assert chain == ["export_onnx"]
    assert onnx_artifact.meta["input_shape"] == [3, 32, 32]


def test_export_torch_round_trips(digits_artifact, ctx, digits):
    import torch

    exported = apply("export_torch", {}, digits_artifact, ctx)
    assert exported.format == "torch-export"
    program = torch.export.load(io.BytesIO(exported.files["model.pt2"]))
    for n in (1, 5):
        x = digits.data().eval.x[:n]
        with torch.no_grad():
            got = program.module()(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(got, torch_logits(digits_artifact, x), atol=1e-5, rtol=0)


def test_quantize_ort_makes_qdq_int8_and_keeps_accuracy(onnx_artifact, ctx, digits, fp32_accuracy):
    import onnx

    q = apply("quantize_ort", {}, onnx_artifact, ctx)
    ops = [n.op_type for n in onnx.load_from_string(q.files["model.onnx"]).graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    assert q.meta["precision"] == "int8" and q.meta["float_nodes"] == []
    ev = digits.data().eval
    acc = accuracy(ort_logits(q.files["model.onnx"], ev.x), ev.y)
    assert acc >= fp32_accuracy - 0.02
    assert len(q.files["model.onnx"]) < len(onnx_artifact.files["model.onnx"])


@pytest.mark.parametrize(
    "config",
    [
        {"calibration_method": "Percentile", "activation_type": "S8", "calib_size": 64},
        {"calibration_method": "Entropy", "calib_size": 32},
    ],
)
def test_quantize_ort_other_calibrations_run(onnx_artifact, ctx, digits, fp32_accuracy, config):
    q = apply("quantize_ort", config, onnx_artifact, ctx)
    ev = digits.data().eval
    assert accuracy(ort_logits(q.files["model.onnx"], ev.x), ev.y) >= fp32_accuracy - 0.05
    assert q.meta["transforms"][-1]["config"]["calibration_method"] == config["calibration_method"]


def test_quantize_ort_is_deterministic(onnx_artifact, ctx):
    a = apply("quantize_ort", {}, onnx_artifact, ctx)
    b = apply("quantize_ort", {}, onnx_artifact, ctx)
    assert a.files == b.files


def test_quantize_nncf_makes_int8_ir_and_keeps_accuracy(onnx_artifact, ctx, digits, fp32_accuracy):
    import openvino as ov

    q = apply("quantize_nncf", {"subset_size": 180}, onnx_artifact, ctx)
    assert q.format == "openvino-ir" and list(q.files) == ["model.xml", "model.bin"]
    core = ov.Core()
    weights = ov.Tensor(np.frombuffer(q.files["model.bin"], dtype=np.uint8))
    model = core.read_model(q.files["model.xml"].decode(), weights)
    assert "FakeQuantize" in {op.get_type_name() for op in model.get_ops()}
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    ev = digits.data().eval
    acc = accuracy(compiled(ev.x)[0], ev.y)
    assert acc >= fp32_accuracy - 0.02


def test_unknown_config_field_is_a_usage_error(onnx_artifact, ctx):
    with pytest.raises(UsageError, match=r"unknown config field.*calibation_method"):
        apply("quantize_ort", {"calibation_method": "MinMax"}, onnx_artifact, ctx)


@pytest.mark.parametrize(
    ("name", "config", "message"),
    [
        ("quantize_ort", {"calibration_method": "Magic"}, "calibration_method` must be one of"),
        ("quantize_ort", {"calib_size": "all"}, "`quantize_ort.calib_size` expected int"),
        ("quantize_ort", {"calib_size": True}, "`quantize_ort.calib_size` expected int"),
        ("quantize_nncf", {"preset": "fast"}, "`preset` must be one of"),
        ("quantize_nncf", {"max_drop": 2.0}, "max_drop <= 1.0` must hold"),
        ("export_onnx", {"opset": 11}, "13 <= opset <= 21"),
    ],
)
def test_bad_config_values_are_usage_errors(name, config, message):
    with pytest.raises(UsageError, match=message):
        optimizers.make_config(name, config)


def test_unknown_transform_and_wrong_input_format(digits_artifact, onnx_artifact, ctx):
    with pytest.raises(UsageError, match="unknown transform 'sparsify'"):
        apply("sparsify", {}, digits_artifact, ctx)
    with pytest.raises(UsageError, match="takes a onnx artifact, got 'torch-state'"):
        apply("quantize_ort", {}, digits_artifact, ctx)
    with pytest.raises(UsageError, match="takes a torch-state artifact, got 'onnx'"):
        apply("export_onnx", {}, onnx_artifact, ctx)


def test_registry_lists_transforms_fields_and_params():
    names = optimizers.transform_names()
    assert {"export_onnx", "export_torch", "quantize_ort", "quantize_nncf"} <= set(names)
    assert "calibration_method" in optimizers.transform_config_fields("quantize_ort")
    params = {
        "quantize_ort.activation_type": "S8",
        "batch_size": 4,
        "quantize_nncf.preset": "mixed",
    }
    assert optimizers.split_params(params) == {
        "quantize_ort": {"activation_type": "S8"},
        "quantize_nncf": {"preset": "mixed"},
    }


def test_search_space_names_knobs_by_transform():
    from optuna.distributions import BaseDistribution

    from targets import get_target

    space = optimizers.search_space("quantize_ort", get_target("cpu-onnxruntime"))
    assert "quantize_ort.calibration_method" in space
    assert all(isinstance(d, BaseDistribution) for d in space.values())
    assert optimizers.search_space("export_onnx", get_target("cpu-onnxruntime")) == {}
    # every knob is a valid config value
    for key, dist in space.items():
        field = key.split(".", 1)[1]
        for choice in getattr(dist, "choices", ()):
            optimizers.make_config("quantize_ort", {field: choice})
