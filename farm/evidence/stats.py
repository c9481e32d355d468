"""The statistics of paired judgements: bootstrap weights, percentile intervals, McNemar.

Numpy and the standard library only; every draw is seeded, so a stored interval is reproduced
exactly from the stored evidence and the seed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

#: Resamples drawn at once (bounds the memory of the ``[chunk, N]`` weights).
CHUNK = 250


def bootstrap_weights(n: int, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Chunks of ``[b, n]`` image multiplicities: each row draws ``n`` images with replacement
    (a multinomial), ``resamples`` rows in all, from ``seed``."""
    rng = np.random.default_rng(seed)
    p = np.full(n, 1.0 / n)
    for start in range(0, resamples, CHUNK):
        yield rng.multinomial(n, p, size=min(CHUNK, resamples - start)).astype(np.float64)


def percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """The central ``confidence`` interval of ``values`` (NaN rows dropped)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not len(v):
        return math.nan, math.nan
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(v, [alpha, 1.0 - alpha])
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
