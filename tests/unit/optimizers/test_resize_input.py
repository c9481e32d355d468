"""Input resolution as a searched knob: the resize helper, the ``resize_input`` transform, the
chain order, and one real digits job (real Ray, real ONNX Runtime) at two input sizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.digits import ort_logits

import optimizers
from farm.errors import UsageError
from farm.search.space import baseline_params, plan, target_space
from farm.spec.job import parse_job
from optimizers import BuildContext, apply
from workloads import Split, WorkloadTraits, resize_data, resize_split
from workloads.tasks import Generic


@pytest.fixture(scope="module")
def ctx(digits) -> BuildContext:
    return BuildContext(digits.data(), seed=0, task=digits.task)


# -- the resize helper -----------------------------------------------------------------------


def test_resize_split_shape_dtype_labels_and_determinism():
    rng = np.random.default_rng(0)
    split = Split(rng.standard_normal((300, 3, 32, 32)).astype(np.float32), np.arange(300))
    small = resize_split(split, (16, 16))
    assert small.x.shape == (300, 3, 16, 16) and small.x.dtype == np.float32
    assert small.y is split.y
    np.testing.assert_array_equal(small.x, resize_split(split, (16, 16)).x)
    assert resize_split(split, (32, 32)) is split  # native size: untouched
    # A constant image stays constant (bilinear, antialiased: weights sum to one).
    flat = Split(np.full((2, 3, 32, 32), 0.7, np.float32))
    np.testing.assert_allclose(resize_split(flat, (24, 24)).x, 0.7, atol=1e-6)
    np.testing.assert_allclose(resize_split(flat, (48, 48)).x, 0.7, atol=1e-6)
    # Antialiasing when downscaling: a pixel checkerboard averages out to grey (plain bilinear
    # at exactly 0.5x would sample it and give all 0s or all 1s).
    checker = np.indices((32, 32)).sum(axis=0) % 2
    board = Split(np.broadcast_to(checker, (1, 3, 32, 32)).astype(np.float32))
    np.testing.assert_allclose(resize_split(board, (16, 16)).x, 0.5, atol=0.02)


def test_resize_data_resizes_every_split(digits):
    data = digits.data()
    small = resize_data(data, (16, 16))
    assert small.input_shape == (3, 16, 16)
    for name in ("train", "calib", "eval"):
        before, after = getattr(data, name), getattr(small, name)
        assert after.x.shape == (len(before), 3, 16, 16)
        np.testing.assert_array_equal(after.y, before.y)
    assert (small.num_classes, small.has_labels) == (data.num_classes, data.has_labels)
    assert resize_data(data, (32, 32)) is data


# -- the transform -----------------------------------------------------------------------------


def test_resize_input_sets_the_input_shape_and_keeps_the_weights(digits_artifact, ctx):
    out = apply("resize_input", {"size": 16}, digits_artifact, ctx)
    assert out.format == "torch-state"
    assert out.files == digits_artifact.files
    assert out.meta["input_shape"] == [3, 16, 16]
    assert out.meta["native_input_shape"] == [3, 32, 32]
    assert out.meta["builder"] == digits_artifact.meta["builder"]
    assert [t["name"] for t in out.meta["transforms"]] == ["resize_input"]


def test_size_zero_is_identity_and_bad_sizes_are_refused():
    assert optimizers.is_identity("resize_input", {"size": 0})
    assert optimizers.is_identity("resize_input", {})
    assert not optimizers.is_identity("resize_input", {"size": 16})
    for bad in (-8, 3, 100_000):
        with pytest.raises(UsageError, match="size"):
            optimizers.make_config("resize_input", {"size": bad})


def test_export_at_the_new_size_makes_an_onnx_with_that_input(digits_artifact, digits, ctx):
    import onnx

    small = apply("resize_input", {"size": 16}, digits_artifact, ctx)
    exported = apply("export_onnx", {}, small, ctx)
    assert exported.meta["input_shape"] == [3, 16, 16]
    model = onnx.load_from_string(exported.files["model.onnx"])
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[1:]] == [3, 16, 16]
    x = resize_split(digits.data().eval, (16, 16)).x[:4]
    assert ort_logits(exported.files["model.onnx"], x).shape == (4, 10)


def test_each_build_step_sees_the_data_at_its_input_size(digits_artifact, digits, monkeypatch):
    """Later steps (calibration, fine-tune, export) get the data resized to the artifact's size."""
    import optimizers.base
    from farm.search.candidate import step
    from farm.worker.build import build, resolve

    seen = []
    real_apply = optimizers.base._apply

    def spy(transform, config, artifact, ctx):
        seen.append((transform.name, ctx.data.input_shape, ctx.data.calib.x.shape[1:]))
        return real_apply(transform, config, artifact, ctx)

    monkeypatch.setattr(optimizers.base, "_apply", spy)
    steps = resolve([step("resize_input", {"size": 16}), step("export_onnx")])
    _, exported = build(digits_artifact, steps, digits.data(), 0, digits.task)
    assert seen == [
        ("resize_input", (3, 32, 32), (3, 32, 32)),
        ("export_onnx", (3, 16, 16), (3, 16, 16)),
    ]
    assert exported.meta["input_shape"] == [3, 16, 16]


