"""Structured pruning with a fine-tune through the task: the model shrinks, the task's head
stays whole, the fine-tune recovers accuracy, the result rebuilds and exports."""

from __future__ import annotations

import numpy as np
import pytest
from support.digits import accuracy, ort_logits, torch_logits

import optimizers
from farm.errors import UsageError
from optimizers import BuildContext, apply
from workloads import WorkloadData, build_module
from workloads.tasks import Generic


@pytest.fixture(scope="module")
def ctx(digits, tmp_path_factory) -> BuildContext:
    cache = tmp_path_factory.mktemp("opt-cache")
    return BuildContext(digits.data(), seed=0, cache_dir=cache, task=digits.task)


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
        apply("prune", {"ratio": 0.25}, digits_artifact, BuildContext(no_train, task=digits.task))


def test_pruning_needs_a_task_that_defines_a_fine_tune(digits_artifact, digits):
    with pytest.raises(UsageError, match="a generic task defines none"):
        apply(
            "prune", {"ratio": 0.25}, digits_artifact, BuildContext(digits.data(), task=Generic())
        )
    with pytest.raises(UsageError, match="no task defines none"):
        apply("prune", {"ratio": 0.25}, digits_artifact, BuildContext(digits.data()))


def test_the_tasks_head_is_never_pruned(digits_artifact, ctx):
    p = apply("prune", {"ratio": 0.7, "finetune_steps": 0}, digits_artifact, ctx)
    assert p.meta["pruned_layers"]["classifier"]["out_features"] == 10


@pytest.mark.parametrize("importance", ["l1", "bn_scale", "taylor"])
def test_other_importances_prune(digits_artifact, ctx, importance):
    p = apply(
        "prune",
        {"ratio": 0.25, "importance": importance, "finetune_steps": 0},
        digits_artifact,
        ctx,
    )
    assert p.meta["pruning"]["params_after"] < p.meta["pruning"]["params_before"]


def test_is_identity_lets_the_engine_skip_a_zero_pruning_ratio():
    assert optimizers.is_identity("prune", {"ratio": 0.0})
    assert not optimizers.is_identity("prune", {"ratio": 0.25})
    assert not optimizers.is_identity("quantize_ort", {})
