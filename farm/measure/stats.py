"""Statistics of latency samples. Every reported percentile goes through :func:`percentile`."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

DEFAULT_PERCENTILE_METHOD = "inverted_cdf"


def percentile(
    samples: Sequence[float] | np.ndarray, q: float, method: str = DEFAULT_PERCENTILE_METHOD
) -> float:
    """The ``q``-th percentile (0-100) of ``samples``.

    The default, ``inverted_cdf``, is the nearest-rank definition: the smallest observed sample
    such that at least ``q`` % of the samples are less than or equal to it. It never invents a
    latency that was not observed, and it is what MLPerf LoadGen reports.
    """
    if len(samples) == 0:
        raise ValueError("percentile of no samples")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"`0 <= q <= 100` must hold, but got q={q!r}")
    arr = np.asarray(samples, dtype=np.float64)
    return float(np.percentile(arr, q, method=method))  # type: ignore[call-overload]


def mean_std(samples: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``; 0.0 for a single sample)."""
    arr = np.asarray(samples, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("mean of no samples")
    std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return float(arr.mean()), std


def max_relative_deviation(values: Sequence[float]) -> float:
    """Largest ``|v - mean| / mean`` over ``values`` (the stability test's spread)."""
    mean = math.fsum(values) / len(values)
    if mean == 0.0:
        return 0.0 if all(v == 0.0 for v in values) else math.inf
    return max(abs(v - mean) for v in values) / abs(mean)
