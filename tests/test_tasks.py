"""The task layer: decoding, metrics against independent implementations, data checks."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from _dense_fixtures import segmenter_onnx, write_squares, yolo_onnx

from farm.engine.runner import reference_predictions
from farm.errors import UsageError
from workloads import load_workload
from workloads.datasets.coco import detections, evaluate_bbox, ground_truth, read_coco
from workloads.datasets.dense import Preprocess
from workloads.tasks.detection import Detection, Detections, class_nms, to_original
from workloads.tasks.segmentation import Segmentation, confusion


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
    cats = {1: "cat", 2: "dog", 3: "bird"}
    gt = ground_truth(images, gb, gl, cats)
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
        name = {1: "cat", 2: "dog", 3: "bird"}[cat]
        assert ours[f"ap/{name}"] == pytest.approx(p[p > -1].mean(), abs=1e-6)
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


def test_miou_equals_an_independent_confusion_matrix() -> None:
    from sklearn.metrics import confusion_matrix

    rng = np.random.default_rng(0)
    truth = [rng.integers(0, 4, (20, 30)).astype(np.uint8) for _ in range(5)]
    truth[0][:3] = 255  # ignored pixels
    pred = [np.where(rng.random(t.shape) < 0.7, t % 4, rng.integers(0, 4, t.shape)) for t in truth]
    task = Segmentation(num_classes=4)
    from workloads import Split, WorkloadData

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


# -- data and model checks -------------------------------------------------------------------


@pytest.fixture(scope="module")
def squares(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("squares")
    write_squares(root / "val", n=12)
    yolo_onnx(root / "yolo.onnx")
    segmenter_onnx(root / "seg.onnx")
    return root


def _det_section(**extra: object) -> dict:
    return {
        "onnx": "yolo.onnx",
        "task": "detection",
        "outputs": "yolo",
        "data": {"eval": "val/images", "eval_annotations": "val/instances.json"},
        **extra,
    }


def test_detection_workload_reads_coco_and_scores_the_model(squares: Path) -> None:
    wl = load_workload(_det_section(), squares)
    data = wl.data()
    assert len(data.eval) + len(data.calib) == 12 and data.class_names == {1: "red", 2: "green"}
    ref = reference_predictions(wl.source_artifact(squares), data, wl.task, wl.fixed_batch)
    m = wl.task.quality(ref, data.eval, ref, data)
    assert m["map50"] > 0.3 and m["map_vs_fp32"] == pytest.approx(1.0)
    assert {"map", "map75", "ar100", "ap/red", "ap/green"} <= set(m)


def _broken_coco(squares: Path, tmp: Path, change: object) -> Path:
    doc = json.loads((squares / "val" / "instances.json").read_text())
    change(doc)  # type: ignore[operator]
    path = tmp / "broken.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d["annotations"][0].update(category_id=7), "annotations[0].category_id"),
        (lambda d: d["annotations"][1].update(bbox=[1, 2, 3]), "annotations[1].bbox"),
        (lambda d: d["annotations"][0].update(image_id=999), "annotations[0].image_id"),
        (lambda d: d.pop("categories"), "categories"),
        (lambda d: d["images"][0].pop("file_name"), "images[0].file_name"),
    ],
)
def test_malformed_coco_names_the_file_and_field(
    squares: Path, tmp_path: Path, change: object, field: str
) -> None:
    path = _broken_coco(squares, tmp_path, change)
    with pytest.raises(UsageError) as err:
        read_coco(path, "workload.data.eval_annotations")
    assert str(path) in str(err.value) and f"`{field}`" in str(err.value)


def test_not_json_and_missing_image_are_refused(squares: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UsageError, match="not valid JSON"):
        read_coco(bad, "workload.data.eval_annotations")
    path = _broken_coco(squares, tmp_path, lambda d: d["images"][0].update(file_name="no.png"))
    section = _det_section()
    section["data"]["eval_annotations"] = str(path)
    with pytest.raises(UsageError, match=r"'no.png' is not in `workload.data.eval`"):
        load_workload(section, squares).data()


def test_a_mask_of_the_wrong_size_is_refused(squares: Path, tmp_path: Path) -> None:
    import shutil

    from PIL import Image

    shutil.copytree(squares / "val", tmp_path / "val")
    Image.new("L", (10, 10)).save(tmp_path / "val" / "masks" / "img003.png")
    shutil.copy(squares / "seg.onnx", tmp_path / "seg.onnx")
    section = {
        "onnx": "seg.onnx",
        "task": "segmentation",
        "data": {"eval": "val/images", "eval_masks": "val/masks"},
    }
    with pytest.raises(UsageError) as err:
        load_workload(section, tmp_path).data()
    text = str(err.value)
    assert "`workload.data.eval_masks`" in text and "img003.png" in text and "10×10" in text


def test_outputs_that_break_the_declared_convention_are_refused(squares: Path) -> None:
    # the YOLO head declared as torchvision-style boxes/scores/labels: one output, not three
    with pytest.raises(UsageError, match=r"boxes_scores_labels.*three outputs"):
        load_workload(_det_section(outputs="boxes_scores_labels"), squares)
    # a segmenter declared as a YOLO detector: rank 4, not [B, 4 + C, A]
    section = _det_section(onnx="seg.onnx")
    wl = load_workload(section, squares)
    with pytest.raises(UsageError, match=r'`outputs = "yolo"` expects one output \[B, 4 \+ C, A\]'):
        reference_predictions(wl.source_artifact(squares), wl.data(), wl.task, wl.fixed_batch)


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"outputs": "ssd"}, "workload.outputs"),
        ({"nms_iou": 1.5}, "workload.nms_iou"),
        ({"task": "panoptic"}, "workload.task"),
        ({"input_size": [0, 10]}, "workload.input_size"),
        ({"class_ids": "names"}, "workload.class_ids"),
    ],
)
def test_bad_task_fields_are_named(squares: Path, section: dict, field: str) -> None:
    with pytest.raises(UsageError, match=f"`{field}`"):
        load_workload(_det_section(**section), squares)


def test_task_fields_of_another_task_are_refused(squares: Path) -> None:
    with pytest.raises(UsageError, match=r'`workload\.nms_iou`: only for `task = "detection"`'):
        load_workload({"onnx": "seg.onnx", "task": "segmentation", "nms_iou": 0.5}, squares)
    with pytest.raises(UsageError, match=r"`workload\.data\.eval_masks`: only for"):
        load_workload(
            {
                "onnx": "yolo.onnx",
                "task": "detection",
                "outputs": "yolo",
                "data": {"eval": "val/images", "eval_masks": "val/masks"},
            },
            squares,
        )
