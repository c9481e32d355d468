"""Failures that explain themselves: a failed trial names its step, its transform or runtime,
and keeps the runtime's own message."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from farm.artifact import Artifact
from farm.errors import StepError, TrialError
from farm.measure.bench import explain, trial_step
from farm.worker.build import build, resolve
from farm.worker.evaluate import EvaluationRequest, evaluate
from targets import get_target, runtime_class
from targets.base import RuntimeOptions
from workloads import Split, WorkloadData
from workloads.tasks import Classification


def test_a_step_error_survives_the_trip_back_to_the_driver() -> None:
    """Ray pickles a task's exception; a StepError must come back whole (a broken pickle made
    the driver treat a trial's own failure as a system failure and retry it)."""
    err = pickle.loads(pickle.dumps(StepError("quantize", "quantize_ort", "node /conv: bad")))
    assert isinstance(err, TrialError) and err.step == "quantize"
    assert str(err) == "quantize failed (quantize_ort): node /conv: bad"


def test_trial_step_names_the_step_and_collapses_the_runtime_message() -> None:
    with (
        pytest.raises(StepError) as caught,
        trial_step("compile", "openvino 2026 on cpu-openvino"),
    ):
        raise RuntimeError("Exception from src/core:\n   Node Conv_3\n\n   unsupported  ")
    assert str(caught.value) == (
        "compile failed (openvino 2026 on cpu-openvino): RuntimeError: Exception from "
        "src/core: Node Conv_3 unsupported"
    )
    assert explain(ValueError()) == "ValueError"


def _data() -> WorkloadData:
    x = np.zeros((4, 3, 8, 8), np.float32)
    split = Split(x, np.zeros(4, np.int64))
    return WorkloadData(None, split, split, 2, (3, 8, 8), True)


def test_a_failing_build_names_the_step_and_the_transform() -> None:
    broken = Artifact("onnx", {"model.onnx": b"not an onnx model"}, {"input_shape": [3, 8, 8]})
    with pytest.raises(StepError) as caught:
        build(broken, resolve([("quantize_ort", ())]), _data(), 0, Classification())
    assert str(caught.value).startswith("quantize failed (quantize_ort): ")


def test_a_failing_compile_names_the_runtime_and_target() -> None:
    broken = Artifact("onnx", {"model.onnx": b"not an onnx model"}, {"input_shape": [3, 8, 8]})
    with pytest.raises(StepError) as caught:
        target = get_target("cpu-onnxruntime")
        request = EvaluationRequest(
            target, runtime_class(target.runtime), RuntimeOptions(), Classification()
        )
        evaluate(request, broken, _data(), None)
    text = str(caught.value)
    assert text.startswith("compile failed (onnxruntime ") and "on cpu-onnxruntime" in text
