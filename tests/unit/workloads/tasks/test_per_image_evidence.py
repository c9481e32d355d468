"""Per-image evidence of the built-in tasks: what bootstrap intervals resample must be the
task's own metric on the resampled data set, checked against independent computations
(faster-coco-eval on a data set that repeats images, a confusion matrix, plain means)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from workloads.data import Split, WorkloadData
from workloads.tasks import Classification, Detection, Generic, Segmentation
from workloads.tasks._coco_boot import match, per_image_map, resampled_map
from workloads.tasks._coco_eval import detections, evaluate_bbox, ground_truth
from workloads.tasks.detection import Detections


def _scene(
    seed: int, n: int = 40, ties: bool = True
) -> tuple[list[dict[str, Any]], list[Detections]]:
    """Random boxes of three categories (a few crowd boxes), and detections near them with
    tied and untied scores, plus false positives."""
    rng = np.random.default_rng(seed)
    truth, dets = [], []
    for _ in range(n):
        k = int(rng.integers(0, 5))
        xy = rng.uniform(0, 150, (k, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(5, 50, (k, 2))], 1)
        labels = rng.integers(1, 4, k)
        truth.append({"boxes": boxes, "labels": labels, "iscrowd": rng.random(k) < 0.05})
        jitter = boxes + rng.normal(0, 4, boxes.shape)
        extra = rng.uniform(0, 150, (int(rng.integers(0, 4)), 2))
        d_boxes = np.concatenate([jitter, np.concatenate([extra, extra + 20], 1)])
        d_labels = np.concatenate([labels, rng.integers(1, 4, len(extra))])
        scores = rng.random(len(d_boxes))
        if ties:  # as an int8 model gives them
            scores = np.round(scores, 1)
        dets.append(Detections(d_boxes.astype(np.float32), scores, d_labels))
    return truth, dets


def _coco(truth: list[dict[str, Any]], dets: list[Detections], pick: np.ndarray) -> float:
    """faster-coco-eval's mAP of the data set that holds image ``pick[j]`` as image ``j``."""
    images = [(j + 1, 200, 200) for j in range(len(pick))]
    gt = ground_truth(
        images,
        [truth[i]["boxes"] for i in pick],
        [truth[i]["labels"] for i in pick],
        {1: "a", 2: "b", 3: "c"},
        [truth[i]["iscrowd"] for i in pick],
    )
    found = detections(
        [j + 1 for j in range(len(pick))],
        [dets[i].boxes for i in pick],
        [dets[i].scores for i in pick],
        [dets[i].labels for i in pick],
    )
    return evaluate_bbox(gt, found)["map"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_coco_map_of_the_split_equals_faster_coco_eval_tied_scores_included(seed: int) -> None:
    truth, dets = _scene(seed)
    n = len(truth)
    arrays = match(
        list(range(1, n + 1)), truth, [(d.boxes, d.scores, d.labels) for d in dets], [1, 2, 3]
    )
    got = resampled_map(arrays, np.ones((1, n)))
    assert got[0] == pytest.approx(_coco(truth, dets, np.arange(n)), abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_coco_map_of_a_resample_equals_faster_coco_eval_on_the_repeated_images(seed: int) -> None:
    """Exact where no two detections of one image and category tie (COCO then orders an
    image's copies' tied detections copy by copy, the resample interleaves them)."""
    truth, dets = _scene(seed, ties=False)
    n = len(truth)
    arrays = match(
        list(range(1, n + 1)), truth, [(d.boxes, d.scores, d.labels) for d in dets], [1, 2, 3]
    )
    pick = np.sort(np.random.default_rng(seed).integers(0, n, n))
    weights = np.stack([np.ones(n), np.bincount(pick, minlength=n)])
    got = resampled_map(arrays, weights)
    assert got[0] == pytest.approx(_coco(truth, dets, np.arange(n)), abs=1e-12)
    assert got[1] == pytest.approx(_coco(truth, dets, pick), abs=1e-12)


def test_an_images_own_map_is_coco_on_that_image_alone() -> None:
    truth, dets = _scene(4, n=8)
    arrays = match(
        list(range(1, 9)), truth, [(d.boxes, d.scores, d.labels) for d in dets], [1, 2, 3]
    )
    own = per_image_map(arrays)
    for i in range(8):
        if any(not c for c in truth[i]["iscrowd"]):
            assert own[i] == pytest.approx(_coco(truth, dets, np.array([i])), abs=1e-12)
        else:  # no box that counts: no score of its own
            assert np.isnan(own[i])


def test_detection_evidence_resamples_to_the_tasks_map() -> None:
    truth, dets = _scene(5, n=12)
    infos = tuple({"image_id": i + 1, "orig_hw": (200, 200), "file": f"{i}.png"} for i in range(12))
    split = Split(np.zeros((12, 3, 8, 8), np.float32), None, tuple(truth), infos)
    data = WorkloadData(None, split, split, 3, (3, 8, 8), True, {1: "a", 2: "b", 3: "c"})
    task = Detection(class_ids="category_id")
    ev = task.evidence(dets, split, None, data)
    assert ev.ids == tuple(f"{i}.png" for i in range(12))
    whole = task.quality(dets, split, None, data)["map"]
    assert task.resampled_quality(ev, np.ones((1, 12)))[0] == pytest.approx(whole, abs=1e-12)


def test_classification_evidence_marks_each_image_right_or_wrong() -> None:
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]], np.float32)
    split = Split(np.zeros((3, 1, 1, 1), np.float32), np.array([0, 0, 0]), ids=("a", "b", "c"))
    data = WorkloadData(None, split, split, 2, (1, 1, 1), True, ("cat", "dog"))
    ev = Classification().evidence(logits, split, None, data)
    assert ev.correct is not None and ev.correct.tolist() == [True, False, True]
    assert ev.predicted == ("cat", "dog", "cat") and ev.confidence[2] > ev.confidence[0] > 0.5
    got = Classification().resampled_quality(ev, np.array([[1, 1, 1], [0, 3, 1]]))
    assert got.tolist() == pytest.approx([2 / 3, 1 / 4])


