"""A candidate against a baseline judged on the same images: the change of the primary metric
with its paired bootstrap interval, the images it broke and fixed, McNemar's exact test.

Paired: each resample draws images, and both trials are scored on the *same* draw, so what
the interval measures is the candidate's change, not the spread of either score. The point
estimate is the change on the whole split (a row of ones, exactly the stored qualities); the
interval is the resamples' percentile interval, moved to sit around the estimate for a ranking
metric such as COCO mAP (:attr:`~workloads.evidence.PerImage.interval_around_estimate`), whose
resamples' mean carries the estimate's small-set bias a second time.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from farm.evidence.settings import EvidenceSettings
from farm.evidence.stats import (
    centred_interval,
    mcnemar_exact,
    percentile_interval,
    seeded_weights,
)
from workloads.evidence import Evidence, PerImage


@dataclass(frozen=True)
class Comparison:
    """A candidate's primary metric against its baseline's, image by image."""

    metric: str
    higher_is_better: bool
    #: The baseline's and the candidate's metric on the whole split.
    baseline: float
    value: float
    #: The paired bootstrap interval of ``value - baseline``.
    low: float
    high: float
    confidence: float
    resamples: int
    seed: int
    #: Images both were judged on.
    n_images: int
    #: Images whose own score fell (rose) by more than ``flip_threshold``.
    broken: int
    fixed: int
    flip_threshold: float
    #: McNemar's exact two-sided p-value (right/wrong outcomes only, else None).
    p_value: float | None = None
    #: Seconds the interval, flips and test took.
    seconds: float = 0.0

    @property
    def delta(self) -> float:
        """The change, ``value - baseline`` (its sign as the metric's)."""
        return self.value - self.baseline

    @property
    def sense(self) -> int:
        return 1 if self.higher_is_better else -1

    @property
    def drop(self) -> float:
        """The change oriented as ``quality_drop``: positive when worse."""
        return -self.delta * self.sense

    @property
    def drop_interval(self) -> tuple[float, float]:
        """The interval of :attr:`drop` (low, high): high is the worst plausible drop."""
        ends = sorted((-self.low * self.sense, -self.high * self.sense))
        return ends[0], ends[1]

    @property
    def significant(self) -> bool:
        """Whether the interval excludes no change."""
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            return False
        return self.low > 0 or self.high < 0

    @property
    def verdict(self) -> str:
        """``better`` | ``worse`` | ``no significant change``."""
        if not self.significant:
            return "no significant change"
        return "worse" if self.drop > 0 else "better"

    def rate(self, count: int) -> float:
        return count / self.n_images if self.n_images else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "delta": self.delta,
            "significant": self.significant,
            "broken_rate": self.rate(self.broken),
            "fixed_rate": self.rate(self.fixed),
        }

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Comparison:
        return cls(**{f.name: row[f.name] for f in fields(cls) if f.name in row})


def compare(
    task: PerImage,
    baseline: Evidence,
    candidate: Evidence,
    *,
    metric: str,
    higher_is_better: bool,
    settings: EvidenceSettings | None = None,
    baseline_draws: np.ndarray | None = None,
) -> Comparison:
    """``candidate`` against ``baseline`` (the same images, in the same order).
    ``baseline_draws``: the baseline's :func:`resampled` metric under the same settings, when
    the caller keeps it (a job compares every candidate of a target with one baseline, and the
    same seed draws the same resamples: the baseline's share is paid once)."""
    if not baseline.same_images(candidate):
        raise ValueError(
            "the two trials were judged on different images: they cannot be compared image by image"
        )
    settings = settings or EvidenceSettings()
    start = time.perf_counter()
    n = len(baseline)
    whole = np.ones((1, n))
    base_value = float(task.resampled_quality(baseline, whole)[0])
    value = float(task.resampled_quality(candidate, whole)[0])
    if baseline_draws is None:
        baseline_draws = resampled(task, baseline, settings)
    deltas = resampled(task, candidate, settings) - baseline_draws
    broken, fixed = flips(baseline, candidate, task.flip_threshold)
    p_value = None
    if baseline.correct is not None and candidate.correct is not None:
        b = int(np.sum(baseline.correct & ~candidate.correct))
        c = int(np.sum(~baseline.correct & candidate.correct))
        p_value = mcnemar_exact(b, c)
    return comparison_of(
        metric,
        higher_is_better,
        (base_value, value),
        deltas,
        settings,
        (n, broken, fixed),
        flip_threshold=task.flip_threshold,
        p_value=p_value,
        seconds=time.perf_counter() - start,
        centred=task.interval_around_estimate,
    )


