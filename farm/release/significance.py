"""Statistics the gate uses on raw latency samples.

Two questions, two tools:

* *Is the candidate slower than the baseline?* The one-sided Mann-Whitney U test (as asv does)
  on the two sets of per-query latencies, together with the ratio of their medians and a
  bootstrap confidence interval on that ratio. A regression needs both a slowdown larger than the
  threshold *and* a significant test: a 0.3 % shift is significant with 5,000 samples, and a 20 %
  shift on 10 noisy samples may be chance; neither is a regression.
* *Does the candidate meet a tail-latency budget with confidence?* A distribution-free upper
  confidence bound on the q-th percentile from order statistics: the number of samples at or
  below the true percentile is Binomial(n, q), so the k-th smallest sample, with k the smallest
  integer such that ``P[Binomial(n, q) < k] >= confidence``, is at or above the true percentile
  with probability at least ``confidence``. It assumes independent samples and nothing about
  their shape; with too few samples (``q**n > 1 - confidence``) no finite bound exists.

Percentiles themselves (the point estimates) come from :func:`farm.measure.percentile`, so the
definition is the same as everywhere else in the farm.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from farm.measure import percentile

#: Default significance level of the regression test (one-sided).
DEFAULT_ALPHA = 0.01
#: Default slowdown threshold: a regression is a median slowdown larger than this fraction.
DEFAULT_THRESHOLD = 0.05
#: Default confidence of the tail-percentile bound used by budget checks.
DEFAULT_CONFIDENCE = 0.95


def min_rounds(alpha: float) -> int:
    """The fewest paired rounds for which a distribution-free two-sided ``1 - alpha`` interval
    of a median exists: the range of n values misses the median with probability
    ``2 * 0.5**n`` (the gate's confirmation needs at least this many)."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"`0 < alpha < 1` must hold, but got alpha={alpha!r}")
    return max(2, math.ceil(math.log2(2.0 / alpha)))


def _array(samples: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(samples, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name}: expected a non-empty 1-D sequence of samples, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: samples must be finite")
    return arr


def percentile_upper_bound(
    samples: Sequence[float] | np.ndarray, q: float, confidence: float = DEFAULT_CONFIDENCE
) -> float:
    """Distribution-free upper confidence bound on the ``q``-th percentile (0-100) of the
    population the independent ``samples`` came from; ``inf`` when there are too few samples.

    With n samples the bound is the k-th smallest one, k = the smallest integer with
    ``P[Binomial(n, q/100) <= k - 1] >= confidence``. Example: for the p95 at 95 % confidence,
    59 samples give k = 59 (the maximum: 1 - 0.95**59 = 0.952) and 58 samples give no bound.
    """
    if not 0.0 < q < 100.0:
        raise ValueError(f"`0 < q < 100` must hold, but got q={q!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"`0 < confidence < 1` must hold, but got confidence={confidence!r}")
    arr = np.sort(_array(samples, "samples"))
    k = order_statistic_index(arr.size, q, confidence)
    return math.inf if k is None else float(arr[k - 1])


def order_statistic_index(n: int, q: float, confidence: float) -> int | None:
    """The 1-based rank k of the upper bound (see :func:`percentile_upper_bound`), or None."""
    from scipy.stats import binom

    p = q / 100.0
    # binom.ppf(c, n, p) is the smallest m with P[X <= m] >= c; the bound is sample m + 1.
    m = int(binom.ppf(confidence, n, p))
    # Guard floating point at the boundary: make sure the coverage really holds.
    while m < n and binom.cdf(m, n, p) < confidence:
        m += 1
    k = m + 1
    return k if k <= n else None


def min_samples_for_bound(q: float, confidence: float = DEFAULT_CONFIDENCE) -> int:
    """The fewest samples for which a finite upper bound on the q-th percentile exists."""
    return math.ceil(math.log(1.0 - confidence) / math.log(q / 100.0))


@dataclass(frozen=True)
class Comparison:
    """Candidate against baseline latency samples (ratio > 1: the candidate is slower)."""

    baseline_median_ms: float
    candidate_median_ms: float
    #: candidate median / baseline median.
    ratio: float
    #: Two-sided ``1 - alpha`` percentile-bootstrap interval on ``ratio``.
    ratio_low: float
    ratio_high: float
    #: One-sided Mann-Whitney U p-value for "candidate latencies tend to be larger".
    p_value: float
    threshold: float
    alpha: float
    n_baseline: int
    n_candidate: int

    @property
    def slowdown(self) -> float:
        return self.ratio - 1.0

    @property
    def significant(self) -> bool:
        return self.p_value < self.alpha

    @property
    def regression(self) -> bool:
        return self.slowdown > self.threshold and self.significant

    def describe(self) -> str:
        verdict = "REGRESSION" if self.regression else "ok"
        return (
            f"{verdict}: median {self.baseline_median_ms:.4g} → {self.candidate_median_ms:.4g} ms "
            f"({self.slowdown:+.1%}, {1 - self.alpha:.0%} CI of the ratio "
            f"[{self.ratio_low:.3f}, {self.ratio_high:.3f}]), Mann-Whitney one-sided "
            f"p={self.p_value:.2g} (n={self.n_baseline}/{self.n_candidate}); a regression is a "
            f"slowdown > {self.threshold:.0%} with p < {self.alpha:g}"
        )


def mann_whitney_slower(
    baseline: Sequence[float] | np.ndarray, candidate: Sequence[float] | np.ndarray
) -> float:
    """One-sided Mann-Whitney U p-value for "candidate latencies are stochastically larger"."""
    from scipy.stats import mannwhitneyu

    a, b = _array(baseline, "baseline"), _array(candidate, "candidate")
    if np.all(a == a[0]) and np.all(b == a[0]):
        return 1.0  # all samples identical: no evidence of anything
    return float(mannwhitneyu(b, a, alternative="greater").pvalue)


def bootstrap_median_ratio(
    baseline: Sequence[float] | np.ndarray,
    candidate: Sequence[float] | np.ndarray,
    confidence: float = 0.99,
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Two-sided percentile-bootstrap interval on median(candidate) / median(baseline).

    Medians are the farm's p50 (:func:`farm.measure.percentile`, nearest rank). Seeded, so the
    gate gives the same answer twice on the same data.
    """
    a, b = _array(baseline, "baseline"), _array(candidate, "candidate")
    rng = np.random.default_rng(seed)
    ia = rng.integers(0, a.size, size=(n_boot, a.size))
    ib = rng.integers(0, b.size, size=(n_boot, b.size))
    # Nearest-rank median of each resample, vectorised: the ceil(n/2)-th smallest value.
    ka, kb = math.ceil(a.size / 2) - 1, math.ceil(b.size / 2) - 1
    ma = np.partition(a[ia], ka, axis=1)[:, ka]
    mb = np.partition(b[ib], kb, axis=1)[:, kb]
    ratios = mb / ma
    tail = (1.0 - confidence) / 2.0
    return float(np.quantile(ratios, tail)), float(np.quantile(ratios, 1.0 - tail))


def compare(
    baseline: Sequence[float] | np.ndarray,
    candidate: Sequence[float] | np.ndarray,
    threshold: float = DEFAULT_THRESHOLD,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
    method: str = "inverted_cdf",
) -> Comparison:
    """Compare two sets of raw latency samples; see :class:`Comparison` for the verdict rule.

    ``method`` is the percentile definition of the samples' measurement contract, so the medians
    compared are the p50s the store reports."""
    if threshold < 0:
        raise ValueError(f"`threshold >= 0` must hold, but got threshold={threshold!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"`0 < alpha < 1` must hold, but got alpha={alpha!r}")
    a, b = _array(baseline, "baseline"), _array(candidate, "candidate")
    ma, mb = percentile(a, 50, method), percentile(b, 50, method)
    low, high = bootstrap_median_ratio(a, b, confidence=1.0 - alpha, seed=seed)
    return Comparison(
        baseline_median_ms=ma,
        candidate_median_ms=mb,
        ratio=mb / ma if ma > 0 else math.inf,
        ratio_low=low,
        ratio_high=high,
        p_value=mann_whitney_slower(a, b),
        threshold=threshold,
        alpha=alpha,
        n_baseline=int(a.size),
        n_candidate=int(b.size),
    )
