"""The shapes demo's nets (workloads/demos/shapes_nets.py): output layouts as exporters give
them, training that is deterministic, and the quality the demo promises."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from workloads.demos.shapes_data import (
    CATEGORIES,
    SEG_CLASSES,
    DetectionPaths,
    SegmentationPaths,
    scenes,
    write_detection_dataset,
    write_segmentation_dataset,
)

SMALL = {"image_size": 64, "n_train": 6, "n_calib": 3, "n_eval": 4}


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def det_paths(tmp_path_factory: pytest.TempPathFactory) -> DetectionPaths:
    return write_detection_dataset(tmp_path_factory.mktemp("det") / "shapes", seed=0, **SMALL)


@pytest.fixture(scope="module")
def seg_paths(tmp_path_factory: pytest.TempPathFactory) -> SegmentationPaths:
    return write_segmentation_dataset(tmp_path_factory.mktemp("seg") / "shapes", seed=0, **SMALL)


def _tiny_detection_set(
    n: int, seed: int = 0
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    items = list(scenes("detection", "train", seed=seed, n=n, image_size=64))
    x = np.stack([s.image for s in items]).transpose(0, 3, 1, 2).astype(np.float32) / 255
    return x, [s.boxes for s in items], [s.categories for s in items]


def test_detector_output_follows_the_yolo_export_layout() -> None:
    import torch

    from workloads.demos.shapes_nets import ShapesDetector

    torch.manual_seed(0)
    model = ShapesDetector().eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        out = model(x)
        assert out.shape == (2, 4 + len(CATEGORIES), 16 * 16)
        assert out.dtype == torch.float32
        scores = out[:, 4:]
        assert float(scores.min()) >= 0 and float(scores.max()) <= 1
        points = model.anchor_points(64, 64).T  # (2, A)
        centres, sizes = out[:, :2], out[:, 2:4]
        # Each side lies at most 4 * side_scale = 32 px from its anchor point, inside the image.
        assert float(sizes.min()) > 0 and float(sizes.max()) <= 8 * model.side_scale == 64
        assert float((centres - points).abs().max()) <= 2 * model.side_scale
        # With a zeroed head every side is side_scale px from its anchor point: column a is the
        # box centred on anchor point a (row-major over the stride-4 grid), 16 px wide.
        for param in model.pred.parameters():
            param.zero_()
        out = model(x)
    assert torch.allclose(out[0, :2], points)
    assert points[:, 1].tolist() == [6.0, 2.0] and points[:, 16].tolist() == [2.0, 6.0]
    assert torch.allclose(out[:, 2:4], torch.full_like(out[:, 2:4], 2 * model.side_scale))
    assert torch.allclose(out[:, 4:], torch.full_like(out[:, 4:], 0.5))


def test_segmenter_returns_logits_at_the_input_size() -> None:
    import torch

    from workloads.demos.shapes_nets import ShapesSegmenter

    model = ShapesSegmenter().eval()
    with torch.no_grad():
        assert model(torch.rand(2, 3, 64, 64)).shape == (2, len(SEG_CLASSES), 64, 64)
        assert model(torch.rand(1, 3, 48, 80)).shape == (1, len(SEG_CLASSES), 48, 80)


def test_targets_give_every_object_a_point_inside_its_box() -> None:
    from workloads.demos.shapes_nets import ShapesDetector, assign_targets

    model = ShapesDetector()
    points = model.anchor_points(64, 64)
    _, boxes, labels = _tiny_detection_set(20)
    for b, lab in zip(boxes, labels, strict=True):
        cls, target = assign_targets(points, b, lab, radius=6.0)
        positive = cls >= 0
        assert int(positive.sum()) >= len(b)
        matched = {tuple(t) for t in target[positive].tolist()}
        assert matched == {tuple(t) for t in b.tolist()}, "each object is learnt by some point"
        p, t = points[positive], target[positive]
        assert bool(((p[:, 0] >= t[:, 0]) & (p[:, 0] <= t[:, 2])).all())
        assert bool(((p[:, 1] >= t[:, 1]) & (p[:, 1] <= t[:, 3])).all())


def test_metrics_score_perfect_predictions_as_perfect(det_paths: DetectionPaths) -> None:
    from workloads.demos.shapes_nets import coco_map, confusion_matrix, mean_iou

    coco = json.loads(det_paths.eval_annotations.read_text())
    dets = []
    for info in coco["images"]:
        anns = [a for a in coco["annotations"] if a["image_id"] == info["id"]]
        boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)])
        labels = np.array([a["category_id"] - 1 for a in anns])
        dets.append((boxes, np.full(len(anns), 0.9), labels))
    assert coco_map(dets, coco) == {"map": pytest.approx(1.0), "map50": pytest.approx(1.0)}
    wrong = [(b, s, (lab + 1) % len(CATEGORIES)) for b, s, lab in dets]
    assert coco_map(wrong, coco)["map50"] == pytest.approx(0.0)
    mask = np.array([[0, 1], [2, 255]])
    assert mean_iou(confusion_matrix(mask, mask, 4)) == 1.0
    cm = confusion_matrix(np.array([0, 1, 1, 0]), np.array([0, 1, 0, 255]), 2)
    assert cm.tolist() == [[1, 1], [0, 1]]
    assert mean_iou(cm) == pytest.approx((1 / 2 + 1 / 2) / 2)


def test_postprocess_applies_classwise_nms_and_thresholds() -> None:
    from workloads.demos.shapes_nets import postprocess

    raw = np.zeros((1, 4 + 2, 4), np.float32)
    # Columns are points (cx, cy, w, h, score 0, score 1); points 0 and 1 overlap (IoU 0.95).
    raw[0, :4] = np.array([[10, 26, 10, 40], [10, 25, 10, 40], [8, 8, 8, 8], [8, 8, 8, 8]]).T
    raw[0, 4] = [0.9, 0.8, 0.0005, 0.0]  # class 0: point 1 suppressed, point 2 under threshold
    raw[0, 5] = [0.0, 0.7, 0.0, 0.3]  # class 1: kept beside class 0's box (class-wise NMS)
    [(boxes, scores, labels)] = postprocess(raw)
    assert scores.tolist() == pytest.approx([0.9, 0.7, 0.3])
    assert labels.tolist() == [0, 1, 1]
    assert boxes[0].tolist() == pytest.approx([5, 6, 15, 46])
    single = postprocess(raw, multi_label=False)[0]
    assert single[2].tolist() == [0, 1]


def test_models_export_to_onnx_and_torch_export_with_a_dynamic_batch(tmp_path: Path) -> None:
    import onnxruntime as ort
    import torch

    from workloads.demos.shapes_nets import ShapesDetector, ShapesSegmenter

    torch.manual_seed(0)
    x = torch.rand(3, 3, 64, 64)
    for model in (ShapesDetector().eval(), ShapesSegmenter().eval()):
        path = tmp_path / f"{type(model).__name__}.onnx"
        torch.onnx.export(
            model,
            (x[:1],),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["images"],
            output_names=["output0"],
            dynamic_axes={"images": {0: "batch"}, "output0": {0: "batch"}},
        )
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        with torch.no_grad():
            expected = model(x).numpy()
        np.testing.assert_allclose(session.run(None, {"images": x.numpy()})[0], expected, atol=1e-4)
        batch = torch.export.Dim("batch", min=1, max=64)
        exported = torch.export.export(model, (x[:2],), dynamic_shapes=({0: batch},))
        with torch.no_grad():
            np.testing.assert_allclose(exported.module()(x).numpy(), expected, atol=1e-4)


def test_training_is_deterministic_and_lowers_the_loss() -> None:
    import torch

    from workloads.demos.shapes_nets import (
        ShapesDetector,
        ShapesSegmenter,
        detection_loss,
        train_detector,
        train_segmenter,
    )

    x, boxes, labels = _tiny_detection_set(24)
    masks = np.stack([s.mask for s in scenes("detection", "train", seed=0, n=24, image_size=64)])

    def det(seed: int) -> tuple[ShapesDetector, dict]:
        torch.manual_seed(0)
        model = ShapesDetector(width=8)
        report = train_detector(model, x, boxes, labels, seed=seed, epochs=2, batch_size=8)
        return model, report

    (m1, r1), (m2, _), (m3, _) = det(0), det(0), det(1)
    assert r1["steps"] == 6 and json.loads(json.dumps(r1)) == r1
    s1, s2, s3 = m1.state_dict(), m2.state_dict(), m3.state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1), "same seed, same weights"
    assert not all(torch.equal(s1[k], s3[k]) for k in s1), "another seed, other weights"
    assert all(t.is_contiguous() for t in s1.values()), "handed back in the default layout"
    # The loss of the trained model is below that of the untrained one on the training data.
    from workloads.demos.shapes_nets import assign_targets

    points = m1.anchor_points(64, 64)
    assigned = [assign_targets(points, b, lab, 6.0) for b, lab in zip(boxes, labels, strict=True)]
    cls = torch.stack([a[0] for a in assigned])
    target = torch.stack([a[1] for a in assigned])
    torch.manual_seed(0)
    fresh = ShapesDetector(width=8).eval()
    with torch.no_grad():
        before, _ = detection_loss(fresh, torch.from_numpy(x), cls, target)
        after, _ = detection_loss(m1.eval(), torch.from_numpy(x), cls, target)
    assert float(after) < float(before)

    torch.manual_seed(0)
    seg = ShapesSegmenter(width=8)
    report = train_segmenter(seg, x, masks, seed=0, epochs=1, batch_size=8)
    assert report["steps"] == 3 and np.isfinite(report["final_loss"])
    assert all(t.is_contiguous() for t in seg.state_dict().values())


# ------------------------------------------------------------------------------------------
# The demo's quality (minutes on 2 cores)


def _load_coco(images: Path, annotation_file: Path) -> tuple[np.ndarray, list, list, dict]:
    coco = json.loads(annotation_file.read_text())
    x = np.stack([np.asarray(Image.open(images / i["file_name"])) for i in coco["images"]])
    boxes: dict[int, list] = {i["id"]: [] for i in coco["images"]}
    labels: dict[int, list] = {i["id"]: [] for i in coco["images"]}
    for a in coco["annotations"]:
        x0, y0, w, h = a["bbox"]
        boxes[a["image_id"]].append([x0, y0, x0 + w, y0 + h])
        labels[a["image_id"]].append(a["category_id"] - 1)
    ids = [i["id"] for i in coco["images"]]
    return (
        x.transpose(0, 3, 1, 2).astype(np.float32) / 255,
        [np.asarray(boxes[i], np.float32).reshape(-1, 4) for i in ids],
        [np.asarray(labels[i], np.int64) for i in ids],
        coco,
    )


def _load_masks(images: Path, masks: Path) -> tuple[np.ndarray, np.ndarray]:
    files = sorted(images.glob("*.png"))
    x = np.stack([np.asarray(Image.open(f)) for f in files]).transpose(0, 3, 1, 2)
    y = np.stack([np.asarray(Image.open(masks / f.name)) for f in files])
    return x.astype(np.float32) / 255, y


def _int8_outputs(model: Any, calib: np.ndarray, x: np.ndarray, work: Path) -> np.ndarray:
    """Outputs of ``model`` quantized by ONNX Runtime (static QDQ, per channel, U8/S8)."""
    import onnxruntime as ort
    import torch
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    class Reader:
        def __init__(self) -> None:
            self.items = iter([{"images": calib[i : i + 1]} for i in range(len(calib))])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    fp32, int8 = work / "model.onnx", work / "model_int8.onnx"
    torch.onnx.export(
        model,
        (torch.from_numpy(x[:1]),),
        str(fp32),
        dynamo=False,
        opset_version=17,
        input_names=["images"],
        output_names=["output0"],
        dynamic_axes={"images": {0: "batch"}, "output0": {0: "batch"}},
    )
    quantize_static(
        str(fp32),
        str(int8),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        op_types_to_quantize=["Conv", "Gemm", "MatMul"],
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    session = ort.InferenceSession(str(int8), providers=["CPUExecutionProvider"])
    return session.run(None, {"images": x})[0]


@pytest.mark.slow
def test_the_demo_detector_reaches_its_quality(tmp_path: Path) -> None:
    import torch

    from workloads.demos.shapes_nets import (
        ShapesDetector,
        coco_map,
        postprocess,
        predict,
        train_detector,
    )

    paths = write_detection_dataset(tmp_path / "det", seed=0)
    x, boxes, labels, _ = _load_coco(paths.train_images, paths.train_annotations)
    x_eval, _, _, coco = _load_coco(paths.eval_images, paths.eval_annotations)
    torch.manual_seed(0)
    model = ShapesDetector()
    train_detector(model, x, boxes, labels, seed=0)
    raw = predict(model, x_eval)
    fp32 = coco_map(postprocess(raw), coco)
    assert fp32["map50"] >= 0.8, fp32
    calib = np.stack([np.asarray(Image.open(p)) for p in sorted(paths.calib_images.glob("*.png"))])
    calib = calib.transpose(0, 3, 1, 2).astype(np.float32)[:100] / 255
    int8 = coco_map(postprocess(_int8_outputs(model, calib, x_eval, tmp_path)), coco)
    assert int8 != fp32, "quantization changes the model"
    assert int8["map50"] >= fp32["map50"] - 0.05, (fp32, int8)


@pytest.mark.slow
def test_the_demo_segmenter_reaches_its_quality(tmp_path: Path) -> None:
    import torch

    from workloads.demos.shapes_nets import (
        ShapesSegmenter,
        confusion_matrix,
        mean_iou,
        predict,
        train_segmenter,
    )

    paths = write_segmentation_dataset(tmp_path / "seg", seed=0)
    x, y = _load_masks(paths.train_images, paths.train_masks)
    x_eval, y_eval = _load_masks(paths.eval_images, paths.eval_masks)
    torch.manual_seed(0)
    model = ShapesSegmenter()
    train_segmenter(model, x, y, seed=0)
    n = len(SEG_CLASSES)
    fp32 = mean_iou(confusion_matrix(predict(model, x_eval).argmax(1), y_eval, n))
    assert fp32 >= 0.8
    calib = np.stack([np.asarray(Image.open(p)) for p in sorted(paths.calib_images.glob("*.png"))])
    calib = calib.transpose(0, 3, 1, 2).astype(np.float32)[:100] / 255
    int8_logits = _int8_outputs(model, calib, x_eval, tmp_path)
    int8 = mean_iou(confusion_matrix(int8_logits.argmax(1), y_eval, n))
    assert int8 != fp32 and int8 >= fp32 - 0.03, (fp32, int8)
