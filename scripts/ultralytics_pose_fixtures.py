"""Regenerate ``tests/data/ultralytics_pose/``: two tiny Ultralytics pose exports and what
Ultralytics' own predictor makes of them, the oracle the keypoints task's ``"yolo"`` decoding is
tested against (the farm's venv has no ultralytics).

Run with a venv that has ultralytics 8.4, torch and onnxruntime (no network needed: the models
are built from a yaml with random weights, nothing is downloaded)::

    /tmp/ulvenv/bin/python scripts/ultralytics_pose_fixtures.py

Writes, under ``tests/data/ultralytics_pose/``:

* ``images/*.png``: four seeded images of different sizes and aspect ratios (so the letterbox pads
  along either axis, by an odd number of pixels for some);
* ``pose17.onnx`` (``kpt_shape: [17, 3]``, one class) and ``pose5x2.onnx`` (``kpt_shape: [5, 2]``,
  two classes): yolov8-pose's layers at a tiny width (``scales: n: [0.33, 0.0625, 256]``),
  exported with a dynamic batch, height and width. Random weights need two touches to give
  poses worth decoding: the batch-norm statistics are set from a few random inputs (with the
  initial ones the activations vanish layer after layer and every anchor gets the same score),
  and the class biases are raised by :data:`CLASS_BIAS_SHIFT` (Ultralytics' initial bias scores
  ~1e-3) so that some poses pass the fidelity score of 0.3;
* ``<model>.npz``: per image, the letterboxed input Ultralytics fed the model (uint8 HWC), the raw
  head it got back (``[4 + C + K·D, A]``) and, for each (conf, iou, max_det) of
  :data:`SETTINGS`, its predictor's results: boxes xyxy, scores, classes and keypoints
  ``[n, K, D]`` in original image pixels.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "ultralytics_pose"
#: (H, W) of the images; the models are served at INPUT (H, W).
IMAGE_SIZES = ((97, 203), (240, 180), (333, 500), (160, 160))
INPUT = (128, 160)
#: (conf, iou, max_det): the keypoints task's defaults (max_det binds), Ultralytics' predict
#: defaults with a lower IoU (NMS binds).
SETTINGS = ((0.001, 0.7, 100), (0.25, 0.5, 300))
MODELS = {"pose17": ([17, 3], 1), "pose5x2": ([5, 2], 2)}
#: Added to the initial class biases: 10-30 % of the poses kept score above 0.3.
CLASS_BIAS_SHIFT = 2.0
#: Keypoint and box convolutions scaled down, and box bins made less likely the longer they
#: are, so that most keypoints and boxes land near their anchor, inside the image.
KEYPOINT_WEIGHT_SCALE = 0.1
BOX_WEIGHT_SCALE = 0.3
BOX_BIN_SLOPE = 0.4


def write_images(folder: Path) -> list[Path]:
    """Seeded images: a colour gradient with a few filled rectangles (PNG-compressible)."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (h, w) in enumerate(IMAGE_SIZES):
        y, x = np.mgrid[0:h, 0:w]
        base = np.stack([x * 255 // w, y * 255 // h, (x + y) * 127 // (w + h)], axis=2)
        image = Image.fromarray(base.astype(np.uint8))
        draw = ImageDraw.Draw(image)
        for _ in range(4):
            x0, y0 = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
            x1, y1 = x0 + int(rng.integers(10, w // 2)), y0 + int(rng.integers(10, h // 2))
            draw.rectangle((x0, y0, x1, y1), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
        path = folder / f"img{i}.png"
        image.save(path, optimize=True)
        paths.append(path)
    return paths


def export(name: str, kpt_shape: list[int], nc: int, work: Path) -> Path:
    """A tiny yolov8-pose with random (seeded) weights and tuned class biases, as ONNX."""
    import torch
    import ultralytics
    import yaml
    from ultralytics import YOLO

    cfg = Path(ultralytics.__file__).parent / "cfg" / "models" / "v8" / "yolov8-pose.yaml"
    doc = yaml.safe_load(cfg.read_text())
    doc.update(nc=nc, kpt_shape=kpt_shape, scales={"n": [0.33, 0.0625, 256]})
    path = work / f"{name}-n.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    torch.manual_seed(0)
    model = YOLO(str(path), task="pose")
    net = model.model
    for layer in net.modules():
        if isinstance(layer, torch.nn.BatchNorm2d):
            layer.momentum = None  # a plain average over the calibration batch
            layer.reset_running_stats()
    net.train()
    with torch.no_grad():
        net(torch.rand(8, 3, *INPUT))
        head = net.model[-1]
        for branch in head.cv3:
            branch[-1].bias[:nc] += CLASS_BIAS_SHIFT
        for branch in head.cv4:
            branch[-1].weight *= KEYPOINT_WEIGHT_SCALE
        bins = torch.arange(head.reg_max, dtype=torch.float32)
        for branch in head.cv2:
            branch[-1].weight *= BOX_WEIGHT_SCALE
            branch[-1].bias[:] = (-BOX_BIN_SLOPE * bins).repeat(4)
    net.eval()
    model.model.names = {i: f"class{i}" for i in range(nc)}
    with contextlib.chdir(work):  # the exporter writes into the working directory
        onnx_file = model.export(format="onnx", imgsz=INPUT, dynamic=True, verbose=False)
    return work / onnx_file


def oracle(onnx_file: Path, images: list[Path]) -> dict[str, np.ndarray]:
    """Ultralytics' predictor on the ONNX file: per image the input it fed the model, the raw
    head it got back and, per setting of :data:`SETTINGS`, its results."""
    from ultralytics import YOLO
    from ultralytics.models.yolo.pose import PosePredictor

    seen: list[tuple[np.ndarray, np.ndarray]] = []

    class Recording(PosePredictor):  # type: ignore[misc]
        def postprocess(self, preds: Any, img: Any, orig_imgs: Any, **kwargs: Any) -> Any:
            raw = preds[0] if isinstance(preds, list | tuple) else preds
            for i in range(len(img)):
                pixels = (img[i].permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
                seen.append((pixels, raw[i].cpu().numpy().astype(np.float32)))
            return super().postprocess(preds, img, orig_imgs, **kwargs)

    model = YOLO(str(onnx_file), task="pose")
    out: dict[str, np.ndarray] = {
        "input_hw": np.asarray(INPUT),
        "settings": np.asarray(SETTINGS, dtype=np.float64),
    }
    for i, path in enumerate(images):
        for j, (conf, iou, max_det) in enumerate(SETTINGS):
            (result,) = model.predict(
                str(path),
                imgsz=INPUT,
                conf=conf,
                iou=iou,
                max_det=max_det,
                rect=False,
                predictor=Recording,
                verbose=False,
            )
            pixels, raw = seen[-1]
            if j == 0:
                out[f"img{i}_file"] = np.asarray(path.name)
                out[f"img{i}_orig_hw"] = np.asarray(result.orig_shape)
                out[f"img{i}_input"] = pixels
                out[f"img{i}_raw"] = raw
            assert np.array_equal(raw, out[f"img{i}_raw"])  # one raw head per image
            key = f"s{j}_img{i}"
            out[f"{key}_boxes"] = result.boxes.xyxy.numpy().astype(np.float32)
            out[f"{key}_scores"] = result.boxes.conf.numpy().astype(np.float32)
            out[f"{key}_classes"] = result.boxes.cls.numpy().astype(np.int64)
            out[f"{key}_keypoints"] = result.keypoints.data.numpy().astype(np.float32)
    return out


def main() -> None:
    images = write_images(OUT / "images")
    with tempfile.TemporaryDirectory() as tmp:
        for name, (kpt_shape, nc) in MODELS.items():
            onnx_file = shutil.move(export(name, kpt_shape, nc, Path(tmp)), OUT / f"{name}.onnx")
            fixture = oracle(Path(onnx_file), images)
            np.savez_compressed(OUT / f"{name}.npz", **fixture)  # type: ignore[arg-type]
            size = Path(onnx_file).stat().st_size
            for j in range(len(SETTINGS)):
                scores = [fixture[f"s{j}_img{i}_scores"] for i in range(len(images))]
                counts = [len(s) for s in scores]
                confident = [int((s >= 0.3).sum()) for s in scores]
                print(f"{name} ({size} bytes) {SETTINGS[j]}: poses {counts}, >= 0.3 {confident}")


if __name__ == "__main__":
    main()
