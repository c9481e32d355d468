"""Models PaddlePaddle's exporter (Paddle2ONNX) wrote, as the ``rapidocr-onnxruntime`` wheel
ships them (installed without its dependencies by ``make``; skipped where it is missing): a
dynamic dimension written as ``dim_value = -1`` is dynamic, so PP-OCR's direction classifier
(input ``[-1, 3, ?, ?]``, output ``[-1, 2]``) runs as a classifier at ``input_size = [48, 192]``
and as ``generic``, fp32 and int8, on both ONNX targets."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from farm.errors import SpecError
from workloads import load_workload
from workloads.demos.ocr import model_file

from .test_third_party_onnx import RUNTIMES, evaluate_on

CLASSIFIER = "ch_ppocr_mobile_v2.0_cls_infer.onnx"


@pytest.fixture
def classifier(tmp_path: Path) -> Path:
    try:
        shutil.copy(model_file(CLASSIFIER), tmp_path / "cls.onnx")
    except SpecError:
        pytest.skip("the rapidocr-onnxruntime wheel is not installed")
    return tmp_path


def _workload(root: Path, task: str) -> object:
    section = {
        "onnx": "cls.onnx",
        "task": task,
        "input_size": [48, 192],
        "data": {"synthetic_samples": 8},
    }
    return load_workload(section, root, source="job.toml")


def test_a_minus_one_batch_is_dynamic(classifier: Path) -> None:
    wl = _workload(classifier, "classification")
    assert wl.facts.input_dims == ("?", 3, "?", "?")  # type: ignore[attr-defined]
    assert wl.input_shape == (3, 48, 192) and wl.num_classes == 2  # type: ignore[attr-defined]


@pytest.mark.parametrize("target", RUNTIMES)
def test_the_direction_classifier_runs_as_a_classifier(classifier: Path, target: str) -> None:
    got = evaluate_on(_workload(classifier, "classification"), classifier, target)
    assert got["top1_agreement"] == 1.0


@pytest.mark.parametrize("target", RUNTIMES)
def test_the_direction_classifier_runs_as_generic_and_quantizes(
    classifier: Path, target: str
) -> None:
    wl = _workload(classifier, "generic")
    assert evaluate_on(wl, classifier, target)["output_cosine"] == pytest.approx(1.0, abs=1e-6)
    assert 0.95 < evaluate_on(wl, classifier, target, int8=True)["output_cosine"] < 1.0
