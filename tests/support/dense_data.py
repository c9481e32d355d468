"""Small detection / segmentation data sets and hand-made ONNX models for the task-layer tests.

Coloured squares (red = category 1, green = category 2) on a dark background, written to disk as
a user would have them (PNG images, a COCO instances JSON, mask PNGs), and models whose weights
are set by hand so that they find the squares well enough for mAP/mIoU to be far from 0:

* ``yolo_onnx``: a raw YOLO-style head ``[B, 4 + 2, A]`` (stride 4): each anchor predicts a
  16×16 box at its centre, class scores from the mean red / green around it.
* ``segmenter_onnx``: per-pixel scores ``[B, 3, H, W]`` (background, red, green).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SIZE = 16  # square side, pixels
CATEGORIES = {1: "red", 2: "green"}
COLOURS = {1: (230, 20, 20), 2: (20, 230, 20)}


def write_squares(
    root: Path, n: int = 10, seed: int = 0, size: tuple[int, int] = (64, 80)
) -> tuple[Path, Path, Path]:
    """(images folder, COCO JSON, masks folder) of ``n`` images of ``size`` (H, W)."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    images_dir, masks_dir = root / "images", root / "masks"
    images_dir.mkdir(parents=True, exist_ok=True)
    masks_dir.mkdir(parents=True, exist_ok=True)
    h, w = size
    images, annotations = [], []
    for i in range(n):
        img = Image.new("RGB", (w, h), (15, 15, 25))
        mask = Image.new("L", (w, h), 0)
        draw, mdraw = ImageDraw.Draw(img), ImageDraw.Draw(mask)
        for _ in range(int(rng.integers(1, 4))):
            cat = int(rng.integers(1, 3))
            x, y = int(rng.integers(0, w - SIZE)), int(rng.integers(0, h - SIZE))
            draw.rectangle([x, y, x + SIZE - 1, y + SIZE - 1], fill=COLOURS[cat])
            mdraw.rectangle([x, y, x + SIZE - 1, y + SIZE - 1], fill=cat)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": cat,
                    "bbox": [x, y, SIZE, SIZE],
                    "area": SIZE * SIZE,
                    "iscrowd": 0,
                }
            )
        img.save(images_dir / f"img{i:03d}.png")
        mask.save(masks_dir / f"img{i:03d}.png")
        images.append({"id": i + 1, "file_name": f"img{i:03d}.png", "width": w, "height": h})
    coco = root / "instances.json"
    cats = [{"id": c, "name": name} for c, name in CATEGORIES.items()]
    coco.write_text(json.dumps({"images": images, "annotations": annotations, "categories": cats}))
    return images_dir, coco, masks_dir


def _export(module: object, path: Path, size: tuple[int, int], outputs: list[str]) -> Path:
    import torch

    torch.onnx.export(
        module,
        (torch.zeros(1, 3, *size),),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["images"],
        output_names=outputs,
        dynamic_axes={"images": {0: "batch"}, **{o: {0: "batch"} for o in outputs}},
    )
    return path


def _yolo_head(stride: int = 4) -> object:
    import torch

    class Head(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.colour = torch.nn.Conv2d(3, 2, SIZE // 2, stride=stride, padding=SIZE // 4)
            with torch.no_grad():
                self.colour.weight.zero_()
                k = 1.0 / (SIZE // 2) ** 2
                self.colour.weight[0, 0], self.colour.weight[0, 1] = k, -k  # red − green
                self.colour.weight[1, 1], self.colour.weight[1, 0] = k, -k  # green − red
                self.colour.bias.fill_(-0.3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            scores = torch.sigmoid(12 * self.colour(x))
            b, _, gh, gw = scores.shape
            ys, xs = torch.meshgrid(
                torch.arange(gh, dtype=torch.float32),
                torch.arange(gw, dtype=torch.float32),
                indexing="ij",
            )
            cx = ((xs + 0.5) * stride).reshape(1, 1, -1).expand(b, 1, -1)
            cy = ((ys + 0.5) * stride).reshape(1, 1, -1).expand(b, 1, -1)
            wh = torch.full_like(cx, float(SIZE))
            return torch.cat([cx, cy, wh, wh, scores.reshape(b, 2, -1)], dim=1)

    return Head().eval()


def yolo_onnx(path: Path, size: tuple[int, int] = (64, 64), stride: int = 4) -> Path:
    """A hand-made YOLO-style detector (see the module docstring)."""
    return _export(_yolo_head(stride), path, size, ["output0"])


def segmenter_onnx(path: Path, size: tuple[int, int] = (64, 80)) -> Path:
    """Per-pixel scores of background / red / green from the pixel's colour."""
    import torch

    class Seg(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)
            with torch.no_grad():
                self.conv.weight.zero_()
                self.conv.weight[1, 0, 1, 1], self.conv.weight[1, 1, 1, 1] = 8.0, -8.0
                self.conv.weight[2, 1, 1, 1], self.conv.weight[2, 0, 1, 1] = 8.0, -8.0
                self.conv.bias.copy_(torch.tensor([0.0, -2.0, -2.0]))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x)

    return _export(Seg().eval(), path, size, ["scores"])


def boxes_scores_labels_onnx(path: Path, size: tuple[int, int] = (64, 64)) -> Path:
    """The YOLO-style head above with class-wise NMS inside the graph, exported in torchvision's
    convention: ``boxes [N, 4]``, ``scores [N]``, ``labels [N]`` (category ids 1 and 2), for a
    batch of one image."""
    import torch
    from torchvision.ops import batched_nms

    class Detector(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = _yolo_head()

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            out = self.head(x)[0]
            cx, cy, w, h = out[0], out[1], out[2], out[3]
            boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=1)
            scores, labels = out[4:].max(dim=0)
            keep = scores > 0.05
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep] + 1
            kept = batched_nms(boxes, scores, labels, 0.5)[:100]
            return boxes[kept], scores[kept], labels[kept]

    torch.onnx.export(
        Detector().eval(),
        (torch.zeros(1, 3, *size),),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["images"],
        output_names=["boxes", "scores", "labels"],
        dynamic_axes={"boxes": {0: "n"}, "scores": {0: "n"}, "labels": {0: "n"}},
    )
    return path