def test_fine_tune_at_the_new_size_recovers_accuracy(digits_artifact, digits, ctx):
    import torch

    from workloads import build_module

    x = resize_split(digits.data().eval, (16, 16))

    def accuracy(artifact):
        with torch.no_grad():
            logits = build_module(artifact)(torch.from_numpy(x.x)).numpy()
        return float((logits.argmax(1) == x.y).mean())

    plain = apply("resize_input", {"size": 16}, digits_artifact, ctx)
    tuned = apply("resize_input", {"size": 16, "finetune_steps": 30}, digits_artifact, ctx)
    assert tuned.files != plain.files and tuned.meta["finetune"]["steps"] == 30
    assert tuned.meta["input_shape"] == [3, 16, 16]
    assert accuracy(tuned) > max(0.8, accuracy(plain))


# -- the search space and the chain ------------------------------------------------------------


def resolution_spec(**search: object) -> object:
    raw = {
        "name": "res",
        "targets": ["cpu-onnxruntime"],
        "workload": {"name": "digits"},
        "search": {"precision": ["fp32", "int8"], "transforms": ["prune", "resize_input"]},
    }
    raw["search"].update(search)  # type: ignore[union-attr]
    return parse_job(raw)


def test_default_sizes_come_from_the_native_size(digits):
    space = target_space(resolution_spec(), "cpu-onnxruntime", 1, digits.traits())
    assert space["resize_input.size"].choices == (0, 24, 16)
    from optimizers.resize import default_sizes

    assert default_sizes(224) == [0, 168, 112]


def test_offered_only_where_the_workload_allows_another_resolution(digits):
    from targets import get_target

    target = get_target("cpu-onnxruntime")
    onnx_file = WorkloadTraits(torch_source=False, allows_resolution=False, input_shape=(3, 8, 8))
    assert optimizers.search_space("resize_input", target, onnx_file) == {}
    spec = resolution_spec()
    assert "resize_input.size" not in target_space(spec, "cpu-onnxruntime", 1, onnx_file)
    space = optimizers.search_space("resize_input", target, digits.traits())
    assert space["resize_input.size"].choices == (0, 24, 16)
    # without a workload (checking a job file) only the native size, which a job may replace
    assert optimizers.search_space("resize_input", target)["resize_input.size"].choices == (0,)


def test_the_fine_tune_needs_a_task_that_defines_one(digits_artifact, digits):
    ctx = BuildContext(digits.data(), task=Generic())
    with pytest.raises(UsageError, match="a generic task defines none"):
        apply("resize_input", {"size": 16, "finetune_steps": 5}, digits_artifact, ctx)


def test_resize_comes_first_whatever_order_the_job_lists_it_in():
    spec = resolution_spec(knobs={"resize_input.size": [16], "prune.ratio": [0.5]})
    params = {
        "precision": "int8",
        "batch_size": 1,
        "threads": 1,
        "resize_input.size": 16,
        "prune.ratio": 0.5,
    }
    chain = [name for name, _ in plan(spec, "cpu-onnxruntime", params, "w").chain]
    assert chain == ["resize_input", "prune", "export_onnx", "quantize_ort"]
    assert optimizers.chain_order(["quantize_ort", "prune", "resize_input"]) == [
        "resize_input",
        "prune",
        "quantize_ort",
    ]


def test_size_changes_the_build_key_and_the_baseline_is_native():
    spec = resolution_spec(knobs={"resize_input.size": [16, 0]})
    space = target_space(spec, "cpu-onnxruntime", 1)
    base = baseline_params(space)
    assert base["resize_input.size"] == 0  # the identity, wherever the job lists it
    keys = {
        size: plan(spec, "cpu-onnxruntime", {**base, "resize_input.size": size}, "w").build_key()
        for size in (0, 16, 24)
    }
    assert len(set(keys.values())) == 3
    native = plan(spec, "cpu-onnxruntime", base, "w")
    assert [name for name, _ in native.chain] == ["export_onnx"]


# -- one real job ------------------------------------------------------------------------------


def test_digits_job_searches_two_input_sizes(results_dir: Path):
    import tomllib

    from farm.engine.runner import JobRunner
    from farm.store.db import Store

    job = """
    name = "digits-resolution"
    targets = ["cpu-onnxruntime"]
    [workload]
    name = "digits"
    [search]
    trials_per_target = 2
    seed = 0
    precision = ["fp32"]
    batch_size = [1]
    threads = [1]
    transforms = ["resize_input"]
    [search.knobs]
    "resize_input.size" = [0, 16]           # native (the baseline) and 16 x 16
    "resize_input.finetune_steps" = [30]    # digits at 16 x 16 is 0.44 without it
    [measurement]
    min_duration_s = 0.2
    max_duration_s = 0.6
    min_samples = 32
    """
    spec = parse_job(tomllib.loads(job), source="resolution.toml")
    store = Store(results_dir / "resolution.duckdb")
    runner = JobRunner(spec, store)
    assert runner.run() == "completed"
    trials = store.trials(runner.job_id)
    assert [t.status for t in trials] == ["completed", "completed"], [t.error for t in trials]
    by_size = {t.params["resize_input.size"]: t for t in trials}
    assert set(by_size) == {0, 16}
    assert by_size[0].is_baseline
    for size, t in by_size.items():
        assert t.quality_metric == "accuracy" and t.quality > 0.5, (size, t.quality)
        # The artifact the trial measured takes size x size inputs (its cached meta says so).
        candidate = runner.prepared.plan(t.target, t.params)
        artifact = runner.cache.load(candidate.build_key())
        assert artifact is not None and artifact.format == "onnx"
        assert artifact.meta["input_shape"] == [3, size or 32, size or 32]
        assert artifact.content_hash == t.artifact_hash
    # A quarter of the pixels: not slower (allowing for noise from a busy machine).
    assert by_size[16].latency_p50_ms <= 1.2 * by_size[0].latency_p50_ms, (
        by_size[16].latency_p50_ms,
        by_size[0].latency_p50_ms,
    )
