"""Release KPIs judged image by image, as the primary metric is (:mod:`farm.evidence.paired`).

A KPI that is a mean over a group of images, or the primary metric on a slice of them, changes
by chance as the primary metric does; each gets the change against the baseline with its
paired bootstrap interval, drawn from the same seeded resamples as the primary metric:

* :func:`compare_groups`: each class's accuracy (``acc/<class>``), a mean of right/wrong over
  the images of the class, with McNemar's test within the class;
* :func:`compare_terms`: KPIs stored as per-image terms (``kpi/<metric>`` evidence arrays: a
  classifier's ``brier`` and ``nll``, the operating point's ``fp_rate`` and ``fn_rate``), the
  mean of the terms over the images where they are defined;
* :func:`compare_slices`: the primary metric on each user slice (``slice/<name>``), and the
  ``worst_slice`` and ``slice_gap`` those make, recomputed on every resample.

ECE is not a mean over images (it bins them) and robustness is measured on corrupted copies
whose evidence is not kept: those KPIs have no interval. :func:`compare_kpis` runs the three
as a job records them (the recorder and ``benchmarks/interval_cost.py`` call it).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from farm.evidence.paired import Comparison, changes, comparison_of, flip_counts
from farm.evidence.settings import EvidenceSettings
from farm.evidence.stats import mcnemar_exact, seeded_weights
from workloads.evidence import Evidence, PerImage, kpi_terms, slice_masks
from workloads.kpis.spec import LOWER_IS_BETTER

#: An image's KPI term must move by more than this to count as broken (fixed): a false positive
#: appearing (1/0 terms), or a Brier / NLL term jumping by half a unit.
TERM_FLIP = 0.5


def _draws(
    n: int, settings: EvidenceSettings, metric: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """``metric`` (``[B, N]`` weights -> ``[B, ...]``) on every seeded resample, stacked (the
    same draws as the primary metric's: :func:`~farm.evidence.stats.seeded_weights`)."""
    drawn = [metric(w) for w in seeded_weights(n, settings.resamples, settings.seed)]
    return np.concatenate(drawn) if drawn else np.zeros(0)


def compare_kpis(
    task: PerImage,
    baseline: Evidence,
    candidate: Evidence,
    *,
    higher_is_better: bool,
    class_names: Sequence[Any] | Mapping[int, Any] | None = None,
    settings: EvidenceSettings | None = None,
) -> list[Comparison]:
    """Every KPI of ``candidate`` judged against ``baseline`` image by image: per-class accuracy
    (tasks that report ``acc/<class>``, evidence with labels), the per-image terms, the
    slices. ``class_names``: the data set's, to name the classes (else their indices)."""
    settings = settings or EvidenceSettings()
    groups = class_groups(candidate, class_names)
    if "acc/" not in getattr(task, "per_class_prefixes", ()):
        groups = {}
    return [
        *compare_groups(baseline, candidate, groups, settings=settings),
        *compare_terms(baseline, candidate, settings=settings),
        *compare_slices(
            task,
            baseline,
            candidate,
            higher_is_better=higher_is_better,
            settings=settings,
        ),
    ]


def class_groups(
    evidence: Evidence, class_names: Sequence[Any] | Mapping[int, Any] | None = None
) -> dict[str, np.ndarray]:
    """``acc/<class>`` -> the mask of the images labelled that class (none without labels),
    named as the task's own per-class metrics are (``workloads.tasks.classification.
    class_labels``: by a sequence of names where it names the class, else by the index; a
    mapping of ids to names, as detection data carry, is not used)."""
    truth = evidence.arrays.get("truth")
    if truth is None:
        return {}
    named = {} if isinstance(class_names, Mapping) else dict(enumerate(class_names or ()))
    return {f"acc/{named.get(c, c)}": truth == c for c in np.unique(truth).tolist()}


def compare_groups(
    baseline: Evidence,
    candidate: Evidence,
    groups: dict[str, np.ndarray],
    *,
    settings: EvidenceSettings | None = None,
) -> list[Comparison]:
    """For right/wrong evidence, each KPI that is a mean over a group of images (``acc/<class>``
    over the images of a class): its change with the paired interval from the same resamples
    as the primary metric (the group's images as they are drawn), its flips and McNemar's test
    within the group."""
    if baseline.correct is None or candidate.correct is None or not groups:
        return []
    settings = settings or EvidenceSettings()
    a, b = baseline.correct.astype(np.float64), candidate.correct.astype(np.float64)
    start = time.perf_counter()
    masks = np.array([np.asarray(m, dtype=np.float64) for m in groups.values()]).reshape(-1, len(a))

    # one product per resample chunk serves every group: right before, right after, images
    columns = np.concatenate([masks * a, masks * b, masks]).T  # [N, 3 groups]

    def change(w: np.ndarray) -> np.ndarray:  # [B, groups]
        before, after, count = np.split(w @ columns, 3, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (after - before) / count

    drawn = _draws(len(a), settings, change).reshape(-1, len(masks))
    spent = (time.perf_counter() - start) / len(groups)
    out = []
    for g, (name, mask) in enumerate(groups.items()):
        inside = np.asarray(mask, dtype=bool)
        broken = int(np.sum(inside & baseline.correct & ~candidate.correct))
        fixed = int(np.sum(inside & ~baseline.correct & candidate.correct))
        means = (
            (float(a[inside].mean()), float(b[inside].mean())) if inside.any() else (math.nan,) * 2
        )
        out.append(
            comparison_of(
                name,
                True,
                means,
                drawn[:, g],
                settings,
                (int(inside.sum()), broken, fixed),
                flip_threshold=TERM_FLIP,
                p_value=mcnemar_exact(broken, fixed),
                seconds=spent,
            )
        )
    return out


def compare_terms(
    baseline: Evidence,
    candidate: Evidence,
    *,
    settings: EvidenceSettings | None = None,
) -> list[Comparison]:
    """Each KPI both trials stored per-image terms of (``kpi/brier``, ``kpi/fn_rate``…): the
    change of the terms' mean over the images where both define it, its paired interval, the
    images whose term moved the bad (good) way by more than :data:`TERM_FLIP`, and McNemar's
    test where the terms are 1/0."""
    settings = settings or EvidenceSettings()
    mine, theirs = kpi_terms(baseline), kpi_terms(candidate)
    out = []
    for name in sorted(mine.keys() & theirs.keys()):
        start = time.perf_counter()
        a, b = mine[name], theirs[name]
        both = np.isfinite(a) & np.isfinite(b)
        if not both.any():
            continue
        # the terms before, after and the images that count, in one product per chunk
        columns = np.stack([np.where(both, a, 0.0), np.where(both, b, 0.0), both.astype(float)], 1)

        def change(w: np.ndarray, columns: np.ndarray = columns) -> np.ndarray:
            before, after, count = (w @ columns).T
            with np.errstate(invalid="ignore", divide="ignore"):
                return (after - before) / count

        higher = name not in LOWER_IS_BETTER
        worse = (b - a)[both] * (1 if higher else -1)
        broken, fixed = int(np.sum(worse < -TERM_FLIP)), int(np.sum(worse > TERM_FLIP))
        binary = np.isin(a[both], (0.0, 1.0)).all() and np.isin(b[both], (0.0, 1.0)).all()
        out.append(
            comparison_of(
                name,
                higher,
                (float(a[both].mean()), float(b[both].mean())),
                _draws(len(a), settings, change),
                settings,
                (int(both.sum()), broken, fixed),
                flip_threshold=TERM_FLIP,
                p_value=mcnemar_exact(broken, fixed) if binary else None,
                seconds=time.perf_counter() - start,
            )
        )
    return out


def compare_slices(
    task: PerImage,
    baseline: Evidence,
    candidate: Evidence,
    *,
    higher_is_better: bool,
    settings: EvidenceSettings | None = None,
) -> list[Comparison]:
    """The primary metric on each slice both trials marked alike (``slice/<name>``), and
    ``worst_slice`` (the slice with the worst metric, on each resample) and ``slice_gap`` (best
    − worst): each with its paired interval. Flips: the images of the slice (of all the slices
    for the two aggregates) whose own score moved by more than the task's flip threshold."""
    settings = settings or EvidenceSettings()
    mine, theirs = slice_masks(baseline), slice_masks(candidate)
    names = sorted(k for k in mine.keys() & theirs.keys() if np.array_equal(mine[k], theirs[k]))
    if not names:
        return []
    start = time.perf_counter()
    masks = np.array([mine[k] for k in names], dtype=np.float64)  # [S, N]

    def per_slice(evidence: Evidence) -> Callable[[np.ndarray], np.ndarray]:
        def metric(w: np.ndarray) -> np.ndarray:  # [B, S]
            return np.stack([task.resampled_quality(evidence, w * m) for m in masks], axis=1)

        return metric

    whole = np.ones((1, len(baseline)))
    values = [per_slice(e)(whole)[0] for e in (baseline, candidate)]
    drawn = [
        _draws(len(baseline), settings, per_slice(e)).reshape(-1, len(names))
        for e in (baseline, candidate)
    ]
    worst = np.min if higher_is_better else np.max
    aggregates = {
        "worst_slice": (higher_is_better, lambda s: worst(s, axis=-1)),
        "slice_gap": (False, lambda s: np.max(s, axis=-1) - np.min(s, axis=-1)),
    }
    spent = (time.perf_counter() - start) / (len(names) + len(aggregates))
    out = []
    for i, name in enumerate(names):
        broken, fixed = _flips_within(task, baseline, candidate, mine[name])
        out.append(
            comparison_of(
                name,
                higher_is_better,
                (float(values[0][i]), float(values[1][i])),
                drawn[1][:, i] - drawn[0][:, i],
                settings,
                (int(mine[name].sum()), broken, fixed),
                flip_threshold=task.flip_threshold,
                seconds=spent,
                centred=task.interval_around_estimate,
            )
        )
    anywhere = np.asarray(masks.any(axis=0), dtype=bool)
    broken, fixed = _flips_within(task, baseline, candidate, anywhere)
    for name, (higher, of) in aggregates.items():
        out.append(
            comparison_of(
                name,
                higher,
                (float(of(values[0])), float(of(values[1]))),
                of(drawn[1]) - of(drawn[0]),
                settings,
                (int(anywhere.sum()), broken, fixed),
                flip_threshold=task.flip_threshold,
                seconds=spent,
                centred=task.interval_around_estimate,
            )
        )
    return out


def _flips_within(
    task: PerImage, baseline: Evidence, candidate: Evidence, inside: np.ndarray
) -> tuple[int, int]:
    change = changes(baseline, candidate)[np.asarray(inside, dtype=bool)]
    return flip_counts(change, task.flip_threshold)