def comparison_of(
    metric: str,
    higher_is_better: bool,
    values: tuple[float, float],
    deltas: np.ndarray,
    settings: EvidenceSettings,
    counts: tuple[int, int, int],
    *,
    flip_threshold: float,
    p_value: float | None = None,
    seconds: float = 0.0,
    centred: bool = False,
) -> Comparison:
    """A comparison from the two whole-set values (baseline, candidate), the resampled changes
    and (images, broken, fixed); ``centred``: the interval sits around the estimate (the
    task's rule, :attr:`~workloads.evidence.PerImage.interval_around_estimate`)."""
    if centred:
        low, high = centred_interval(deltas, values[1] - values[0], settings.confidence)
    else:
        low, high = percentile_interval(deltas, settings.confidence)
    n, broken, fixed = counts
    return Comparison(
        metric=metric,
        higher_is_better=higher_is_better,
        baseline=values[0],
        value=values[1],
        low=low,
        high=high,
        confidence=settings.confidence,
        resamples=settings.resamples,
        seed=settings.seed,
        n_images=n,
        broken=broken,
        fixed=fixed,
        flip_threshold=float(flip_threshold),
        p_value=p_value,
        seconds=seconds,
    )


def resampled(task: PerImage, evidence: Evidence, settings: EvidenceSettings) -> np.ndarray:
    """The primary metric of each bootstrap resample (``settings``: how many, which seed)."""
    draws = [
        task.resampled_quality(evidence, w)
        for w in seeded_weights(len(evidence), settings.resamples, settings.seed)
    ]
    return np.concatenate(draws) if draws else np.zeros(0)


#: Decimals a change of an image's own score is rounded to before it is held against the
#: threshold: a change that is the threshold itself (an image's mAP from 0.7 to 0.8) is not more
#: than it, whichever way the last bit of its floating-point sum fell.
CHANGE_DECIMALS = 9


def changes(baseline: Evidence, candidate: Evidence) -> np.ndarray:
    """Each image's change of its own score, rounded to :data:`CHANGE_DECIMALS`; NaN where
    either trial has no score of its own for it."""
    a, b = np.asarray(baseline.score, float), np.asarray(candidate.score, float)
    return np.round(b - a, CHANGE_DECIMALS)


def flips(baseline: Evidence, candidate: Evidence, threshold: float) -> tuple[int, int]:
    """(broken, fixed): images whose own score fell (rose) by more than ``threshold``; images
    without a score of their own in either trial (NaN) are not counted."""
    return flip_counts(changes(baseline, candidate), threshold)


def flip_counts(change: np.ndarray, threshold: float) -> tuple[int, int]:
    """(broken, fixed) of per-image ``changes`` (NaN: not counted)."""
    change = change[np.isfinite(change)]
    return int(np.sum(change < -threshold)), int(np.sum(change > threshold))


def flipped(
    baseline: Evidence, candidate: Evidence, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the broken and the fixed images, the largest change first (the gallery's
    order)."""
    change = changes(baseline, candidate)
    change[~np.isfinite(change)] = 0.0
    broken = np.flatnonzero(change < -threshold)
    fixed = np.flatnonzero(change > threshold)
    return broken[np.argsort(change[broken], kind="stable")], fixed[
        np.argsort(-change[fixed], kind="stable")
    ]
