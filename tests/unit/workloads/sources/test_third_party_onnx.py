"""ONNX models other tools export: channels-last inputs,
non-float inputs, convolutional heads, and models that are not classifiers at all (text
recognisers, backbones) through the generic task.

The models are tiny ``onnx.helper`` graphs (``tests/support/third_party_models.py``); builds and
evaluations run the farm's own worker code on real ONNX Runtime and OpenVINO sessions. One job
through ``farm run`` (Ray, the store) is marked ``slow``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import support.third_party_models as models
from support.images import write_images
from support.jobs import run_refused
from support.predict import predictions

from farm.errors import SpecError
from targets import RuntimeOptions
from workloads import load_workload

QUICK = {"warmup_s": 0.0, "warmup_iters": 1, "min_duration_s": 0.0, "min_samples": 4}
RUNTIMES = ("cpu-onnxruntime", "cpu-openvino")
#: The int8 build of each ONNX target.
QUANTIZER = {"cpu-onnxruntime": "quantize_ort", "cpu-openvino": "quantize_nncf"}


def evaluate_on(workload: Any, tmp_path: Path, target: str, int8: bool = False) -> dict[str, float]:
    """The workload's baseline (or its int8 build) evaluated on ``target`` as a trial does it:
    quality against the fp32 reference, then a (short) measurement."""
    from support.worker import build_here, evaluate_here

    source, data = workload.source_artifact(tmp_path), workload.data()
    reference = predictions(source, data.eval, workload.task)
    artifact = build_here(source, [(QUANTIZER[target], ())], data)[-1] if int8 else source
    options = RuntimeOptions(threads=1)
    result = evaluate_here(artifact, target, options, data, reference, QUICK, workload.task)
    assert result.measurement["p50_ms"] > 0
    return result.metrics


def refused_by_farm_run(
    tmp_path: Path, onnx: str, precision: list[str], capsys: pytest.CaptureFixture[str]
) -> str:
    """`farm run` of a one-target job on ``onnx``, refused (see :func:`_jobs.run_refused`)."""
    job = tmp_path / "job.toml"
    job.write_text(
        f'name = "third-party"\ntargets = ["cpu-onnxruntime"]\n[workload]\nonnx = "{onnx}"\n'
        f"[search]\ntrials_per_target = 2\nprecision = {precision}\nbatch_size = [1]\n"
    )
    return run_refused(job, capsys)


# -- channels-last inputs -------------------------------------------------------------------------


def test_a_channels_last_model_gets_its_data_in_its_own_layout(tmp_path: Path) -> None:
    models.nhwc(tmp_path / "model.onnx")
    workload = load_workload({"onnx": "model.onnx", "data": {"synthetic_samples": 6}}, tmp_path)
    assert workload.layout == "NHWC"
    assert workload.input_shape == (32, 32, 3) and workload.image_shape == (3, 32, 32)
    data = workload.data()
    assert data.layout == "NHWC" and data.image_size == (32, 32)
    assert data.eval.x.shape == (6, 32, 32, 3) and data.calib.x.shape == (6, 32, 32, 3)
    meta = workload.source_artifact(tmp_path).meta
    assert meta["layout"] == "NHWC" and meta["input_shape"] == [32, 32, 3]


def test_channels_last_images_are_the_channels_first_images_transposed(tmp_path: Path) -> None:
    """The same folder read for an NHWC and an NCHW model of the same size: the same pixels,
    only the axes differ (a channels-last model used to get its images resized to 32×3)."""
    models.nhwc(tmp_path / "nhwc.onnx")
    models.conv_head(tmp_path / "nchw.onnx")
    write_images(tmp_path / "val", 20, classes=10)
    data = {"eval": "val", "resize": 32, "crop": 32}
    last = load_workload({"onnx": "nhwc.onnx", "data": data}, tmp_path).data()
    first = load_workload({"onnx": "nchw.onnx", "data": data}, tmp_path).data()
    assert last.eval.x.shape[1:] == (32, 32, 3)
    np.testing.assert_array_equal(last.eval.x, first.eval.x.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(last.eval.y, first.eval.y)


def test_a_layout_the_dims_contradict_or_an_unknown_one_is_refused(tmp_path: Path) -> None:
    models.nhwc(tmp_path / "model.onnx")
    for layout, expected in [
        ("NCHW", r"`workload.layout`: expected 'NHWC', the layout of the input dims .*got 'NCHW'"),
        ("nhwc", r"`workload.layout`: expected one of \['NCHW', 'NHWC'\], got 'nhwc'"),
    ]:
        with pytest.raises(SpecError, match=expected):
            load_workload({"onnx": "model.onnx", "layout": layout}, tmp_path)


@pytest.mark.parametrize("target", RUNTIMES)
def test_a_channels_last_model_runs_and_quantizes_on_both_onnx_targets(
    tmp_path: Path, target: str
) -> None:
    models.nhwc(tmp_path / "model.onnx")
    workload = load_workload({"onnx": "model.onnx", "data": {"synthetic_samples": 8}}, tmp_path)
    fp32 = evaluate_on(workload, tmp_path, target)
    assert fp32["top1_agreement"] == 1.0 and fp32["max_abs_logit_diff"] < 1e-3
    int8 = evaluate_on(workload, tmp_path, target, int8=True)
    assert 0.0 < int8["mean_abs_logit_diff"] < 0.2  # quantized: close, not identical


def test_corrupting_channels_last_images_equals_corrupting_them_channels_first() -> None:
    from workloads import Split
    from workloads.kpis.corruptions import corrupt_split

    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 3, 24, 24)).astype(np.float32)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    first = corrupt_split(Split(x), "motion_blur", 3, mean, std, seed=1)
    last = corrupt_split(
        Split(np.ascontiguousarray(x.transpose(0, 2, 3, 1))),
        "motion_blur",
        3,
        mean,
        std,
        seed=1,
        channels_last=True,
    )
    assert not np.allclose(first.x, x)  # it did corrupt
    np.testing.assert_allclose(last.x, first.x.transpose(0, 2, 3, 1), atol=1e-6)


# -- inputs the farm cannot feed -------------------------------------------------------------------


@pytest.mark.parametrize("elem_type", ["uint8", "float16"])
def test_a_non_float32_input_is_refused_by_farm_run_naming_the_input(
    tmp_path: Path, elem_type: str, capsys: pytest.CaptureFixture[str]
) -> None:
    models.typed_input(tmp_path / "model.onnx", elem_type)
    err = refused_by_farm_run(tmp_path, "model.onnx", ["fp32"], capsys)
    assert "field `workload.onnx`: expected a float32 image input" in err
    assert f"{tmp_path / 'model.onnx'}: input 'image' is {elem_type}" in err


# -- models that come quantized -------------------------------------------------------------------


def test_an_already_quantized_model_is_measured_as_given_not_quantized_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A QDQ model (here: the farm's own int8 build of a float model, as a user would bring an
    int8 export): quantizing it again failed on ONNX Runtime with "two nodes with same node
    name" and re-quantized it silently with NNCF."""
    from support.worker import build_here, evaluate_here

    models.conv_head(tmp_path / "float.onnx")
    section = {"onnx": "float.onnx", "data": {"synthetic_samples": 8}}
    float_model = load_workload(section, tmp_path)
    (int8,) = build_here(
        float_model.source_artifact(tmp_path), [("quantize_ort", ())], float_model.data(), 0
    )
    (tmp_path / "int8.onnx").write_bytes(int8.files["model.onnx"])
    workload = load_workload({**section, "onnx": "int8.onnx"}, tmp_path)
    assert workload.prequantized > 0 and float_model.prequantized == 0

    err = refused_by_farm_run(tmp_path, "int8.onnx", ["fp32", "int8"], capsys)
    assert "field `search.precision`: expected no int8: int8.onnx is already quantized" in err

    source, data = workload.source_artifact(tmp_path), workload.data()
    reference = predictions(source, data.eval, workload.task)
    for target in RUNTIMES:  # as given, and labelled with what it runs
        options = RuntimeOptions(threads=1)
        result = evaluate_here(source, target, options, data, reference, QUICK, workload.task)
        assert result.precision_actual == "int8+fp32", target


