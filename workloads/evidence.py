"""Per-image evidence: what one trial did on each eval image, keyed by the image's stable id.

A quality number on a few hundred images is a point estimate; whether an int8 build is worse
than fp32 is decided by the images it changed. A task with the :class:`PerImage` ability
returns, for a trial's predictions on the eval split, an :class:`Evidence`: per image its own
score, what was predicted, with what confidence and (for right/wrong outcomes) whether it was
right, plus the task's arrays that recompute the primary metric on any multiset of the images.
The engine stores it beside the trial; paired bootstrap intervals, McNemar's test, flips, the
gate's image-by-image comparison of two jobs and the error gallery are computed from it
(:mod:`farm.evidence`).

This module imports numpy only (tasks travel to Ray workers and are imported when a job file is
validated).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    from workloads.data import Split, WorkloadData


@dataclass(frozen=True, eq=False)
class Evidence:
    """One trial's per-image outcomes on the eval split (row ``i`` is image ``ids[i]``)."""

    #: Stable image ids: a file's path relative to its data folder, or ``<dataset>/<index>``
    #: for an embedded data set. Two trials are compared image by image only when their ids
    #: are the same, in the same order.
    ids: tuple[str, ...]
    #: The image's own score, higher is better, on the scale of the primary metric where the
    #: task has one per image (1/0 for a right/wrong classification, the image's AP, its mIoU,
    #: ``1 - CER`` of a text line): flips are changes of it beyond the task's
    #: :attr:`PerImage.flip_threshold`.
    score: np.ndarray
    #: What the model predicted, as a short text a person reads in the gallery ("7",
    #: "3 boxes", the decoded string).
    predicted: tuple[str, ...]
    #: The prediction's confidence (NaN where the task has none).
    confidence: np.ndarray
    #: Right/wrong per image where outcomes are binary (classification), else None: McNemar's
    #: exact test then applies to a pair of trials.
    correct: np.ndarray | None = None
    #: The task's own arrays that :meth:`PerImage.resampled_quality` reads (detections' match
    #: flags, per-image intersections and unions, edit distances); stored as they are.
    arrays: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.ids)
        for name in ("score", "confidence"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"evidence: {name} has {len(getattr(self, name))} rows, not {n}")
        if len(self.predicted) != n or (self.correct is not None and len(self.correct) != n):
            raise ValueError(f"evidence: predicted/correct must have {n} rows")

    def __len__(self) -> int:
        return len(self.ids)

    def same_images(self, other: Evidence) -> bool:
        """Whether ``other`` was judged on the same images, in the same order."""
        return self.ids == other.ids


class PerImage(abc.ABC):
    """Mix-in of tasks that keep per-image evidence (:class:`Evidence`) of every trial."""

    has_evidence: ClassVar[bool] = True
    #: How far an image's own score must fall (rise) against the baseline's for the image to
    #: count as broken (fixed). Binary scores flip at 0.5; continuous ones state their own.
    flip_threshold: ClassVar[float] = 0.5
    #: Centre the paired interval on the estimate instead of where the resamples fall. True
    #: for a ranking metric such as COCO AP: the estimate on a finite set is biased (precision's
    #: envelope is a maximum over noisy points) and the resamples' mean carries that bias once
    #: more, so the plain percentile interval sits further from the truth than the estimate
    #: (``benchmarks/map_coverage.py``, docs/kpis.md). A mean or a ratio of sums (accuracy,
    #: mIoU, CER) keeps the plain percentile interval.
    interval_around_estimate: ClassVar[bool] = False

    @abc.abstractmethod
    def evidence(
        self, predictions: Any, split: Split, reference: Any, data: WorkloadData
    ) -> Evidence:
        """The per-image evidence of ``predictions`` on ``split``: against its ground truth when
        it has one, else against ``reference`` (the fp32 model's predictions), matching the
        primary metric the job optimises. The arguments are :meth:`Task.quality`'s (``data``
        names the classes and categories); ``Evidence.ids`` are ``split.image_ids()``."""

    def draw(self, image: np.ndarray, evidence: Evidence, index: int) -> np.ndarray:
        """The gallery's drawing hook: ``image`` (``[H, W, 3]`` uint8, the eval image as the
        model saw it) with what this trial predicted for image ``index`` of ``evidence`` drawn
        on it; the gallery puts fp32's and the candidate's side by side. The default writes
        ``evidence.predicted[index]`` and its confidence (a label, a decoded string); tasks
        with geometry override it (boxes, masks, keypoints) from their ``arrays``."""
        from workloads.drawing import caption

        conf = float(evidence.confidence[index])
        text = evidence.predicted[index] + ("" if np.isnan(conf) else f" {conf:.2f}")
        return caption(image, text)

    @abc.abstractmethod
    def resampled_quality(self, evidence: Evidence, weights: np.ndarray) -> np.ndarray:
        """The primary metric recomputed for each row of ``weights`` (``[B, N]`` image
        multiplicities; a row of ones gives the metric of the whole split, exactly as
        :meth:`Task.quality` computes it). What paired bootstrap intervals resample."""


def weighted_mean(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The mean of per-image ``values`` for each row of ``weights`` ``[B, N]`` (what a metric
    that is a mean over images, such as accuracy, is on a resample)."""
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (w @ np.asarray(values, dtype=np.float64)) / w.sum(axis=1)


#: Evidence arrays named ``kpi/<metric>`` hold a KPI's per-image terms: the KPI is their mean
#: over the images where they are finite (``kpi/brier`` on every labelled image,
#: ``kpi/fn_rate`` 1/0 on the positive images only, NaN elsewhere), so a resample recomputes it
#: as the primary metric is recomputed.
KPI_TERMS = "kpi/"
#: Evidence arrays named ``slice/<name>`` mark the images of a user slice (booleans): the
#: slice's metric ``slice/<name>`` is the primary metric on them.
SLICES = "slice/"


def kpi_terms(evidence: Evidence) -> dict[str, np.ndarray]:
    """KPI name -> its per-image terms (``brier`` -> ``arrays["kpi/brier"]``)."""
    return {
        k.removeprefix(KPI_TERMS): np.asarray(v, dtype=np.float64)
        for k, v in evidence.arrays.items()
        if k.startswith(KPI_TERMS)
    }


def slice_masks(evidence: Evidence) -> dict[str, np.ndarray]:
    """Slice metric name (``slice/dark``) -> which images are in the slice."""
    return {
        k: np.asarray(v, dtype=bool) for k, v in evidence.arrays.items() if k.startswith(SLICES)
    }


def with_arrays(evidence: Evidence, arrays: Mapping[str, np.ndarray]) -> Evidence:
    """``evidence`` with ``arrays`` added (KPI terms and slice masks the KPI layer knows)."""
    from dataclasses import replace

    return replace(evidence, arrays={**evidence.arrays, **arrays})
