"""Detection: decoding both output conventions, COCO mAP against pycocotools, fidelity, the
task's fields, and the task's contract for both conventions."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from contracts.task_contract import TaskCase, TaskContract
from support.predict import predictions

from farm.errors import SpecError
from workloads import load_workload
from workloads.data import Split, WorkloadData
from workloads.datasets.dense import Preprocess
from workloads.tasks import Detection, ModelFacts, Task
from workloads.tasks._coco_eval import detections, evaluate_bbox, ground_truth
from workloads.tasks.detection import Detections, class_nms, to_original

CATEGORIES = {1: "cat", 2: "dog", 3: "bird"}


def _truth(rng: np.random.Generator, n: int) -> list[dict[str, np.ndarray]]:
    out = []
    for _ in range(n):
        k = int(rng.integers(1, 4))
        xy = rng.uniform(0, 30, (k, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(8, 30, (k, 2))], 1).astype(np.float32)
        out.append({"boxes": boxes, "labels": rng.integers(1, 4, k), "iscrowd": np.zeros(k)})
    return out


def _data(truth: list[dict[str, np.ndarray]]) -> tuple[Split, WorkloadData]:
    n = len(truth)
    infos = tuple(
        {"image_id": i + 1, "scale": (1.0, 1.0), "pad": (0.0, 0.0), "orig_hw": (64, 64)}
        for i in range(n)
    )
    split = Split(np.zeros((n, 3, 64, 64), np.float32), None, tuple(truth), infos)
    data = WorkloadData(None, split, split, 3, (3, 64, 64), True, dict(CATEGORIES))
    return split, data


class TestYoloDetectionContract(TaskContract):
    @pytest.fixture
    def task(self) -> Task:
        return Detection(outputs="yolo", nms_iou=0.5, class_ids="index")

    @pytest.fixture
    def case(self) -> TaskCase:
        rng = np.random.default_rng(0)
        truth = _truth(rng, 6)
        split, data = _data(truth)
        heads = []
        for t in truth:  # one anchor per true box (jittered), plus random anchors
            a = 20
            head = np.zeros((4 + 3, a), np.float32)
            head[:2] = rng.uniform(0, 64, (2, a))
            head[2:4] = rng.uniform(4, 30, (2, a))
            head[4:] = rng.uniform(0, 0.3, (3, a))
            for j, (box, label) in enumerate(zip(t["boxes"], t["labels"], strict=True)):
                head[:2, j] = (box[:2] + box[2:]) / 2 + rng.normal(0, 1, 2)
                head[2:4, j] = box[2:] - box[:2]
                head[4 + label - 1, j] = rng.uniform(0.5, 1.0)
            heads.append(head)
        infos = list(split.info or ())
        batches = [[np.stack(heads[:4])], [np.stack(heads[4:])]]
        section = {"outputs": "yolo", "nms_iou": 0.5}
        return TaskCase(batches, [infos[:4], infos[4:]], split, data, section)


class TestBoxesScoresLabelsDetectionContract(TaskContract):
    @pytest.fixture
    def task(self) -> Task:
        return Detection(outputs="boxes_scores_labels")

    @pytest.fixture
    def case(self) -> TaskCase:
        rng = np.random.default_rng(1)
        truth = _truth(rng, 5)
        split, data = _data(truth)
        batches = []
        for t in truth:  # one image per batch, as torchvision detectors output them
            boxes = t["boxes"] + rng.normal(0, 1, t["boxes"].shape).astype(np.float32)
            scores = rng.uniform(0.2, 1.0, len(boxes)).astype(np.float32)
            batches.append([boxes[None], scores[None], t["labels"][None]])  # a leading batch of 1
        infos = [[info] for info in split.info or ()]
        facts = ModelFacts(outputs="boxes_scores_labels", class_ids="category_id")
        return TaskCase(batches, infos, split, data, {}, facts)


# -- COCO mAP -------------------------------------------------------------------------------------


def _random_case(seed: int) -> tuple[dict, list[dict]]:
    rng = np.random.default_rng(seed)
    images = [(i + 1, 100, 120) for i in range(15)]
    gb, gl, db, ds, dl = [], [], [], [], []
    for _ in images:
        k = int(rng.integers(1, 5))
        xy = rng.uniform(0, 60, (k, 2))
        b = np.concatenate([xy, xy + rng.uniform(5, 40, (k, 2))], 1)
        lab = rng.integers(1, 4, k)
        gb.append(b)
        gl.append(lab)
        extra = int(rng.integers(0, 3))
        fake = rng.uniform(0, 60, (extra, 2))
        db.append(np.concatenate([b + rng.normal(0, 3, b.shape), np.c_[fake, fake + 20]]))
        ds.append(rng.uniform(0, 1, k + extra))
        dl.append(np.concatenate([lab, rng.integers(1, 4, extra)]))
    gt = ground_truth(images, gb, gl, CATEGORIES)
    return gt, detections([i for i, _, _ in images], db, ds, dl)


@pytest.mark.parametrize("seed", [0, 1])
def test_map_equals_pycocotools(seed: int) -> None:
    """The farm scores with faster-coco-eval; pycocotools must give the same numbers."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt, dets = _random_case(seed)
    ours = evaluate_bbox(copy.deepcopy(gt), copy.deepcopy(dets))
    coco = COCO()
    coco.dataset = copy.deepcopy(gt)
    coco.createIndex()
    ev = COCOeval(coco, coco.loadRes(copy.deepcopy(dets)), "bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert ours["map"] == pytest.approx(ev.stats[0], abs=1e-6)
    assert ours["map50"] == pytest.approx(ev.stats[1], abs=1e-6)
    assert ours["map75"] == pytest.approx(ev.stats[2], abs=1e-6)
    assert ours["ar100"] == pytest.approx(ev.stats[8], abs=1e-6)
    precision = ev.eval["precision"]
    for k, cat in enumerate(ev.params.catIds):
        p = precision[:, :, k, 0, -1]
        assert ours[f"ap/{CATEGORIES[cat]}"] == pytest.approx(p[p > -1].mean(), abs=1e-6)
    assert 0.05 < ours["map"] < 0.95  # a case that exercises the curve, not a trivial 0 or 1


def test_class_nms_keeps_what_torchvision_keeps() -> None:
    import torch
    from torchvision.ops import batched_nms

    rng = np.random.default_rng(3)
    for _ in range(20):
        n = int(rng.integers(1, 200))
        xy = rng.uniform(0, 100, (n, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(1, 40, (n, 2))], 1).astype(np.float32)
        scores = rng.uniform(0, 1, n).astype(np.float32)
        labels = rng.integers(0, 3, n)
        want = batched_nms(
            torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(labels), 0.6
        ).numpy()
        np.testing.assert_array_equal(class_nms(boxes, scores, labels, 0.6), want)


# -- decoding -------------------------------------------------------------------------------------


def test_yolo_decode_applies_threshold_nms_and_maps_boxes_back() -> None:
    task = Detection(outputs="yolo", nms_iou=0.5, score_threshold=0.25, class_ids="index")
    # one image, 2 classes, 4 anchors: two overlapping class-0 boxes, one class-1, one too weak
    head = np.array(
        [
            [20, 21, 60, 10],  # cx
            [20, 20, 40, 10],  # cy
            [10, 10, 8, 4],  # w
            [10, 10, 8, 4],  # h
            [0.9, 0.8, 0.1, 0.2],  # class 0
            [0.1, 0.1, 0.7, 0.1],  # class 1
        ],
        dtype=np.float32,
    )[None]
    info = {"scale": (0.5, 0.5), "pad": (4.0, 0.0), "orig_hw": (100, 200)}
    (det,) = task.decode([head], [info])
    assert det.labels.tolist() == [0, 1] and det.scores.tolist() == pytest.approx([0.9, 0.7])
    # input pixels → original: (x - pad_x) / 0.5, (y - pad_y) / 0.5
    np.testing.assert_allclose(det.boxes[0], [30, 22, 50, 42])
    np.testing.assert_allclose(det.boxes[1], [112, 64, 128, 80])


def test_letterbox_then_to_original_round_trips_a_box() -> None:
    from PIL import Image

    pre = Preprocess((64, 64), letterbox=True, mean=(0, 0, 0), std=(1, 1, 1))
    x, info = pre(Image.new("RGB", (200, 100)))
    assert x.shape == (3, 64, 64) and info["orig_hw"] == (100, 200)
    assert info["scale"] == (0.32, 0.32) and info["pad"] == (16.0, 0.0)
    box = np.array([[40.0, 30.0, 120.0, 90.0]], dtype=np.float32)
    in_input = box * 0.32 + np.array([0, 16, 0, 16], dtype=np.float32)
    back = to_original(Detections(in_input, np.ones(1), np.zeros(1, np.int64)), info)
    np.testing.assert_allclose(back.boxes, box, rtol=1e-5)


# -- on a user's data and model -------------------------------------------------------------------


def _det_section(**extra: object) -> dict:
    return {
        "onnx": "yolo.onnx",
        "task": "detection",
        "outputs": "yolo",
        "data": {"eval": "val/images", "eval_annotations": "val/instances.json"},
        **extra,
    }


def test_a_detection_workload_reads_coco_and_scores_the_model(squares: Path) -> None:
    wl = load_workload(_det_section(), squares)
    data = wl.data()
    assert len(data.eval) + len(data.calib) == 12 and data.class_names == {1: "red", 2: "green"}
    ref = predictions(wl.source_artifact(squares), data.eval, wl.task, batch=4)
    m = wl.task.quality(ref, data.eval, ref, data)
    assert m["map50"] > 0.3 and m["map_vs_fp32"] == pytest.approx(1.0)
    assert {"map", "map75", "ar100", "ap/red", "ap/green"} <= set(m)


def test_outputs_that_break_the_declared_convention_are_refused(squares: Path) -> None:
    # the YOLO head declared as torchvision-style boxes/scores/labels: one output, not three
    with pytest.raises(SpecError, match=r"boxes_scores_labels.*three outputs") as err:
        load_workload(_det_section(outputs="boxes_scores_labels"), squares, source="job.toml")
    assert err.value.path == "job.toml"
    # a segmenter declared as a YOLO detector: rank 4, not [B, 4 + C, A]
    wl = load_workload(_det_section(onnx="seg.onnx"), squares)
    with pytest.raises(ValueError, match=r'`outputs = "yolo"` expects one output \[B, 4 \+ C, A\]'):
        predictions(wl.source_artifact(squares), wl.data().eval, wl.task)


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"outputs": "ssd"}, "workload.outputs"),
        ({"nms_iou": 1.5}, "workload.nms_iou"),
        ({"score_threshold": -0.1}, "workload.score_threshold"),
        ({"max_detections": 0}, "workload.max_detections"),
        ({"class_ids": "names"}, "workload.class_ids"),
        ({"letterbox": "yes"}, "workload.letterbox"),
        ({"outputs": None}, "workload.outputs"),
    ],
)
def test_bad_detection_fields_name_the_job_file_and_the_field(
    squares: Path, section: dict, field: str
) -> None:
    given = {k: v for k, v in _det_section(**section).items() if v is not None}
    with pytest.raises(SpecError) as err:
        load_workload(given, squares, source="job.toml")
    assert err.value.field == field and err.value.path == "job.toml"


def test_a_source_that_fixes_the_outputs_refuses_another_convention() -> None:
    from farm._validate import Fields

    facts = ModelFacts(outputs="boxes_scores_labels", class_ids="category_id")
    with pytest.raises(SpecError, match="this model's outputs") as err:
        Detection.from_section(Fields({"outputs": "yolo"}, "job.toml", "workload"), facts=facts)
    assert err.value.field == "workload.outputs"
