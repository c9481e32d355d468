"""A small keypoints data set and hand-made pose ONNX models for the keypoints tests.

The coloured squares of :mod:`support.dense_data`, each with five keypoints (its four corners,
clockwise from the top left, and its centre), written as a user would have them: PNG images and
a COCO person-keypoints JSON. The models extend the hand-made YOLO head there with five keypoint
rows per anchor (its 16×16 box's corners and centre), so that kp_map is far from 0:

* ``yolo_pose_onnx``: a raw pose head ``[B, 4 + 2 + 5·3, A]``, ``kpt_shape`` in its metadata;
* ``end2end_pose_onnx``: the same after a top-k (no NMS), ``[B, 50, 6 + 5·3]``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from support.dense_data import SIZE, write_squares

#: The keypoints of a square, as offsets from its top-left corner, and their sigmas.
OFFSETS = ((0, 0), (SIZE, 0), (SIZE, SIZE), (0, SIZE), (SIZE / 2, SIZE / 2))
NAMES = ["top_left", "top_right", "bottom_right", "bottom_left", "centre"]
SIGMAS = [0.15, 0.15, 0.15, 0.15, 0.2]


def write_square_keypoints(root: Path, n: int = 10, seed: int = 0) -> tuple[Path, Path]:
    """(images folder, keypoints JSON) of ``n`` images of squares with their five keypoints."""
    images_dir, coco, _ = write_squares(root, n, seed)
    doc = json.loads(coco.read_text())
    for ann in doc["annotations"]:
        x, y, _, _ = ann["bbox"]
        ann["keypoints"] = [v for dx, dy in OFFSETS for v in (x + dx, y + dy, 2)]
        ann["num_keypoints"] = len(OFFSETS)
    for cat in doc["categories"]:
        cat["keypoints"] = NAMES
    path = root / "person_keypoints.json"
    path.write_text(json.dumps(doc))
    return images_dir, path


def _pose_head() -> Any:
    import torch

    from support.dense_data import _yolo_head

    class Pose(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.detect = _yolo_head()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.detect(x)
            cx, cy = out[:, 0:1], out[:, 1:2]
            rows = []
            for dx, dy in OFFSETS:
                rows += [cx + dx - SIZE / 2, cy + dy - SIZE / 2, torch.ones_like(cx)]
            return torch.cat([out, *rows], dim=1)

    return Pose().eval()


def _export(module: Any, path: Path, output: str, metadata: dict[str, str]) -> Path:
    import onnx
    import torch

    torch.onnx.export(
        module,
        (torch.zeros(1, 3, 64, 64),),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["images"],
        output_names=[output],
        dynamic_axes={"images": {0: "batch"}, output: {0: "batch"}},
    )
    model = onnx.load(str(path))
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


def yolo_pose_onnx(path: Path, kpt_shape: str | None = "[5, 3]") -> Path:
    """The raw pose head (see the module doc); ``kpt_shape`` metadata unless None."""
    meta = {"names": "{0: 'red', 1: 'green'}"}
    if kpt_shape is not None:
        meta["kpt_shape"] = kpt_shape
    return _export(_pose_head(), path, "output0", meta)


def end2end_pose_onnx(path: Path) -> Path:
    """The pose head's 50 best anchors as ``[B, 50, x1, y1, x2, y2, score, class, kpts]``."""
    import torch

    class End2End(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pose = _pose_head()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.pose(x)  # [B, 21, A]
            scores, labels = out[:, 4:6].max(dim=1)
            top = scores.topk(50, dim=1).indices  # [B, 50]
            picked = torch.gather(out, 2, top[:, None].expand(-1, out.shape[1], -1))
            cx, cy, w, h = picked[:, 0], picked[:, 1], picked[:, 2], picked[:, 3]
            box = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=2)
            score = torch.gather(scores, 1, top)[..., None]
            label = torch.gather(labels, 1, top)[..., None].float()
            return torch.cat([box, score, label, picked[:, 6:].transpose(1, 2)], dim=2)

    return _export(End2End().eval(), path, "output0", {"kpt_shape": "[5, 3]"})
