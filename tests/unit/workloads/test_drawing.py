"""The error gallery's drawing hooks: each task draws its own prediction of an image (a label,
boxes, a mask), and the gallery pairs fp32's drawing with the candidate's, worst change first."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from dashboards.gallery import changed
from workloads.data import Split, WorkloadData
from workloads.tasks import Classification, Detection, Segmentation
from workloads.tasks.detection import Detections

GREY = np.full((32, 32, 3), 128, np.uint8)


def _colourful(drawn: np.ndarray) -> int:
    """Pixels far from grey and from the caption's black and white."""
    rgb = drawn.astype(int)
    return int(np.sum(rgb.max(axis=2) - rgb.min(axis=2) > 60))


def test_a_classifier_is_drawn_with_its_label_and_confidence() -> None:
    split = Split(np.zeros((2, 1, 1, 1), np.float32), np.array([0, 1]), ids=("a", "b"))
    data = WorkloadData(None, split, split, 2, (1, 1, 1), True, ("cat", "dog"))
    logits = np.array([[3.0, 0.0], [3.0, 0.0]], np.float32)
    ev = Classification().evidence(logits, split, None, data)
    drawn = Classification().draw(GREY, ev, 1)
    assert drawn.shape[1] >= 160 and drawn.shape[0] > drawn.shape[1]  # enlarged, captioned
    assert np.any(drawn[-18:] > 200)  # the caption's white text


def test_a_detector_is_drawn_with_its_confident_boxes() -> None:
    truth = ({"boxes": np.array([[4.0, 4, 20, 20]]), "labels": np.array([1])},)
    infos = ({"image_id": 1, "orig_hw": (32, 32), "scale": (1.0, 1.0), "pad": (0.0, 0.0)},)
    split = Split(np.zeros((1, 3, 32, 32), np.float32), None, truth, infos, ("a.png",))
    data = WorkloadData(None, split, split, 1, (3, 32, 32), True, {1: "square"})
    dets = [Detections(np.array([[4.0, 4, 20, 20]], np.float32), np.array([0.9]), np.array([1]))]
    task = Detection(class_ids="category_id")
    ev = task.evidence(dets, split, None, data)
    assert _colourful(task.draw(GREY, ev, 0)) > 100
    nothing = task.evidence(
        [Detections(np.zeros((0, 4)), np.zeros(0), np.zeros(0))], split, None, data
    )
    assert _colourful(task.draw(GREY, nothing, 0)) == 0


def test_a_segmenter_is_drawn_with_its_mask_over_the_image() -> None:
    truth = (np.ones((16, 16), np.uint8),)
    split = Split(np.zeros((1, 3, 16, 16), np.float32), None, truth, ids=("a.png",))
    data = WorkloadData(None, split, split, 2, (3, 16, 16), True)
    task = Segmentation(num_classes=2)
    ev = task.evidence([np.ones((16, 16), np.uint8)], split, None, data)
    background = task.evidence([np.zeros((16, 16), np.uint8)], split, None, data)
    assert _colourful(task.draw(GREY, ev, 0)) > _colourful(task.draw(GREY, background, 0)) == 0


def test_the_gallery_pairs_fp32_and_the_candidate_worst_change_first() -> None:
    split = Split(np.zeros((4, 1, 1, 1), np.float32), np.zeros(4, int), ids=tuple("abcd"))
    data = WorkloadData(None, split, split, 2, (1, 1, 1), True)
    task = Classification()
    right, wrong = [3.0, 0.0], [0.0, 3.0]
    base = task.evidence(np.array([right, right, wrong, right], np.float32), split, None, data)
    cand = task.evidence(np.array([wrong, right, right, wrong], np.float32), split, None, data)
    tiles = changed(task, lambda i: GREY, base, cand, task.flip_threshold, ("cpu", 3))
    assert [(t.kind, t.image_id) for t in tiles] == [
        ("broken", "a"),
        ("broken", "d"),
        ("fixed", "c"),
    ]
    picture = Image.open(io.BytesIO(tiles[0].png))
    assert picture.width > 2 * 160 and tiles[0].file_name == "cpu-trial3-broken-a.png"


def test_a_pose_model_is_drawn_with_its_confident_keypoints() -> None:
    from workloads.tasks import Keypoints
    from workloads.tasks.keypoints import Poses

    kps = np.array([[[4.0, 4, 2], [20, 4, 2], [20, 20, 2], [4, 20, 2], [12, 12, 2]]])
    truth = ({"boxes": np.array([[4.0, 4, 20, 20]]), "labels": np.array([1]), "keypoints": kps},)
    infos = ({"image_id": 1, "orig_hw": (32, 32), "scale": (1.0, 1.0), "pad": (0.0, 0.0)},)
    split = Split(np.zeros((1, 3, 32, 32), np.float32), None, truth, infos, ("a.png",))
    data = WorkloadData(None, split, split, 1, (3, 32, 32), True, {1: "square"})
    task = Keypoints(oks_sigmas=[0.05] * 5, use_area=False, class_ids="category_id")
    box = np.array([[4.0, 4, 20, 20]], np.float32)
    found = task.evidence([Poses(box, np.array([0.9]), np.array([1]), kps)], split, None, data)
    nothing = task.evidence(
        [Poses(np.zeros((0, 4)), np.zeros(0), np.zeros(0), np.zeros((0, 5, 3)))],
        split,
        None,
        data,
    )
    assert found.score[0] == pytest.approx(1.0) and nothing.score[0] == 0.0
    assert _colourful(task.draw(GREY, found, 0)) > 100
    assert _colourful(task.draw(GREY, nothing, 0)) == 0


def test_points_are_drawn_where_the_letterboxed_model_input_has_them() -> None:
    from workloads.tasks.detection import to_input_pixels

    info = {"scale": (0.5, 0.25), "pad": (3.0, 4.0)}  # (sy, sx), (top, left)
    points = np.array([[[8.0, 10.0], [40.0, 20.0]]])
    assert to_input_pixels(points, info).tolist() == [[[6.0, 8.0], [14.0, 13.0]]]
    assert to_input_pixels(points, {}).tolist() == points.tolist()
