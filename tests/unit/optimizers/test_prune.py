"""Pruning + fine-tune, mixed precision, accuracy control and search spaces (issue 4)."""

from __future__ import annotations

import numpy as np
import pytest
from _digits_fixtures import (
    accuracy,
    digits,
    digits_artifact,
    onnx_artifact,
    ort_logits,
    torch_logits,
)

import optimizers
from farm.errors import UsageError
from optimizers import BuildContext, apply
from workloads import WorkloadData, build_module

__all__ = ["digits", "digits_artifact", "onnx_artifact"]  # fixtures imported for pytest


@pytest.fixture(scope="module")
def ctx(digits, tmp_path_factory) -> BuildContext:
    return BuildContext(digits.data(), seed=0, cache_dir=tmp_path_factory.mktemp("opt-cache"))


@pytest.fixture(scope="module")
def pruned(digits_artifact, ctx):
    return apply("prune", {"ratio": 0.5, "finetune_steps": 120}, digits_artifact, ctx)


@pytest.mark.slow
def test_pruning_shrinks_the_model_and_fine_tune_recovers_accuracy(pruned, digits):
    info = pruned.meta["pruning"]
    assert info["params_after"] < 0.4 * info["params_before"]
    assert info["macs_after"] < 0.4 * info["macs_before"]
    assert pruned.meta["pruned_layers"]["features.0"]["out_channels"] == 8
    assert "classifier" not in pruned.meta["pruned_layers"] or (
        pruned.meta["pruned_layers"]["classifier"]["out_features"] == 10
    )
    ev = digits.data().eval
    assert accuracy(torch_logits(pruned, ev.x), ev.y) >= 0.93


@pytest.mark.slow
def test_pruned_artifact_rebuilds_and_exports(pruned, ctx, digits):
    import torch

    module = build_module(pruned)
    assert sum(p.numel() for p in module.parameters()) == pruned.meta["pruning"]["params_after"]
    onnx_art = apply("export_onnx", {}, pruned, ctx)
    x = digits.data().eval.x[:16]
    np.testing.assert_allclose(
        ort_logits(onnx_art.files["model.onnx"], x), torch_logits(pruned, x), atol=1e-4, rtol=0
    )
    exported = apply("export_torch", {}, pruned, ctx)
    assert exported.format == "torch-export"
    assert [t["name"] for t in exported.meta["transforms"]] == ["prune", "export_torch"]
    assert isinstance(module, torch.nn.Module)


def test_pruning_is_deterministic(digits_artifact, ctx):
    cfg = {"ratio": 0.25, "finetune_steps": 10}
    a = apply("prune", cfg, digits_artifact, ctx)
    b = apply("prune", cfg, digits_artifact, ctx)
    assert a.files == b.files


def test_pruning_needs_train_data(digits_artifact, digits):
    data = digits.data()
    no_train = WorkloadData(None, data.calib, data.eval, 10, (3, 32, 32), True)
    with pytest.raises(UsageError, match="needs a labelled train split"):
        apply("prune", {"ratio": 0.25}, digits_artifact, BuildContext(no_train))


@pytest.mark.parametrize("importance", ["l1", "bn_scale", "taylor"])
def test_other_importances_prune(digits_artifact, ctx, importance):
    p = apply(
        "prune",
        {"ratio": 0.25, "importance": importance, "finetune_steps": 0},
        digits_artifact,
        ctx,
    )
    assert p.meta["pruning"]["params_after"] < p.meta["pruning"]["params_before"]


def test_mixed_precision_keeps_the_most_sensitive_nodes_float(onnx_artifact, ctx, digits):
    import onnx

    q = apply("quantize_ort", {"keep_float_layers": 2}, onnx_artifact, ctx)
    ranking = q.meta["sensitivity_ranking"]
    assert q.meta["float_nodes"] == ranking[:2]
    assert len(ranking) == q.meta["quantizable_nodes"] == 5
    graph = onnx.load_from_string(q.files["model.onnx"]).graph
    by_output = {o: n for n in graph.node for o in n.output}
    for name in ranking[:2]:
        node = next(n for n in graph.node if n.name == name)
        weight_producer = by_output.get(node.input[1])
        assert weight_producer is None or weight_producer.op_type != "DequantizeLinear"
    full = apply("quantize_ort", {}, onnx_artifact, ctx)
    n_q = sum(n.op_type == "QuantizeLinear" for n in graph.node)
    n_full = sum(
        n.op_type == "QuantizeLinear"
        for n in onnx.load_from_string(full.files["model.onnx"]).graph.node
    )
    assert n_q < n_full
    ev = digits.data().eval
    assert accuracy(ort_logits(q.files["model.onnx"], ev.x), ev.y) >= 0.95
    # the ranking is cached on disk and reused
    assert list((ctx.cache_dir / "sensitivity").glob("ort-*.json"))


def test_nncf_keep_float_layers_and_accuracy_control(onnx_artifact, ctx, digits):
    import openvino as ov

    def fake_quantize_ops(art) -> int:
        weights = ov.Tensor(np.frombuffer(art.files["model.bin"], dtype=np.uint8))
        model = ov.Core().read_model(art.files["model.xml"].decode(), weights)
        return sum(op.get_type_name() == "FakeQuantize" for op in model.get_ops())

    plain = apply("quantize_nncf", {}, onnx_artifact, ctx)
    mixed = apply("quantize_nncf", {"keep_float_layers": 2}, onnx_artifact, ctx)
    assert fake_quantize_ops(mixed) < fake_quantize_ops(plain)
    controlled = apply(
        "quantize_nncf", {"accuracy_control": True, "max_drop": 0.01}, onnx_artifact, ctx
    )
    assert controlled.format == "openvino-ir" and fake_quantize_ops(controlled) > 0


def test_search_spaces_offer_the_issue_knobs(digits):
    from targets import get_target

    ort = get_target("cpu-onnxruntime")
    space = {}
    for name in optimizers.transform_names():
        space.update(optimizers.search_space(name, ort, digits))
    for knob in (
        "quantize_ort.calibration_method",
        "quantize_ort.activation_type",
        "quantize_ort.keep_float_layers",
        "quantize_nncf.preset",
        "quantize_nncf.fast_bias_correction",
        "prune.ratio",
        "prune.importance",
    ):
        assert knob in space
    for key, dist in space.items():
        name, field = key.split(".", 1)
        for choice in dist.choices:
            optimizers.make_config(name, {field: choice})


def test_is_identity_lets_the_engine_skip_a_zero_pruning_ratio():
    assert optimizers.is_identity("prune", {"ratio": 0.0})
    assert not optimizers.is_identity("prune", {"ratio": 0.25})
    assert not optimizers.is_identity("quantize_ort", {})
