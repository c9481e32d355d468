"""Keypoints: OKS mAP equal to pycocotools (two keypoint sets, their own sigmas), the three output
conventions decoded and mapped back through the letterbox, the sigma rules, per-image evidence
whose resampled kp_map is the task's kp_map, and the task's contract for each convention."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
from contracts.task_contract import TaskCase, TaskContract

from farm._validate import Fields
from farm.errors import SpecError
from workloads.data import Split, WorkloadData
from workloads.tasks import Keypoints, ModelFacts, Task, make_task
from workloads.tasks import _oks_eval as oks
from workloads.tasks.keypoints import Poses, to_original

CATEGORIES = {1: "person", 2: "hand"}
#: A second keypoint set with its own sigmas (five points: the corners and the centre of a box).
FIVE_SIGMAS = (0.05, 0.05, 0.05, 0.05, 0.1)


def _objects(rng: np.random.Generator, k: int, n_images: int) -> list[dict[str, Any]]:
    """Per image 1–3 objects of categories 1–2 with k keypoints inside their box; some
    keypoints unlabelled (v = 0), some hidden (v = 1), an occasional object with none labelled,
    some with no ``area``."""
    out = []
    for _ in range(n_images):
        n = int(rng.integers(1, 4))
        xy = rng.uniform(0, 100, (n, 2))
        wh = rng.uniform(30, 80, (n, 2))
        boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
        kps = np.zeros((n, k, 3))
        kps[..., :2] = xy[:, None] + rng.uniform(0, 1, (n, k, 2)) * wh[:, None]
        kps[..., 2] = rng.choice([0, 1, 2], (n, k), p=[0.15, 0.15, 0.7])
        if rng.uniform() < 0.2:
            kps[0, :, 2] = 0
        area = np.where(rng.uniform(0, 1, n) < 0.3, np.nan, wh.prod(1) * 0.8)
        labels = rng.integers(1, 3, n)
        out.append({"boxes": boxes, "labels": labels, "keypoints": kps, "area": area})
    return out


def _predictions(rng: np.random.Generator, truth: list[dict[str, Any]]) -> list[Poses]:
    """Noisy copies of the objects (sometimes missed, sometimes the wrong class) plus false
    positives, with random scores."""
    out = []
    for t in truth:
        kps = t["keypoints"].copy()
        kps[..., :2] += rng.normal(0, rng.uniform(0.5, 4), kps[..., :2].shape)
        keep = rng.uniform(0, 1, len(kps)) < 0.85
        extra = int(rng.integers(0, 3))
        fake = rng.uniform(0, 150, (extra, kps.shape[1], 3))
        kps = np.concatenate([kps[keep], fake]).astype(np.float32)
        labels = np.concatenate([t["labels"][keep], rng.integers(1, 3, extra)])
        boxes = np.concatenate([kps[..., :2].min(1), kps[..., :2].max(1)], 1)
        scores = rng.uniform(0, 1, len(kps)).astype(np.float32)
        out.append(Poses(boxes, scores, labels.astype(np.int64), kps))
    return out


def _split(truth: list[dict[str, Any]]) -> tuple[Split, WorkloadData]:
    n = len(truth)
    infos = tuple(
        {"image_id": i + 1, "scale": (1.0, 1.0), "pad": (0.0, 0.0), "orig_hw": (200, 240)}
        for i in range(n)
    )
    ids = tuple(f"img{i}.png" for i in range(n))
    split = Split(np.zeros((n, 3, 8, 8), np.float32), None, tuple(truth), infos, ids)
    return split, WorkloadData(None, split, split, 2, (3, 8, 8), True, dict(CATEGORIES))


def _pycocotools(truth: list[dict[str, Any]], preds: list[Poses], sigmas: Any, use_area: bool):
    """pycocotools' keypoint stats on the same documents the farm builds."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images = [(i + 1, 200, 240) for i in range(len(truth))]
    gt = oks.ground_truth(images, truth, CATEGORIES, use_area)
    dets = oks.results(
        [i for i, _, _ in images],
        [p.keypoints for p in preds],
        [p.scores for p in preds],
        [p.labels for p in preds],
    )
    coco = COCO()
    coco.dataset = copy.deepcopy(gt)
    coco.createIndex()
    ev = COCOeval(coco, coco.loadRes(copy.deepcopy(dets)), "keypoints")
    ev.params.kpt_oks_sigmas = np.asarray(sigmas)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return ev.stats


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("k", "sigmas"), [(17, oks.COCO_SIGMAS), (5, FIVE_SIGMAS)])
def test_kp_map_equals_pycocotools(seed: int, k: int, sigmas: tuple[float, ...]) -> None:
    """The farm scores keypoints with faster-coco-eval; pycocotools gives the same numbers."""
    rng = np.random.default_rng(seed)
    truth = _objects(rng, k, 12)
    preds = _predictions(rng, truth)
    split, data = _split(truth)
    task = Keypoints(oks_sigmas=None if k == 17 else sigmas)
    got = task.quality(preds, split, None, data)
    stats = _pycocotools(truth, preds, sigmas, True)
    for name, i in (("kp_map", 0), ("kp_map50", 1), ("kp_map75", 2), ("kp_ar", 5)):
        assert got[name] == pytest.approx(stats[i], abs=1e-9), name
    assert 0.05 < got["kp_map"] < 0.95  # the curve is exercised, not a trivial 0 or 1


