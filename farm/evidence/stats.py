"""The statistics of paired judgements: bootstrap weights, percentile intervals, McNemar.

Numpy and the standard library only; every draw is seeded, so a stored interval is reproduced
exactly from the stored evidence and the seed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from functools import lru_cache

import numpy as np

#: Weights drawn at once, resamples × images (bounds the memory of a ``[chunk, N]`` block).
CHUNK_CELLS = 2_000_000
#: The most weights (resamples × images) kept between calls (64 MiB of float64): a job judges
#: the primary metric and every KPI of every candidate of a target on the same seeded draws.
KEPT_CELLS = 8_000_000


def bootstrap_weights(n: int, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Chunks of ``[b, n]`` image multiplicities: each row draws ``n`` images with replacement,
    ``resamples`` rows in all, from ``seed`` (the same seed and sizes give the same rows)."""
    rng = np.random.default_rng(seed)
    rows = max(1, CHUNK_CELLS // max(n, 1))
    for start in range(0, resamples, rows):
        b = min(rows, resamples - start)
        drawn = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
        yield np.bincount(drawn.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)


def seeded_weights(n: int, resamples: int, seed: int) -> Iterable[np.ndarray]:
    """The chunks of :func:`bootstrap_weights`, drawn once and kept (read-only) while the
    same draws are asked for again, when there are at most :data:`KEPT_CELLS` of them; drawn
    afresh otherwise (bounded memory on a large eval set)."""
    if n * resamples > KEPT_CELLS:
        return bootstrap_weights(n, resamples, seed)
    return _kept(n, resamples, seed)


@lru_cache(maxsize=1)
def _kept(n: int, resamples: int, seed: int) -> tuple[np.ndarray, ...]:
    chunks = tuple(bootstrap_weights(n, resamples, seed))
    for chunk in chunks:
        chunk.flags.writeable = False
    return chunks


def percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """The central ``confidence`` interval of ``values`` (NaN rows dropped)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not len(v):
        return math.nan, math.nan
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(v, [alpha, 1.0 - alpha])
    return float(low), float(high)


def centred_interval(values: np.ndarray, point: float, confidence: float) -> tuple[float, float]:
    """The percentile interval of bootstrap ``values`` moved to sit around the estimate
    ``point`` as the resamples sit around their own mean: the bootstrap gives the spread and
    the shape (a skewed change stays skewed), the estimate gives the location.

    Why not trust the bootstrap's location: for COCO mAP (a ranking metric) the estimate is
    biased (precision's envelope is a maximum over noisy points) and the resamples' mean
    carries that bias again, so the plain percentile interval's centre lies further from the
    truth than the estimate does; ``benchmarks/map_coverage.py`` measured 95.5 % coverage for
    this interval against 96.3 % (percentile) for a 4-point change, and 88 % against 81 % for
    a 13-point one (docs/kpis.md). Not for a mean such as accuracy: there the resamples' mean
    differs from the estimate by chance only, and moving a discrete interval by it can take an
    end off zero (one image broken of 100 would read as significant). NaN rows dropped."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not len(v) or not math.isfinite(point):
        return percentile_interval(v, confidence)
    low, high = percentile_interval(v, confidence)
    shift = point - float(v.mean())
    return low + shift, high + shift


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