def test_segmentation_evidence_resamples_as_one_confusion_matrix_over_repeated_images() -> None:
    rng = np.random.default_rng(0)
    truth = tuple(rng.integers(0, 3, (6, 5)).astype(np.uint8) for _ in range(4))
    preds = [np.where(rng.random(t.shape) < 0.7, t, rng.integers(0, 3, t.shape)) for t in truth]
    split = Split(np.zeros((4, 3, 6, 5), np.float32), None, truth, ids=tuple("abcd"))
    data = WorkloadData(None, split, split, 3, (3, 6, 5), True)
    task = Segmentation(num_classes=3)
    ev = task.evidence(preds, split, None, data)
    pick = np.array([0, 0, 2, 3, 3, 3])
    repeated = Split(np.zeros((6, 3, 6, 5), np.float32), None, tuple(truth[i] for i in pick))
    expected = task.quality([preds[i] for i in pick], repeated, None, data)["miou"]
    got = task.resampled_quality(ev, np.bincount(pick, minlength=4)[None, :].astype(float))
    assert got[0] == pytest.approx(expected, abs=1e-12)


def test_generic_evidence_is_the_cosine_of_each_image_to_fp32() -> None:
    rng = np.random.default_rng(0)
    ref = [rng.normal(size=(5, 4)), rng.normal(size=(5, 2, 2))]
    cand = [r + rng.normal(scale=0.3, size=r.shape) for r in ref]
    split = Split(np.zeros((5, 1, 1, 1), np.float32))
    data = WorkloadData(None, split, split, 0, (1, 1, 1), False)
    task = Generic()
    ev = task.evidence(cand, split, ref, data)
    whole = task.quality(cand, split, ref, data)["output_cosine"]
    assert task.resampled_quality(ev, np.ones((1, 5)))[0] == pytest.approx(whole, abs=1e-12)
    assert ev.ids == tuple(f"image/{i}" for i in range(5)) and np.all(ev.score < 1)


def test_coco_resampling_gives_the_same_map_in_chunks_and_for_fractional_weights(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whole multiplicities take a faster path (recall thresholds looked up per count): scaling
    every weight by a half changes no mAP but takes the general one; chunks of resamples change
    nothing either."""
    from workloads.tasks import _coco_boot

    truth, dets = _scene(7, n=30)
    arrays = match(
        list(range(1, 31)), truth, [(d.boxes, d.scores, d.labels) for d in dets], [1, 2, 3]
    )
    assert arrays["det_ig"].any()  # crowd boxes: ignored detections are taken off
    rng = np.random.default_rng(7)
    weights = np.stack([np.bincount(rng.integers(0, 30, 30), minlength=30) for _ in range(40)])
    whole = resampled_map(arrays, weights)
    assert np.ptp(whole) > 0.01
    np.testing.assert_allclose(resampled_map(arrays, weights * 0.5), whole, rtol=0, atol=1e-12)
    monkeypatch.setattr(_coco_boot, "CHUNK_CELLS", 1)
    np.testing.assert_array_equal(resampled_map(arrays, weights), whole)
