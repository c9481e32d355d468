"""The statistics of paired judgements: bootstrap weights, percentile intervals, McNemar.

Numpy and the standard library only; every draw is seeded, so a stored interval is reproduced
exactly from the stored evidence and the seed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

#: Weights drawn at once, resamples × images (bounds the memory of a ``[chunk, N]`` block).
CHUNK_CELLS = 2_000_000


def bootstrap_weights(n: int, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Chunks of ``[b, n]`` image multiplicities: each row draws ``n`` images with replacement,
    ``resamples`` rows in all, from ``seed`` (the same seed and sizes give the same rows)."""
    rng = np.random.default_rng(seed)
    rows = max(1, CHUNK_CELLS // max(n, 1))
    for start in range(0, resamples, rows):
        b = min(rows, resamples - start)
        drawn = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
        yield np.bincount(drawn.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)


def percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """The central ``confidence`` interval of ``values`` (NaN rows dropped)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not len(v):
        return math.nan, math.nan
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(v, [alpha, 1.0 - alpha])
    return float(low), float(high)


def bias_corrected_interval(
    values: np.ndarray, point: float, confidence: float
) -> tuple[float, float]:
    """The bias-corrected percentile interval (Efron's BC) of bootstrap ``values`` around the
    estimate ``point``: where the resamples sit mostly on one side of the estimate (a ratio
    such as COCO mAP on a few hundred images is biased), the percentiles move to compensate.
    Equal to :func:`percentile_interval` when half the resamples fall below the estimate (a
    mean, such as accuracy). NaN rows dropped; ties with the estimate count half."""
    from statistics import NormalDist

    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not len(v) or not math.isfinite(point):
        return percentile_interval(v, confidence)
    below = (np.sum(v < point) + 0.5 * np.sum(v == point)) / len(v)
    normal = NormalDist()
    z0 = normal.inv_cdf(min(max(below, 0.5 / len(v)), 1 - 0.5 / len(v)))
    z = normal.inv_cdf(0.5 + confidence / 2)
    ends = [normal.cdf(2 * z0 - z), normal.cdf(2 * z0 + z)]
    low, high = np.quantile(v, ends)
    return float(low), float(high)


def mcnemar_exact(broken: int, fixed: int) -> float:
    """McNemar's exact two-sided p-value for paired right/wrong outcomes: of the ``broken +
    fixed`` images whose outcome changed, is the split further from even than chance makes
    it? (1.0 when nothing changed.) Exact binomial tail, in integers."""
    n = broken + fixed
    if n == 0:
        return 1.0
    k = min(broken, fixed)
    tail = sum(math.comb(n, i) for i in range(k + 1))
    return min(1.0, 2 * tail / 2**n)  # integer true division: exact, whatever n
