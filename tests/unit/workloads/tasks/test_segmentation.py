"""Segmentation: mIoU against an independent confusion matrix, label maps mapped back to the
original image, and the task's contract."""

from __future__ import annotations

import numpy as np
import pytest
from contracts.task_contract import TaskCase, TaskContract

from farm._validate import Fields
from farm.errors import SpecError
from workloads.data import Split, WorkloadData
from workloads.tasks import ModelFacts, Segmentation, Task
from workloads.tasks.segmentation import confusion, to_original


class TestSegmentationContract(TaskContract):
    @pytest.fixture
    def task(self) -> Task:
        return Segmentation(num_classes=3)

    @pytest.fixture
    def case(self) -> TaskCase:
        rng = np.random.default_rng(0)
        scores = rng.standard_normal((6, 3, 8, 10)).astype(np.float32)
        # ground truth at the original size (16 × 20): the decoded maps are scaled back to it
        truth = [rng.integers(0, 3, (16, 20)).astype(np.uint8) for _ in range(6)]
        truth[0][:2] = 255  # ignored pixels
        infos = tuple({"orig_hw": (16, 20), "image_id": i} for i in range(6))
        split = Split(np.zeros((6, 3, 8, 10), np.float32), None, tuple(truth), infos)
        data = WorkloadData(None, split, split, 3, (3, 8, 10), True, ("bg", "a", "b"))
        batches = [[scores[:4]], [scores[4:]]]
        return TaskCase(
            batches, [list(infos[:4]), list(infos[4:])], split, data, {}, ModelFacts(num_classes=3)
        )


def test_miou_equals_an_independent_confusion_matrix() -> None:
    from sklearn.metrics import confusion_matrix

    rng = np.random.default_rng(0)
    truth = [rng.integers(0, 4, (20, 30)).astype(np.uint8) for _ in range(5)]
    truth[0][:3] = 255  # ignored pixels
    pred = [np.where(rng.random(t.shape) < 0.7, t % 4, rng.integers(0, 4, t.shape)) for t in truth]
    task = Segmentation(num_classes=4)
    split = Split(np.zeros((5, 3, 20, 30), np.float32), truth=tuple(truth))
    data = WorkloadData(None, split, split, 4, (3, 20, 30), True, ("bg", "a", "b", "c"))
    got = task.quality([p.astype(np.uint8) for p in pred], split, None, data)
    t = np.concatenate([x.ravel() for x in truth])
    p = np.concatenate([x.ravel() for x in pred])
    keep = t != 255
    cm = confusion_matrix(t[keep], p[keep], labels=[0, 1, 2, 3])
    iou = np.diag(cm) / (cm.sum(0) + cm.sum(1) - np.diag(cm))
    assert got["miou"] == pytest.approx(iou.mean(), abs=1e-12)
    assert got["pixel_accuracy"] == pytest.approx(np.trace(cm) / cm.sum(), abs=1e-12)
    assert got["iou/b"] == pytest.approx(iou[2], abs=1e-12)
    np.testing.assert_array_equal(confusion(pred, truth, 4), cm)


def test_a_label_map_is_scaled_back_to_the_original_image_by_nearest_neighbour() -> None:
    label_map = np.array([[0, 1], [2, 3]], dtype=np.uint8)
    back = to_original(label_map, {"orig_hw": (4, 6)})
    assert back.shape == (4, 6)
    np.testing.assert_array_equal(back[:2, :3], 0)
    np.testing.assert_array_equal(back[2:, 3:], 3)


def test_the_class_count_comes_from_the_model_source() -> None:
    section = Fields({"task": "segmentation"}, "job.toml", "workload")
    task = Segmentation.from_section(section, facts=ModelFacts(num_classes=5))
    assert task == Segmentation(num_classes=5)
    with pytest.raises(SpecError) as err:
        Segmentation.from_section(section, facts=ModelFacts())
    assert err.value.field == "workload.num_classes" and err.value.path == "job.toml"
