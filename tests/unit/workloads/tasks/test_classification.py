"""Classification: top-1 accuracy, fidelity to the fp32 logits, and the task's contract."""

from __future__ import annotations

import numpy as np
import pytest
from contracts.task_contract import TaskCase, TaskContract

from workloads.data import Split, WorkloadData
from workloads.tasks import Classification, Task
from workloads.tasks.classification import class_scores, quality_metrics


class TestClassificationContract(TaskContract):
    @pytest.fixture
    def task(self) -> Task:
        return Classification()

    @pytest.fixture
    def case(self) -> TaskCase:
        rng = np.random.default_rng(0)
        logits = rng.standard_normal((10, 4)).astype(np.float32)
        labels = rng.integers(0, 4, 10)
        split = Split(np.zeros((10, 3, 8, 8), np.float32), labels)
        data = WorkloadData(None, split, split, 4, (3, 8, 8), True, ("a", "b", "c", "d"))
        batches = [[logits[:6]], [logits[6:, :, None, None]]]  # a convolutional head too
        return TaskCase(batches, [[None] * 6, [None] * 4], split, data)


def test_quality_metrics_with_labels_and_reference() -> None:
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.5]], dtype=np.float32)
    ref = np.array([[2.5, 1.0], [0.0, 3.0], [0.0, 0.5]], dtype=np.float32)
    m = quality_metrics(logits, np.array([0, 1, 1]), ref)
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["top1_agreement"] == pytest.approx(2 / 3)
    assert m["max_abs_logit_diff"] == pytest.approx(1.0)
    assert m["mean_abs_logit_diff"] == pytest.approx(1.5 / 6)
    assert set(quality_metrics(logits, None, ref)) == {
        "top1_agreement",
        "max_abs_logit_diff",
        "mean_abs_logit_diff",
    }
    assert quality_metrics(logits, np.array([0, 1, 0]), None) == {"accuracy": 1.0}


def test_quality_metrics_reject_bad_outputs() -> None:
    with pytest.raises(ValueError, match="NaN"):
        quality_metrics(np.array([[np.nan, 1.0]]), None, None)
    with pytest.raises(ValueError, match="differ"):
        quality_metrics(np.zeros((2, 3)), None, np.zeros((2, 4)))


def test_per_class_accuracy_is_the_recall_of_each_named_class() -> None:
    logits = np.eye(3, dtype=np.float32)[[0, 1, 1, 2]]
    split = Split(np.zeros((4, 3, 2, 2), np.float32), np.array([0, 1, 2, 2]))
    data = WorkloadData(None, split, split, 3, (3, 2, 2), True, ("cat", "dog", "bird"))
    got = Classification().quality(logits, split, None, data)
    assert got["acc/cat"] == 1.0 and got["acc/dog"] == 1.0 and got["acc/bird"] == 0.5


def test_a_convolutional_head_counts_as_class_scores() -> None:
    assert class_scores(np.zeros((2, 10, 1, 1))).shape == (2, 10)
    assert class_scores(np.zeros((2, 10, 3))).shape == (2, 10, 3)


def test_the_protected_layer_is_the_last_linear_one() -> None:
    from torch import nn

    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    assert Classification().protected_layers(model) == [model[2]]
