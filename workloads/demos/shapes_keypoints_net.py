"""A small pose net for the keypoints demo and its deterministic training.

Imports torch: only import this module lazily (when building or training a model).

The shapes demo's detector (:class:`~workloads.demos.shapes_nets.ShapesDetector`) with a wider
last convolution: per anchor point (stride 4) the box, the class logits and, per keypoint, an
offset from the anchor point (``16 · o`` px) and a visibility logit. ``forward`` follows the
Ultralytics pose export: ``(B, 4 + C + 3K, A)`` with rows ``cx, cy, w, h``, C sigmoid class
scores, then ``x, y, visibility`` per keypoint in input pixels; NMS happens outside the model.
Plain Conv-BN-ReLU stacks: exports to ONNX, runs on ONNX Runtime and OpenVINO, quantizes to int8.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from workloads.demos.shapes_nets import ShapesDetector, _fit, _giou, _up_to, assign_targets

#: Pixels per unit of a keypoint offset.
OFFSET_SCALE = 16.0


class ShapesPoseNet(ShapesDetector):
    """:class:`ShapesDetector` with K keypoints per detection (see the module doc)."""

    def __init__(self, num_classes: int = 1, num_keypoints: int = 5, width: int = 16) -> None:
        super().__init__(num_classes=num_classes, width=width)
        self.num_keypoints = num_keypoints
        old = self.pred
        self.pred = nn.Conv2d(old.in_channels, 4 + num_classes + 3 * num_keypoints, 1)
        bias, old_bias = cast(torch.Tensor, self.pred.bias), cast(torch.Tensor, old.bias)
        with torch.no_grad():
            self.pred.weight[: old.out_channels].copy_(old.weight)
            bias[: old.out_channels].copy_(old_bias)
            self.pred.weight[old.out_channels :].mul_(0.1)
            bias[old.out_channels :].zero_()

    def pose(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(boxes ``(B, 4, A)`` xyxy px, class logits ``(B, C, A)``, keypoints ``(B, K, 2, A)``
        px, visibility logits ``(B, K, A)``)."""
        p2 = self.stage2(self.stem(x))
        p3 = self.stage3(p2)
        out = self.pred(self.head(self.neck(torch.cat([_up_to(p3, p2), p2], dim=1))))
        k = self.num_keypoints
        dist, logits, kp = torch.split(out, [4, self.num_classes, 3 * k], dim=1)
        dist = (2.0 * torch.sigmoid(dist)) ** 2 * self.side_scale
        gh, gw = out.shape[-2], out.shape[-1]
        gy = ((torch.arange(gh, dtype=x.dtype, device=x.device) + 0.5) * self.stride).view(
            1, 1, gh, 1
        )
        gx = ((torch.arange(gw, dtype=x.dtype, device=x.device) + 0.5) * self.stride).view(
            1, 1, 1, gw
        )
        left, top, right, bottom = torch.split(dist, 1, dim=1)
        xyxy = torch.cat([gx - left, gy - top, gx + right, gy + bottom], dim=1).flatten(2)
        kp = kp.view(kp.shape[0], k, 3, gh, gw)
        kx = gx + OFFSET_SCALE * kp[:, :, 0]
        ky = gy + OFFSET_SCALE * kp[:, :, 1]
        points = torch.stack([kx, ky], dim=2).flatten(3)  # (B, K, 2, A)
        return xyxy, logits.flatten(2), points, kp[:, :, 2].flatten(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xyxy, logits, points, vis = self.pose(x)
        x1, y1, x2, y2 = torch.split(xyxy, 1, dim=1)
        cxcywh = torch.cat([(x1 + x2) * 0.5, (y1 + y2) * 0.5, x2 - x1, y2 - y1], dim=1)
        kps = torch.cat([points, torch.sigmoid(vis)[:, :, None]], dim=2)  # (B, K, 3, A)
        kps = kps.flatten(1, 2)
        return torch.cat([cxcywh, torch.sigmoid(logits), kps], dim=1)


def pose_loss(
    model: ShapesPoseNet,
    x: torch.Tensor,
    cls: torch.Tensor,
    boxes: torch.Tensor,
    keypoints: torch.Tensor,
    keypoint_weight: float = 4.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The detector's loss (quality focal on the scores, GIoU on the boxes) plus, on positive
    points, the keypoints' L1 error in units of the object's size."""
    xyxy, logits, points, _ = model.pose(x)
    pred_boxes = xyxy.transpose(1, 2)
    logits = logits.transpose(1, 2)
    positive = cls >= 0
    n_pos = max(int(positive.sum()), 1)
    iou, giou = _giou(pred_boxes[positive], boxes[positive])
    quality = torch.zeros_like(logits)
    quality[positive, cls[positive]] = iou.detach().clamp(min=0.01)
    prob = torch.sigmoid(logits)
    score_loss = F.binary_cross_entropy_with_logits(logits, quality, reduction="none")
    score_loss = (score_loss * (prob - quality).abs().pow(2)).sum() / n_pos
    box_loss = (1.0 - giou).sum() / n_pos
    pred_kp = points.permute(0, 3, 1, 2)[positive]  # (P, K, 2)
    size = (boxes[positive][:, 2:] - boxes[positive][:, :2]).prod(1).clamp(min=1).sqrt()
    kp_loss = ((pred_kp - keypoints[positive]).abs().sum(-1) / size[:, None]).mean(1).sum() / n_pos
    loss = score_loss + 2.0 * box_loss + keypoint_weight * kp_loss
    parts = {
        "score_loss": float(score_loss.detach()),
        "box_loss": float(box_loss.detach()),
        "keypoint_loss": float(kp_loss.detach()),
    }
    return loss, parts


def train_pose_net(
    model: nn.Module,
    images: np.ndarray,
    boxes: list[np.ndarray],
    keypoints: list[np.ndarray],
    *,
    seed: int,
    epochs: int = 12,
    batch_size: int = 32,
    lr: float = 4e-3,
    weight_decay: float = 5e-4,
    radius: float = 6.0,
    threads: int | None = None,
) -> dict[str, Any]:
    """Train ``model`` on float32 NCHW images in [0, 1], xyxy pixel boxes and keypoints
    ``[n, K, 2]`` of one class (no flips: a mirror would swap the keypoints' names). Seeded and
    deterministic like :func:`workloads.demos.shapes_nets.train_detector`."""
    if not isinstance(model, ShapesPoseNet):
        raise TypeError(f"train_pose_net trains a ShapesPoseNet, but got {type(model).__name__}.")
    xt = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    points = model.anchor_points(*xt.shape[-2:])
    cls_all, box_all, kp_all = [], [], []
    for b, kp in zip(boxes, keypoints, strict=True):
        owner, target = assign_targets(points, b, np.arange(len(b)), radius)
        kp_t = torch.as_tensor(np.asarray(kp, dtype=np.float32).reshape(len(b), -1, 2))
        kp_target = torch.zeros((len(points), model.num_keypoints, 2))
        kp_target[owner >= 0] = kp_t[owner[owner >= 0]] if len(b) else kp_target[owner >= 0]
        cls_all.append(torch.where(owner >= 0, 0, -1))
        box_all.append(target)
        kp_all.append(kp_target)
    cls_t, box_t, kp_t = torch.stack(cls_all), torch.stack(box_all), torch.stack(kp_all)

    def step(idx: torch.Tensor, flip: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        x = xt[idx].contiguous(memory_format=torch.channels_last)
        return pose_loss(model, x, cls_t[idx], box_t[idx], kp_t[idx])

    return _fit(
        model,
        len(xt),
        step,
        seed=seed,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        threads=threads,
    )
