"""Small detection and segmentation nets for the shapes demo, and their deterministic training.

Imports torch: only import this module lazily (when building or training a model).

Both nets are plain Conv-BN-ReLU stacks with nearest upsampling and concatenation, so they export
to ONNX (opset 17) and ``torch.export``, run on ONNX Runtime and OpenVINO, and quantize to int8
with ONNX Runtime QDQ or NNCF without special handling. Both take float32 RGB in [0, 1]
(no mean/std normalisation) and are trained at 64×64.

The detector's output follows the Ultralytics YOLO export convention, so the farm decodes it with
the code it uses for users' YOLO ONNX files: ``(B, 4 + C, A)`` with rows ``cx, cy, w, h`` in input
pixels followed by ``C`` sigmoid class scores, one column per anchor point (A = H/4 · W/4,
row-major). Non-maximum suppression happens outside the model.
"""

from __future__ import annotations

import contextlib
import io
import math
import time
from collections.abc import Callable
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from workloads.demos.shapes_data import CATEGORIES, SEG_CLASSES
from workloads.training import deterministic_torch


def _cbr(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    """3×3 Conv + BatchNorm + ReLU: the only block, because every runtime and quantizer fuses it."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


def _up_to(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Nearest upsampling of ``x`` to the spatial size of ``ref``: one ONNX ``Resize``.

    Sizes rather than scale factors: the exported graph then keeps the batch dimension symbolic,
    so ONNX Runtime's shape inference (``quant_pre_process``) completes before quantization.
    """
    return F.interpolate(x, size=ref.shape[-2:], mode="nearest")


# --------------------------------------------------------------------------------------------
# Detection


class ShapesDetector(nn.Module):
    """Anchor-free single-scale detector (stride 4) in the YOLO export layout.

    Backbone to stride 8, one top-down merge back to stride 4, a shared head predicting per
    anchor point four distances to the box sides (``(2·sigmoid)² · 8`` px, so at most 32 px) and
    ``C`` class logits. ``forward`` decodes to ``(B, 4 + C, A)``: ``cx, cy, w, h`` in input pixels
    and sigmoid scores (there is no separate objectness, as in YOLOv8).
    """

    stride = 4
    #: Distance to a box side at sigmoid = 0.5; the largest distance is four times this.
    side_scale = 8.0

    def __init__(self, num_classes: int = len(CATEGORIES), width: int = 16) -> None:
        super().__init__()
        w = width
        self.num_classes = num_classes
        self.stem = nn.Sequential(_cbr(3, w, 2), _cbr(w, w))
        self.stage2 = nn.Sequential(_cbr(w, 2 * w, 2), _cbr(2 * w, 2 * w))
        self.stage3 = nn.Sequential(_cbr(2 * w, 4 * w, 2), _cbr(4 * w, 4 * w), _cbr(4 * w, 4 * w))
        self.neck = _cbr(6 * w, 3 * w)
        self.head = _cbr(3 * w, 3 * w)
        self.pred = nn.Conv2d(3 * w, 4 + num_classes, 1)
        bias = cast(torch.Tensor, self.pred.bias)
        with torch.no_grad():  # start with a low score prior (0.01), as in RetinaNet/FCOS
            bias[4:].fill_(-math.log(99.0))
            bias[:4].zero_()

    def raw(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoded boxes ``(B, 4, A)`` xyxy in pixels and class logits ``(B, C, A)``.

        Training uses the logits (numerically stable losses); ``forward`` applies the sigmoid.
        """
        p2 = self.stage2(self.stem(x))
        p3 = self.stage3(p2)
        feat = self.head(self.neck(torch.cat([_up_to(p3, p2), p2], dim=1)))
        out = self.pred(feat)
        dist, logits = torch.split(out, [4, self.num_classes], dim=1)
        dist = (2.0 * torch.sigmoid(dist)) ** 2 * self.side_scale
        gh, gw = out.shape[-2], out.shape[-1]
        gy = (torch.arange(gh, dtype=x.dtype, device=x.device) + 0.5) * self.stride
        gx = (torch.arange(gw, dtype=x.dtype, device=x.device) + 0.5) * self.stride
        left, top, right, bottom = torch.split(dist, 1, dim=1)
        gx, gy = gx.view(1, 1, 1, gw), gy.view(1, 1, gh, 1)
        xyxy = torch.cat([gx - left, gy - top, gx + right, gy + bottom], dim=1)
        return xyxy.flatten(2), logits.flatten(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xyxy, logits = self.raw(x)
        x1, y1, x2, y2 = torch.split(xyxy, 1, dim=1)
        cxcywh = torch.cat([(x1 + x2) * 0.5, (y1 + y2) * 0.5, x2 - x1, y2 - y1], dim=1)
        return torch.cat([cxcywh, torch.sigmoid(logits)], dim=1)

    def anchor_points(self, height: int, width: int) -> torch.Tensor:
        """Centres ``(A, 2)`` (x, y) in pixels of the anchor points, in output column order."""
        gh, gw = height // self.stride, width // self.stride
        gy, gx = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
        return (torch.stack([gx, gy], dim=-1).reshape(-1, 2).float() + 0.5) * self.stride


def assign_targets(
    points: torch.Tensor, boxes: np.ndarray, labels: np.ndarray, radius: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """FCOS-style centre sampling: which object each anchor point learns, if any.

    A point is positive for an object when it lies inside the box and within ``radius`` pixels
    (per axis) of the box centre; a point claimed by several objects goes to the smallest. Every
    object keeps at least one point: the one nearest its centre has priority, and an object that
    still has none (its nearest point went to another object's centre) takes its nearest free
    point. Returns per point the class index (-1 for background) and the xyxy box it regresses.
    """
    n_points = len(points)
    cls = torch.full((n_points,), -1, dtype=torch.int64)
    target = torch.zeros((n_points, 4), dtype=torch.float32)
    if len(boxes) == 0:
        return cls, target
    b = torch.as_tensor(boxes, dtype=torch.float32)
    px, py = points[:, :1], points[:, 1:]
    centres = torch.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], dim=1)
    inside = (px > b[:, 0]) & (px < b[:, 2]) & (py > b[:, 1]) & (py < b[:, 3])
    near = ((px - centres[:, 0]).abs() <= radius) & ((py - centres[:, 1]).abs() <= radius)
    distance = ((points[:, None, :] - centres[None]) ** 2).sum(-1)  # (A, k)
    nearest = distance.argmin(0)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    cost = torch.where(inside & near, area[None, :], torch.tensor(math.inf))
    cost[nearest, torch.arange(len(b))] = area - 1e6  # the centre point comes first
    best_cost, best = cost.min(dim=1)
    owner = torch.where(torch.isfinite(best_cost), best, -1)
    for k in torch.argsort(area).tolist():
        if not bool((owner == k).any()):
            free = torch.where(owner < 0, distance[:, k], torch.tensor(math.inf))
            owner[free.argmin()] = k
    positive = owner >= 0
    cls[positive] = torch.as_tensor(labels, dtype=torch.int64)[owner[positive]]
    target[positive] = b[owner[positive]]
    return cls, target


def _giou(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """IoU and generalised IoU of matching xyxy boxes ``(n, 4)``."""
    lt, rb = torch.max(a[:, :2], b[:, :2]), torch.min(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(1)
    area_a = (a[:, 2:] - a[:, :2]).prod(1)
    area_b = (b[:, 2:] - b[:, :2]).prod(1)
    union = area_a + area_b - inter + 1e-7
    iou = inter / union
    hull = (torch.max(a[:, 2:], b[:, 2:]) - torch.min(a[:, :2], b[:, :2])).prod(1) + 1e-7
    return iou, iou - (hull - union) / hull


def _flip_batch(
    x: torch.Tensor,
    cls: torch.Tensor,
    target: torch.Tensor,
    grid: tuple[int, int],
    flip: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mirror the images where ``flip`` (B,) is set, with their per-point targets."""
    gh, gw = grid
    width = x.shape[-1]
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    cls_f = cls.view(-1, gh, gw).flip(-1).reshape(cls.shape)
    t = target.view(-1, gh, gw, 4).flip(2).reshape(target.shape)
    t = torch.stack([width - t[..., 2], t[..., 1], width - t[..., 0], t[..., 3]], dim=-1)
    cls = torch.where(flip[:, None], cls_f, cls)
    target = torch.where(flip[:, None, None], t, target)
    return x, cls, target


def detection_loss(
    model: ShapesDetector,
    x: torch.Tensor,
    cls: torch.Tensor,
    target: torch.Tensor,
    box_weight: float = 2.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Quality focal loss on the scores + GIoU loss on the boxes of positive points.

    The score target of a positive point is the IoU of its predicted box (as in GFL/VFL), so that
    scores rank detections by how well they are localised: this is what COCO mAP rewards.
    """
    xyxy, logits = model.raw(x)
    pred_boxes = xyxy.transpose(1, 2)  # (B, A, 4)
    logits = logits.transpose(1, 2)  # (B, A, C)
    positive = cls >= 0
    n_pos = max(int(positive.sum()), 1)
    iou, giou = _giou(pred_boxes[positive], target[positive])
    quality = torch.zeros_like(logits)
    quality[positive, cls[positive]] = iou.detach().clamp(min=0.01)
    prob = torch.sigmoid(logits)
    score_loss = F.binary_cross_entropy_with_logits(logits, quality, reduction="none")
    score_loss = (score_loss * (prob - quality).abs().pow(2)).sum() / n_pos
    box_loss = (1.0 - giou).sum() / n_pos
    loss = score_loss + box_weight * box_loss
    return loss, {"score_loss": float(score_loss.detach()), "box_loss": float(box_loss.detach())}


def train_detector(
    model: nn.Module,
    images: np.ndarray,
    boxes: list[np.ndarray],
    labels: list[np.ndarray],
    *,
    seed: int,
    epochs: int = 8,
    batch_size: int = 32,
    lr: float = 4e-3,
    weight_decay: float = 5e-4,
    radius: float = 6.0,
    threads: int | None = None,
) -> dict[str, Any]:
    """Train ``model`` on float32 NCHW images in [0, 1] with xyxy pixel boxes and 0-based labels.

    AdamW + one-cycle schedule, random horizontal flips; the data order and flips come from a
    generator seeded by ``seed`` and torch runs deterministic kernels on a fixed thread count, so
    two calls with the same arguments on the same machine give the same weights (build the
    model under the same ``torch.manual_seed`` too). Returns a JSON-able report.
    """
    if not isinstance(model, ShapesDetector):
        raise TypeError(f"train_detector trains a ShapesDetector, but got {type(model).__name__}.")
    xt = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    height, width = xt.shape[-2:]
    points = model.anchor_points(height, width)
    assigned = [
        assign_targets(points, b, lab, radius) for b, lab in zip(boxes, labels, strict=True)
    ]
    cls_all = torch.stack([a[0] for a in assigned])
    target_all = torch.stack([a[1] for a in assigned])
    grid = (height // model.stride, width // model.stride)

    def step(idx: torch.Tensor, flip: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        x, cls, target = _flip_batch(xt[idx], cls_all[idx], target_all[idx], grid, flip)
        return detection_loss(model, x.contiguous(memory_format=torch.channels_last), cls, target)

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


# --------------------------------------------------------------------------------------------
# Segmentation


class ShapesSegmenter(nn.Module):
    """A small U-Net: encoder to stride 8 and a decoder that merges skips back to full size.

    The full-resolution stage is narrow (``width // 2`` channels) but matters: most errors of a
    stride-2 decoder sit on the object edges, which weigh heavily in the IoU of small shapes.
    Input float32 RGB in [0, 1]; output ``(B, len(SEG_CLASSES), H, W)`` logits at the input size.
    """

    def __init__(self, num_classes: int = len(SEG_CLASSES), width: int = 16) -> None:
        super().__init__()
        w = width
        self.enc1 = _cbr(3, w // 2)
        self.enc2 = nn.Sequential(_cbr(w // 2, w, 2), _cbr(w, w))
        self.enc4 = nn.Sequential(_cbr(w, 2 * w, 2), _cbr(2 * w, 2 * w))
        self.enc8 = nn.Sequential(_cbr(2 * w, 4 * w, 2), _cbr(4 * w, 4 * w), _cbr(4 * w, 4 * w))
        self.dec4 = _cbr(6 * w, 2 * w)
        self.dec2 = _cbr(3 * w, w)
        self.dec1 = _cbr(w + w // 2, w)
        self.pred = nn.Conv2d(w, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e4 = self.enc4(e2)
        e8 = self.enc8(e4)
        d4 = self.dec4(torch.cat([_up_to(e8, e4), e4], dim=1))
        d2 = self.dec2(torch.cat([_up_to(d4, e2), e2], dim=1))
        d1 = self.dec1(torch.cat([_up_to(d2, e1), e1], dim=1))
        return self.pred(d1)


def train_segmenter(
    model: nn.Module,
    images: np.ndarray,
    masks: np.ndarray,
    *,
    seed: int,
    epochs: int = 10,
    batch_size: int = 32,
    lr: float = 5e-3,
    weight_decay: float = 5e-4,
    threads: int | None = None,
) -> dict[str, Any]:
    """Train ``model`` on float32 NCHW images in [0, 1] and (N, H, W) class-index masks.

    Any module returning ``(B, classes, H, W)`` logits works (the demo: :class:`ShapesSegmenter`).

    Cross-entropy (255 ignored), AdamW + one-cycle, random horizontal flips; deterministic as
    :func:`train_detector`. Returns a JSON-able report.
    """
    xt = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    yt = torch.from_numpy(np.asarray(masks).astype(np.int64))

    def step(idx: torch.Tensor, flip: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        x = torch.where(flip[:, None, None, None], xt[idx].flip(-1), xt[idx])
        y = torch.where(flip[:, None, None], yt[idx].flip(-1), yt[idx])
        logits = model(x.contiguous(memory_format=torch.channels_last))
        loss = F.cross_entropy(logits, y, ignore_index=255)
        return loss, {}

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


# --------------------------------------------------------------------------------------------
# Shared training loop


#: One training step: (sample indices, flip flags) -> (loss, extra numbers for the report).
StepFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict[str, float]]]


def _fit(
    model: nn.Module,
    n: int,
    step: StepFn,
    *,
    seed: int,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    threads: int | None,
) -> dict[str, Any]:
    """AdamW + one-cycle over whole epochs of seeded shuffles; ``step(idx, flip)`` -> loss.

    Trains in channels-last memory layout (about 1.7× faster on CPU) and hands the model back in
    the default layout, so its state dict and exports look like any other model's.
    """
    t0, cpu0 = time.perf_counter(), time.process_time()
    with deterministic_torch(seed, threads):
        gen = torch.Generator().manual_seed(seed)
        model.to(memory_format=torch.channels_last)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        steps_per_epoch = -(-n // batch_size)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=0.2
        )
        model.train()
        loss, parts = torch.tensor(0.0), cast(dict[str, float], {})
        for _ in range(epochs):
            order = torch.randperm(n, generator=gen)
            flips = torch.rand(n, generator=gen) < 0.5
            for i in range(0, n, batch_size):
                idx = order[i : i + batch_size]
                opt.zero_grad(set_to_none=True)
                loss, parts = step(idx, flips[idx])
                loss.backward()
                opt.step()
                sched.step()
        model.eval()
        model.to(memory_format=torch.contiguous_format)
    return {
        "final_loss": round(float(loss.detach()), 5),
        **{k: round(v, 5) for k, v in parts.items()},
        "steps": epochs * steps_per_epoch,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "weight_decay": weight_decay,
        "seed": seed,
        "train_seconds": round(time.perf_counter() - t0, 2),
        # CPU time of the process (all threads): less sensitive than wall time to a busy machine.
        "train_cpu_seconds": round(time.process_time() - cpu0, 2),
        "parameters": sum(p.numel() for p in model.parameters()),
    }


# --------------------------------------------------------------------------------------------
# Decoding and metrics (the task layer has its own; these check the demo models)


@torch.no_grad()
def predict(model: nn.Module, images: np.ndarray, batch_size: int = 128) -> np.ndarray:
    """Raw outputs of ``model`` (eval mode) on float32 NCHW ``images``."""
    model.eval()
    out = [
        model(torch.from_numpy(np.ascontiguousarray(images[i : i + batch_size])))
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(out).numpy()


def postprocess(
    raw: np.ndarray,
    *,
    conf: float = 0.001,
    iou: float = 0.7,
    max_det: int = 100,
    multi_label: bool = True,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """YOLO-layout ``(B, 4 + C, A)`` outputs -> per image (xyxy boxes, scores, 0-based labels).

    Class-wise NMS (``torchvision.ops.batched_nms``). With ``multi_label`` every (point, class)
    pair above ``conf`` is a candidate, as in Ultralytics validation; otherwise only the best class.
    """
    from torchvision.ops import batched_nms

    results = []
    for pred in torch.from_numpy(np.asarray(raw, dtype=np.float32)):
        cx, cy, w, h = pred[:4]
        boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=1)
        scores = pred[4:].T  # (A, C)
        if multi_label:
            point, label = torch.nonzero(scores > conf, as_tuple=True)
            score = scores[point, label]
        else:
            score, label = scores.max(dim=1)
            point = torch.nonzero(score > conf).squeeze(1)
            score, label = score[point], label[point]
        keep = batched_nms(boxes[point], score, label, iou)[:max_det]
        results.append(
            (boxes[point][keep].numpy(), score[keep].numpy(), label[keep].numpy().astype(np.int64))
        )
    return results


def coco_map(
    detections: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    coco_gt: dict[str, Any],
) -> dict[str, float]:
    """COCO bbox mAP@[.5:.95] and mAP@.5 of ``detections`` (image ``i`` = ``coco_gt`` image i)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    results = []
    for info, (boxes, scores, labels) in zip(coco_gt["images"], detections, strict=True):
        for (x1, y1, x2, y2), score, label in zip(boxes, scores, labels, strict=True):
            results.append(
                {
                    "image_id": info["id"],
                    "category_id": int(label) + 1,
                    "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                    "score": float(score),
                }
            )
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = coco_gt
        gt.createIndex()
        if not results:
            return {"map": 0.0, "map50": 0.0}
        evaluator = COCOeval(gt, gt.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {"map": float(evaluator.stats[0]), "map50": float(evaluator.stats[1])}


def confusion_matrix(pred: np.ndarray, target: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) counts, rows = truth; pixels labelled 255 are ignored."""
    valid = target != 255
    index = target[valid].astype(np.int64) * num_classes + pred[valid].astype(np.int64)
    return np.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)


def mean_iou(confusion: np.ndarray) -> float:
    """Mean over classes (background included) of TP / (TP + FP + FN)."""
    tp = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - tp
    return float(np.mean(tp[union > 0] / union[union > 0]))