# -- old opsets ----------------------------------------------------------------------------------


def test_an_old_opset_model_is_converted_before_ort_quantizes_it(tmp_path: Path) -> None:
    """Per-channel QDQ needs opset 13: quantizing an opset-9 graph as it is wrote a model ONNX
    Runtime refused to load ("This is an invalid model ... DequantizeLinear")."""
    import onnx
    from support.worker import build_here

    models.old_opset(tmp_path / "model.onnx", opset=9)
    workload = load_workload({"onnx": "model.onnx", "data": {"synthetic_samples": 8}}, tmp_path)
    (artifact,) = build_here(
        workload.source_artifact(tmp_path), [("quantize_ort", ())], workload.data(), 0
    )
    assert artifact.meta["opset_upgraded"] == "9->13"
    model = onnx.load_from_string(artifact.files["model.onnx"])
    assert {o.version for o in model.opset_import if o.domain in ("", "ai.onnx")} == {13}
    int8 = evaluate_on(workload, tmp_path, "cpu-onnxruntime", int8=True)
    assert int8["top1_agreement"] == 1.0 and 0.0 < int8["mean_abs_logit_diff"] < 0.1


# -- classifier heads ----------------------------------------------------------------------------


def test_logits_from_a_convolutional_head_count_as_class_scores(tmp_path: Path) -> None:
    models.conv_head(tmp_path / "model.onnx")
    workload = load_workload({"onnx": "model.onnx", "data": {"synthetic_samples": 8}}, tmp_path)
    assert workload.num_classes == 10
    metrics = evaluate_on(workload, tmp_path, "cpu-onnxruntime")
    assert metrics["top1_agreement"] == 1.0