def test_without_area_the_box_stands_for_it_as_pycocotools_is_told() -> None:
    rng = np.random.default_rng(5)
    truth = _objects(rng, 5, 10)
    preds = _predictions(rng, truth)
    split, data = _split(truth)
    got = Keypoints(oks_sigmas=FIVE_SIGMAS, use_area=False).quality(preds, split, None, data)
    assert got["kp_map"] == pytest.approx(_pycocotools(truth, preds, FIVE_SIGMAS, False)[0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_evidence_with_a_row_of_ones_gives_kp_map_exactly(seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth = _objects(rng, 5, 14)
    preds = _predictions(rng, truth)
    split, data = _split(truth)
    task = Keypoints(oks_sigmas=FIVE_SIGMAS, outputs="yolo", class_ids="category_id")
    ev = task.evidence(preds, split, None)
    assert ev.ids == split.ids
    whole = task.resampled_quality(ev, np.ones((1, len(split))))
    assert whole[0] == task.quality(preds, split, None, data)["kp_map"]
    # a resample that drops images changes the number; one that doubles every image does not
    # change AP (every count doubles)
    w = np.ones((3, len(split)))
    w[1, ::2] = 0
    w[2] = 2
    again = task.resampled_quality(ev, w)
    assert again[0] == whole[0] and again[1] != whole[0]
    assert again[2] == pytest.approx(whole[0])
    assert ev.score.shape == (len(split),) and ((ev.score >= 0) & (ev.score <= 1)).all()


def test_evidence_without_labels_resamples_kp_map_vs_fp32() -> None:
    rng = np.random.default_rng(4)
    truth = _objects(rng, 5, 8)
    ref = _predictions(rng, truth)
    cand = [Poses(p.boxes, p.scores, p.labels, p.keypoints + 1.5) for p in ref]
    split, _ = _split(truth)
    unlabelled = Split(split.x, None, None, split.info, split.ids)
    data = WorkloadData(None, unlabelled, unlabelled, 2, (3, 8, 8), False)
    task = Keypoints(oks_sigmas=FIVE_SIGMAS)
    ev = task.evidence(cand, unlabelled, ref)
    got = task.resampled_quality(ev, np.ones((1, len(unlabelled))))[0]
    assert got == task.quality(cand, unlabelled, ref, data)["kp_map_vs_fp32"] < 1.0


# -- sigmas ---------------------------------------------------------------------------------------


def _make(section: dict[str, Any], facts: ModelFacts | None = None) -> Task:
    return make_task(
        "keypoints", Fields({"task": "keypoints", **section}, "job.toml", "workload"), facts
    )


def test_a_17_keypoint_model_defaults_to_cocos_sigmas() -> None:
    task = _make({"outputs": "yolo"}, ModelFacts(metadata={"kpt_shape": "[17, 3]"}))
    assert isinstance(task, Keypoints) and task.sigmas(17) == oks.COCO_SIGMAS


def test_another_keypoint_count_without_sigmas_is_refused_naming_the_field() -> None:
    with pytest.raises(SpecError, match=r"workload\.oks_sigmas.*5 sigmas"):
        _make({"outputs": "yolo"}, ModelFacts(metadata={"kpt_shape": "[5, 3]"}))


def test_sigmas_of_the_wrong_length_are_refused_naming_the_field() -> None:
    with pytest.raises(SpecError, match=r"workload\.oks_sigmas.*5 sigmas"):
        _make(
            {"outputs": "yolo", "oks_sigmas": [0.1] * 4},
            ModelFacts(metadata={"kpt_shape": "[5, 3]"}),
        )
    with pytest.raises(SpecError, match=r"workload\.oks_sigmas"):
        _make({"outputs": "yolo", "oks_sigmas": [0.1, -0.1]})


def test_check_outputs_refuses_sigmas_that_do_not_fit_the_model_or_the_data() -> None:
    truth = _objects(np.random.default_rng(0), 5, 2)
    _, data = _split(truth)
    table = np.zeros((1, 4, 6 + 15), np.float32)  # end2end, 5 keypoints
    with pytest.raises(ValueError, match=r"workload\.oks_sigmas.*5 sigmas"):
        Keypoints(outputs="end2end").check_outputs([table], "the model")
    with pytest.raises(ValueError, match=r"workload\.oks_sigmas.*5 sigmas"):
        Keypoints(outputs="end2end", oks_sigmas=(0.1,) * 4).check_outputs([table], "the model")
    Keypoints(outputs="end2end", oks_sigmas=FIVE_SIGMAS).check_outputs([table], "m", data)
    seventeen = np.zeros((1, 4, 6 + 51), np.float32)
    with pytest.raises(ValueError, match="predicts 17 keypoints per object but the annotations"):
        Keypoints(outputs="end2end").check_outputs([seventeen], "the model", data)


# -- decoding -------------------------------------------------------------------------------------


def test_yolo_decode_reads_k_from_metadata_applies_nms_and_maps_keypoints_back() -> None:
    facts = ModelFacts(metadata={"kpt_shape": "[2, 3]", "names": "{0: 'a', 1: 'b'}"})
    task = _make({"outputs": "yolo", "oks_sigmas": [0.1, 0.1], "score_threshold": 0.25}, facts)
    head = np.array(
        [
            [20, 21, 60, 10],  # cx
            [20, 20, 40, 10],  # cy
            [10, 10, 8, 4],  # w
            [10, 10, 8, 4],  # h
            [0.9, 0.8, 0.1, 0.2],  # class 0
            [0.1, 0.1, 0.7, 0.1],  # class 1
            [16, 17, 58, 0],  # keypoint 0: x, y, v
            [18, 18, 38, 0],
            [0.9, 0.9, 0.8, 0],
            [24, 25, 62, 0],  # keypoint 1
            [22, 22, 42, 0],
            [0.5, 0.5, 0.4, 0],
        ],
        dtype=np.float32,
    )[None]
    info = {"scale": (0.5, 0.5), "pad": (4.0, 0.0), "orig_hw": (100, 200)}
    (pose,) = task.decode([head], [info])
    assert pose.labels.tolist() == [0, 1] and pose.scores.tolist() == pytest.approx([0.9, 0.7])
    np.testing.assert_allclose(pose.boxes[0], [30, 22, 50, 42])
    np.testing.assert_allclose(pose.keypoints[0], [[32, 28, 0.9], [48, 36, 0.5]])
    np.testing.assert_allclose(pose.keypoints[1], [[116, 68, 0.8], [124, 76, 0.4]])


def test_end2end_decode_keeps_the_best_above_the_threshold() -> None:
    task = Keypoints(outputs="end2end", oks_sigmas=(0.1,), score_threshold=0.3, class_ids="index")
    table = np.array(
        [
            [
                [0, 0, 10, 10, 0.2, 0, 5, 5, 1],
                [1, 1, 9, 9, 0.8, 1, 4, 6, 1],
                [2, 2, 8, 8, 0.9, 0, 3, 3, 0],
            ]
        ],
        np.float32,
    )
    (pose,) = task.decode([table], [None])
    assert pose.scores.tolist() == pytest.approx([0.9, 0.8]) and pose.labels.tolist() == [0, 1]
    np.testing.assert_allclose(pose.keypoints[:, 0], [[3, 3, 0], [4, 6, 1]])


def test_letterbox_round_trip_of_keypoints() -> None:
    from PIL import Image

    from workloads.datasets.dense import Preprocess

    pre = Preprocess((64, 64), letterbox=True, mean=(0, 0, 0), std=(1, 1, 1))
    _, info = pre(Image.new("RGB", (200, 100)))
    kps = np.array([[[40.0, 30.0, 2.0], [120.0, 90.0, 1.0]]], np.float32)
    shifted = kps.copy()
    shifted[..., :2] = kps[..., :2] * 0.32 + np.array([0, 16], np.float32)
    box = np.array([[0, 16, 64, 48]], np.float32)
    back = to_original(Poses(box, np.ones(1), np.zeros(1, np.int64), shifted), info)
    np.testing.assert_allclose(back.keypoints, kps, rtol=1e-5)


# -- the contract, per convention -----------------------------------------------------------------


def _case(outputs: str, seed: int) -> TaskCase:
    rng = np.random.default_rng(seed)
    truth = _objects(rng, 5, 6)
    split, data = _split(truth)
    infos = list(split.info or ())
    section: dict[str, Any] = {"outputs": outputs, "oks_sigmas": list(FIVE_SIGMAS)}
    preds = _predictions(rng, truth)
    if outputs == "boxes_scores_labels_keypoints":
        batches = [
            [
                p.boxes[None],
                p.scores[None],
                p.labels[None],
                p.keypoints[None],
                p.keypoints[None, ..., 2],
            ]
            for p in preds
        ]
        return TaskCase(batches, [[i] for i in infos], split, data, section)
    section["class_ids"] = "category_id"
    rows = []
    for p in preds:
        if outputs == "end2end":
            row = np.zeros((6, 6 + 15), np.float32)
            n = min(len(p), 6)
            row[:n, :4], row[:n, 4], row[:n, 5] = p.boxes[:n], p.scores[:n], p.labels[:n]
            row[:n, 6:] = p.keypoints[:n].reshape(n, 15)
        else:  # yolo: 2 classes (label ids 1, 2 → rows for classes 0..2), anchors = detections
            row = np.zeros((4 + 3 + 15, 8), np.float32)
            n = min(len(p), 8)
            row[:2, :n] = ((p.boxes[:n, :2] + p.boxes[:n, 2:]) / 2).T
            row[2:4, :n] = (p.boxes[:n, 2:] - p.boxes[:n, :2]).T
            row[4 + p.labels[:n], np.arange(n)] = p.scores[:n]
            row[7:, :n] = p.keypoints[:n].reshape(n, 15).T
        rows.append(row)
    return TaskCase(
        [[np.stack(rows[:3])], [np.stack(rows[3:])]], [infos[:3], infos[3:]], split, data, section
    )


class TestTorchvisionKeypointsContract(TaskContract):
    @pytest.fixture
    def task(self) -> Task:
        return Keypoints(oks_sigmas=FIVE_SIGMAS)

    @pytest.fixture
    def case(self) -> TaskCase:
        return _case("boxes_scores_labels_keypoints", 0)


class TestYoloKeypointsContract(TaskContract):
    @pytest.fixture
    def task(self) -> Task:
        return Keypoints(outputs="yolo", oks_sigmas=FIVE_SIGMAS, class_ids="category_id")

    @pytest.fixture
    def case(self) -> TaskCase:
        return _case("yolo", 1)


class TestEnd2EndKeypointsContract(TaskContract):
    @pytest.fixture
    def task(self) -> Task:
        return Keypoints(outputs="end2end", oks_sigmas=FIVE_SIGMAS, class_ids="category_id")

    @pytest.fixture
    def case(self) -> TaskCase:
        return _case("end2end", 2)


def test_draw_poses_marks_truth_fp32_and_candidate_keypoints_in_their_colours() -> None:
    from workloads.tasks._keypoints_draw import CANDIDATE, REFERENCE, TRUTH, draw_poses

    truth = _objects(np.random.default_rng(0), 5, 1)[0]
    (ref,) = _predictions(np.random.default_rng(1), [truth])
    ref = Poses(ref.boxes, np.ones(len(ref)), ref.labels, ref.keypoints)
    moved = Poses(ref.boxes, ref.scores, ref.labels, ref.keypoints + 3)
    image = np.zeros((200, 240, 3), np.uint8)
    canvas = np.asarray(draw_poses(image, moved, ref, truth, scale=2))
    assert canvas.shape == (400, 480, 3)
    colours = {tuple(int(v) for v in px) for px in canvas.reshape(-1, 3)}
    assert {TRUTH, REFERENCE, CANDIDATE} <= colours


def test_slices_and_robustness_speak_kp_map() -> None:
    from dataclasses import replace

    from workloads.kpis.compute import compute, with_kpi_data
    from workloads.kpis.spec import EvaluationSpec

    rng = np.random.default_rng(3)
    truth = _objects(rng, 5, 8)
    preds = _predictions(rng, truth)
    split, data = _split(truth)
    data = replace(data, normalization=((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)))
    spec = EvaluationSpec(robustness=True, corruptions=("gaussian_noise",), severities=(1,))
    data = with_kpi_data(data, spec, None)
    data = replace(data, slices={"first": np.arange(4), "rest": np.arange(4, 8)})
    task = Keypoints(oks_sigmas=FIVE_SIGMAS)
    clean = task.quality(preds, split, None, data)
    got = compute(task, preds, split, data, spec, None, clean, lambda s: preds)
    first = task.quality(preds[:4], split.subset(np.arange(4)), None, data)["kp_map"]
    assert got["slice/first"] == first and got["worst_slice"] <= first
    assert got["robust/gaussian_noise/1"] == clean["kp_map"] and got["robustness"] == 1.0


def test_per_keypoint_similarity_shows_which_keypoint_a_candidate_moved() -> None:
    rng = np.random.default_rng(6)
    truth = _objects(rng, 5, 10)
    for t in truth:
        t["keypoint_names"] = ("a", "b", "c", "d", "centre")
    exact = [
        Poses(t["boxes"], np.ones(len(t["boxes"])), t["labels"], t["keypoints"].astype(np.float32))
        for t in truth
    ]
    moved = []
    for p in exact:
        kps = p.keypoints.copy()
        kps[:, 2, :2] += 4.0  # only keypoint "c" moves
        moved.append(Poses(p.boxes, p.scores, p.labels, kps))
    split, data = _split(truth)
    task = Keypoints(oks_sigmas=FIVE_SIGMAS)
    same = task.quality(exact, split, None, data)
    got = task.quality(moved, split, None, data)
    assert all(same[f"kp_oks/{n}"] == pytest.approx(1.0) for n in ("a", "b", "c", "d", "centre"))
    assert got["kp_oks/c"] < 0.9 and got["kp_oks/a"] == pytest.approx(1.0)
