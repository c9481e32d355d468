"""Do the paired intervals mean what they say? With a known true difference between two
models, the 95 % interval must cover it in 93–97 % of 1,000 seeded runs, for accuracy and for
COCO mAP (each run: a fresh sample of eval images, the interval from 1,000 resamples)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from farm.evidence import EvidenceSettings, compare
from workloads.evidence import Evidence
from workloads.tasks import Classification, Detection
from workloads.tasks._coco_boot import match, resampled_map

RUNS = 1000


def _right_wrong(correct: np.ndarray) -> Evidence:
    n = len(correct)
    return Evidence(
        tuple(map(str, range(n))),
        correct.astype(float),
        ("",) * n,
        np.full(n, np.nan),
        correct,
        {"correct": correct},
    )


@pytest.mark.slow
def test_accuracy_intervals_cover_the_true_difference_95_percent_of_the_time() -> None:
    # fp32 right with p 0.9; the candidate breaks 3 % of its right images and fixes 10 % of
    # its wrong ones: true difference -0.9 * 0.03 + 0.1 * 0.1 = -0.017
    truth = -0.9 * 0.03 + 0.1 * 0.1
    covered = 0
    for run in range(RUNS):
        rng = np.random.default_rng(run)
        base = rng.random(400) < 0.9
        flip = rng.random(400)
        cand = np.where(base, flip >= 0.03, flip < 0.1)
        c = compare(
            Classification(),
            _right_wrong(base),
            _right_wrong(cand),
            metric="accuracy",
            higher_is_better=True,
            settings=EvidenceSettings(seed=run),
        )
        covered += c.low <= truth <= c.high
    assert 0.93 <= covered / RUNS <= 0.97, covered


def _population(n: int, seed: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """COCO matchings of two detectors on ``n`` images: the candidate's boxes are noisier and
    its scores shuffled a little (a quantized model)."""
    rng = np.random.default_rng(seed)
    truth: list[dict[str, Any]] = []
    base: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    cand: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for _ in range(n):
        k = int(rng.integers(1, 5))
        xy = rng.uniform(0, 150, (k, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(10, 50, (k, 2))], 1)
        labels = rng.integers(1, 4, k)
        truth.append({"boxes": boxes, "labels": labels})
        extra = rng.uniform(0, 150, (int(rng.integers(0, 3)), 2))
        fp = np.concatenate([extra, extra + 20], 1)
        fp_labels = rng.integers(1, 4, len(extra))
        score = rng.random(k + len(extra))
        noise = rng.normal(0, 1, boxes.shape)
        for out, sd, jitter in ((base, 2.0, 0.0), (cand, 3.0, 0.15)):
            found = np.concatenate([boxes + noise * sd, fp])
            s = np.clip(score + rng.normal(0, jitter, len(score)), 0, 1)
            out.append((found, s, np.concatenate([labels, fp_labels])))
    ids = list(range(1, n + 1))
    return match(ids, truth, base, [1, 2, 3]), match(ids, truth, cand, [1, 2, 3])


def _subset(arrays: dict[str, np.ndarray], rows: np.ndarray) -> Evidence:
    """The evidence of the images ``rows`` (distinct) of a population's matching."""
    where = np.full(len(arrays["gt_count"]), -1)
    where[rows] = np.arange(len(rows))
    keep = where[arrays["det_image"]] >= 0
    sub = {k: v[keep] for k, v in arrays.items() if k.startswith("det_")}
    sub["det_image"] = where[arrays["det_image"][keep]].astype(np.int32)
    sub["gt_count"] = arrays["gt_count"][rows]
    n = len(rows)
    return Evidence(tuple(map(str, rows)), np.zeros(n), ("",) * n, np.zeros(n), None, sub)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_map_intervals_cover_the_true_difference_95_percent_of_the_time() -> None:
    """Each run: 250 images drawn from a population of 6,000 whose mAP difference is the
    truth; 500 resamples per interval (the percentile interval's coverage does not depend on
    the resample count; its ends are only less noisy with more)."""
    base, cand = _population(6000, seed=0)
    everyone = np.ones((1, 6000))
    truth = float(resampled_map(cand, everyone)[0] - resampled_map(base, everyone)[0])
    assert truth < -0.01  # the candidate is worse, by a known amount
    covered = 0
    for run in range(RUNS):
        rows = np.sort(np.random.default_rng(run).choice(6000, 250, replace=False))
        c = compare(
            Detection(),
            _subset(base, rows),
            _subset(cand, rows),
            metric="map",
            higher_is_better=True,
            settings=EvidenceSettings(resamples=500, seed=run),
        )
        covered += c.low <= truth <= c.high
    assert 0.93 <= covered / RUNS <= 0.97, covered