def test_a_backbone_run_as_a_classifier_is_told_about_the_generic_task(tmp_path: Path) -> None:
    models.backbone(tmp_path / "model.onnx")
    workload = load_workload({"onnx": "model.onnx", "data": {"synthetic_samples": 4}}, tmp_path)
    with pytest.raises(ValueError, match=r'class scores .* set `task = "generic"`'):
        predictions(workload.source_artifact(tmp_path), workload.data().eval, workload.task)


# -- the generic task ------------------------------------------------------------------------------


@pytest.mark.parametrize("target", RUNTIMES)
def test_a_text_recognizer_is_judged_by_its_outputs_fidelity(tmp_path: Path, target: str) -> None:
    models.text_recognizer(tmp_path / "model.onnx")
    section = {
        "onnx": "model.onnx",
        "task": "generic",
        "input_size": [32, 96],
        "data": {"synthetic_samples": 8},
    }
    workload = load_workload(section, tmp_path)
    assert workload.input_shape == (3, 32, 96)
    fp32 = evaluate_on(workload, tmp_path, target)
    assert fp32["output_cosine"] == pytest.approx(1.0, abs=1e-6)
    assert fp32["output_rel_error"] < 1e-4
    int8 = evaluate_on(workload, tmp_path, target, int8=True)
    assert 0.9 < int8["output_cosine"] < 1.0 and int8["output_rel_error"] > 0.0


def test_a_backbone_with_two_feature_maps_is_judged_by_its_worst_output(tmp_path: Path) -> None:
    models.backbone(tmp_path / "model.onnx")
    section = {"onnx": "model.onnx", "task": "generic", "data": {"synthetic_samples": 4}}
    workload = load_workload(section, tmp_path)
    data, task = workload.data(), workload.task
    reference = predictions(workload.source_artifact(tmp_path), data.eval, task, batch=4)
    assert [r.shape for r in reference] == [(4, 16, 32, 32), (4, 32, 16, 16)]
    noisy = [reference[0], reference[1] + np.random.default_rng(0).normal(0, 1, reference[1].shape)]
    worse = task.quality(noisy, data.eval, reference, data)
    assert worse["output_cosine"] < 0.99 and worse["max_abs_output_diff"] > 1.0
    assert task.quality(reference, data.eval, reference, data)["output_cosine"] == 1.0


def test_a_sequence_first_output_is_refused_for_the_generic_task(tmp_path: Path) -> None:
    models.text_recognizer(tmp_path / "model.onnx", sequence_first=True)
    section = {"onnx": "model.onnx", "task": "generic", "input_size": [32, 96]}
    with pytest.raises(SpecError, match=r"output 'ctc' has dims \['T', 'N', 37\]") as err:
        load_workload(section, tmp_path)
    assert err.value.field == "workload.task"


def test_a_generic_model_reads_a_flat_image_folder(tmp_path: Path) -> None:
    models.backbone(tmp_path / "model.onnx")
    write_images(tmp_path / "images", 10)
    section = {"onnx": "model.onnx", "task": "generic", "data": {"eval": "images"}}
    data = load_workload(section, tmp_path).data()
    assert not data.has_labels
    assert data.eval.x.shape[1:] == (3, 64, 64) and len(data.eval) + len(data.calib) == 10
    with pytest.raises(SpecError, match=r"`workload.num_classes`: expected no `num_classes`"):
        load_workload({**section, "num_classes": 3}, tmp_path)


@pytest.mark.slow
def test_a_text_recognizer_job_runs_on_both_targets(tmp_path: Path) -> None:
    """`farm run` as a user runs it (Ray, the store): fp32 and int8 on both ONNX targets, the
    store's quality column is the generic task's primary metric."""
    from farm.cli import main
    from farm.store.db import Store

    models.text_recognizer(tmp_path / "ocr.onnx")
    job = tmp_path / "job.toml"
    job.write_text(
        """
name = "ocr"
targets = ["cpu-onnxruntime", "cpu-openvino"]
[workload]
onnx = "ocr.onnx"
task = "generic"
input_size = [32, 96]
[workload.data]
synthetic_samples = 16
[search]
trials_per_target = 2
precision = ["fp32", "int8"]
batch_size = [1]
threads = [1]
[constraints]
max_quality_drop = 0.5
[measurement]
min_duration_s = 0.0
min_samples = 8
warmup_s = 0.0
"""
    )
    db = tmp_path / "farm.duckdb"
    assert main(["run", str(job), "--db", str(db)]) == 0
    store = Store(db)
    trials = store.trials(store.jobs()[0].job_id)
    assert {(t.target, t.status) for t in trials} == {
        ("cpu-onnxruntime", "completed"),
        ("cpu-openvino", "completed"),
    }
    assert len(trials) == 4
    for t in trials:
        if t.precision_actual == "fp32" or t.precision_actual == "f32":
            assert t.quality == pytest.approx(1.0, abs=1e-6)
        assert 0.9 < t.quality <= 1.0 + 1e-6
