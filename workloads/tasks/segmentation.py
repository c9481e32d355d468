"""Segmentation: per-pixel class scores → label maps, judged by mIoU.

The model's output is ``[B, C, H, W]`` class scores at the input size. The label map is their
argmax, resized (nearest neighbour) back to the original image size when preprocessing resized
the image, and compared with the ground-truth mask there (pixel value = class index, 255 =
ignore). mIoU is the mean over classes of intersection over union from one confusion matrix
over the whole split, counting the classes that occur in the ground truth or the predictions.
Fidelity without ground truth: ``miou_vs_fp32`` (the fp32 model's label maps as ground truth)
and ``pixel_agreement``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from workloads.evidence import Evidence, PerImage
from workloads.tasks.base import ModelFacts, PostProcessing, Task

if TYPE_CHECKING:
    from farm._validate import Fields
    from workloads.data import Split, WorkloadData

IGNORE = 255


@dataclass(frozen=True)
class Segmentation(PerImage, PostProcessing, Task):
    name: ClassVar[str] = "segmentation"
    labelled_metrics: ClassVar[tuple[str, ...]] = ("miou", "pixel_accuracy")
    fidelity_metrics: ClassVar[tuple[str, ...]] = ("miou_vs_fp32", "pixel_agreement")
    per_class_prefixes: ClassVar[tuple[str, ...]] = ("iou/",)
    truth: ClassVar[tuple[str, ...]] = ("masks",)
    class_count: ClassVar[str | None] = "channels"

    num_classes: int = 2

    @classmethod
    def from_section(cls, section: Fields, *, facts: ModelFacts) -> Segmentation:
        """The class count comes from the model source (its output channels, the weights, or
        ``[workload] num_classes``, which the source checks)."""
        if facts.num_classes is None:
            raise section.error(
                "num_classes",
                "a positive integer (required for a segmentation "
                "workload whose model does not say it)",
            )
        return cls(num_classes=facts.num_classes)

    @property
    def first_output_only(self) -> bool:
        return True

    def decode(
        self, outputs: Sequence[np.ndarray], infos: Sequence[dict[str, Any] | None]
    ) -> list[np.ndarray]:
        scores = np.asarray(outputs[0])
        maps = scores[: len(infos)].argmax(axis=1).astype(np.uint8)
        return [to_original(m, info) for m, info in zip(maps, infos, strict=True)]

    def collect(self, predictions: list[Any]) -> list[np.ndarray]:
        return list(predictions)

    def check_outputs(
        self, outputs: Sequence[np.ndarray], where: str, data: WorkloadData | None = None
    ) -> None:
        first = np.asarray(outputs[0])
        if first.ndim != 4 or first.shape[1] != self.num_classes:
            raise ValueError(
                f"{where}: a segmenter's first output must be class scores [B, "
                f"{self.num_classes}, H, W] (`num_classes` = {self.num_classes}), got shape "
                f"{first.shape}"
            )

    def quality(
        self, predictions: Any, split: Split, reference: Any, data: WorkloadData
    ) -> dict[str, float]:
        out: dict[str, float] = {}
        names = class_names(data, self.num_classes)
        if split.truth is not None:
            cm = confusion(predictions, split.truth, self.num_classes)
            iou = per_class_iou(cm)
            out["miou"] = float(np.nanmean(iou)) if np.isfinite(iou).any() else 0.0
            valid = cm.sum()
            out["pixel_accuracy"] = float(np.trace(cm) / valid) if valid else 0.0
            out.update({f"iou/{names[c]}": float(v) for c, v in enumerate(iou) if np.isfinite(v)})
        if reference is not None:
            cm = confusion(predictions, reference, self.num_classes)
            iou = per_class_iou(cm)
            out["miou_vs_fp32"] = float(np.nanmean(iou)) if np.isfinite(iou).any() else 1.0
            out["pixel_agreement"] = float(np.trace(cm) / max(cm.sum(), 1))
        return out

    # -- per-image evidence ----------------------------------------------------------------------
    #: An image whose own mIoU falls (rises) by more than this counts as broken (fixed).
    flip_threshold: ClassVar[float] = 0.1

    def evidence(
        self, predictions: Any, split: Split, reference: Any, data: WorkloadData
    ) -> Evidence:
        """Per image and class: its pixels of intersection, predicted and true (against the
        ground truth, else fp32's label maps); an image's own score is its mIoU."""
        truth = split.truth if split.truth is not None else reference
        if truth is None:
            raise ValueError("evidence needs ground-truth masks or the fp32 model's label maps")
        k = self.num_classes
        cms = [confusion([p], [t], k) for p, t in zip(predictions, truth, strict=True)]
        arrays = {
            "intersection": np.array([np.diag(cm) for cm in cms], dtype=np.int64).reshape(-1, k),
            "predicted": np.array([cm.sum(axis=0) for cm in cms], dtype=np.int64).reshape(-1, k),
            "truth": np.array([cm.sum(axis=1) for cm in cms], dtype=np.int64).reshape(-1, k),
            "empty": np.array(0.0 if split.truth is not None else 1.0),
            # the label maps at (at most) 96 pixels, for the gallery
            "draw_masks": np.stack([_small(np.asarray(p)) for p in predictions]),
        }
        score = np.array([_miou(cm, float(arrays["empty"])) for cm in cms])
        present = [
            np.flatnonzero(np.bincount(np.asarray(p).ravel(), minlength=k)) for p in predictions
        ]
        return Evidence(
            ids=split.image_ids(),
            score=score,
            predicted=tuple(", ".join(str(c) for c in cs) for cs in present),
            confidence=np.full(len(score), np.nan),
            arrays=arrays,
        )

    def draw(self, image: np.ndarray, evidence: Evidence, index: int) -> np.ndarray:
        """The predicted label map blended over the image."""
        from workloads.drawing import mask

        text = f"classes {evidence.predicted[index]}, own mIoU {evidence.score[index]:.2f}"
        return mask(image, evidence.arrays["draw_masks"][index], text)

    def resampled_quality(self, evidence: Evidence, weights: np.ndarray) -> np.ndarray:
        """mIoU of the resampled images: per-class sums of intersections and unions, as one
        confusion matrix over the images (each as often as it is drawn) gives them."""
        w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
        a = evidence.arrays
        tp = w @ a["intersection"].astype(np.float64)
        union = w @ a["predicted"].astype(np.float64) + w @ a["truth"].astype(np.float64) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(union > 0, tp / union, np.nan)
        out = np.full(len(w), float(a["empty"]))
        some = np.isfinite(iou).any(axis=1)
        if some.any():
            out[some] = np.nanmean(iou[some], axis=1)
        return out


def _small(label_map: np.ndarray, side: int = 96) -> np.ndarray:
    """A label map scaled (nearest neighbour) to ``side`` × ``side`` pixels."""
    rows = np.arange(side) * label_map.shape[0] // side
    cols = np.arange(side) * label_map.shape[1] // side
    return label_map[rows[:, None], cols[None, :]].astype(np.uint8)


def _miou(cm: np.ndarray, empty: float) -> float:
    iou = per_class_iou(cm)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else empty


def to_original(label_map: np.ndarray, info: dict[str, Any] | None) -> np.ndarray:
    """A label map resized (nearest neighbour) to the image's original size, when it differs."""
    if not info or "orig_hw" not in info:
        return label_map
    h, w = (int(v) for v in info["orig_hw"])
    if label_map.shape == (h, w):
        return label_map
    rows = (np.arange(h) * label_map.shape[0] // h).clip(0, label_map.shape[0] - 1)
    cols = (np.arange(w) * label_map.shape[1] // w).clip(0, label_map.shape[1] - 1)
    return label_map[rows[:, None], cols[None, :]]


def confusion(predicted: Sequence[np.ndarray], truth: Sequence[np.ndarray], k: int) -> np.ndarray:
    """``k × k`` confusion matrix (rows: truth, columns: prediction), ignoring pixels whose
    truth is 255. Predictions are class indices ``0..k-1`` (an argmax over k channels)."""
    cm = np.zeros((k, k), dtype=np.int64)
    for p, t in zip(predicted, truth, strict=True):
        t = np.asarray(t).ravel().astype(np.int64)
        p = np.asarray(p).ravel().astype(np.int64)
        if p.shape != t.shape:
            raise ValueError(f"a predicted mask has {p.size} pixels, its ground truth {t.size}")
        if p.size and (p.min() < 0 or p.max() >= k):
            raise ValueError(f"predicted classes must lie in 0..{k - 1}")
        valid = t != IGNORE
        if t[valid].size and t[valid].max() >= k:
            raise ValueError(f"a ground-truth mask holds class {t[valid].max()} >= {k}")
        cm += np.bincount(t[valid] * k + p[valid], minlength=k * k).reshape(k, k)
    return cm


def per_class_iou(cm: np.ndarray) -> np.ndarray:
    """IoU per class; NaN for a class that occurs neither in truth nor in predictions."""
    tp = np.diag(cm).astype(np.float64)
    union = cm.sum(axis=0) + cm.sum(axis=1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def class_names(data: WorkloadData, k: int) -> list[str]:
    names = data.class_names
    if isinstance(names, tuple | list) and len(names) == k:
        return [str(n) for n in names]
    return [str(i) for i in range(k)]
