"""The gate's statistics on synthetic samples with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from farm.release.significance import (
    compare,
    mann_whitney_slower,
    min_samples_for_bound,
    order_statistic_index,
    percentile_upper_bound,
)


def test_the_59_sample_rule_for_a_p95_bound_at_95_percent() -> None:
    # 1 - 0.95**59 = 0.9515 >= 0.95 > 1 - 0.95**58: the maximum of 59 samples is the bound.
    assert min_samples_for_bound(95, 0.95) == 59
    assert order_statistic_index(59, 95, 0.95) == 59
    assert order_statistic_index(58, 95, 0.95) is None
    samples = np.arange(1.0, 60.0)
    assert percentile_upper_bound(samples, 95, 0.95) == 59.0
    assert percentile_upper_bound(samples[:-1], 95, 0.95) == math.inf


def test_bound_rank_matches_the_binomial_definition() -> None:
    from scipy.stats import binom

    n, q, c = 1000, 99, 0.95
    k = order_statistic_index(n, q, c)
    assert k is not None
    assert binom.cdf(k - 1, n, 0.99) >= c > binom.cdf(k - 2, n, 0.99)


def test_bound_covers_the_true_percentile_at_its_confidence() -> None:
    rng = np.random.default_rng(0)
    true_p95 = -math.log(0.05)  # exponential(1)
    draws = rng.exponential(1.0, size=(2000, 300))
    covered = np.mean([percentile_upper_bound(d, 95, 0.95) >= true_p95 for d in draws])
    assert 0.94 <= covered <= 0.99  # >= 95 % up to Monte Carlo error, and not trivially 100 %
    assert percentile_upper_bound(draws[0], 95, 0.95) > np.percentile(draws[0], 95)


def test_mann_whitney_exact_small_case() -> None:
    # All 3 candidate values above all 3 baseline values: exact one-sided p = 1 / C(6, 3).
    assert mann_whitney_slower([1, 2, 3], [4, 5, 6]) == pytest.approx(1 / 20)
    assert mann_whitney_slower([4, 5, 6], [1, 2, 3]) == pytest.approx(1.0)
    assert mann_whitney_slower([1, 1], [1, 1]) == 1.0


def test_compare_flags_a_real_slowdown_and_not_noise() -> None:
    rng = np.random.default_rng(1)
    base = rng.lognormal(0.0, 0.1, 500)
    same = rng.lognormal(0.0, 0.1, 500)
    slow = rng.lognormal(math.log(1.10), 0.1, 500)
    assert not compare(base, same).regression
    c = compare(base, slow)
    assert c.regression and c.ratio == pytest.approx(1.10, abs=0.03)
    assert c.ratio_low < 1.10 < c.ratio_high


def test_small_or_insignificant_shifts_are_not_regressions() -> None:
    rng = np.random.default_rng(2)
    base = rng.lognormal(0.0, 0.05, 5000)
    tiny = rng.lognormal(math.log(1.02), 0.05, 5000)
    c = compare(base, tiny)  # significant, but below the 5 % threshold
    assert c.significant and not c.regression
    few = compare([1.0, 1.3, 0.8], [1.2, 1.5, 0.9])  # +15 % on 3 samples: not significant
    assert not few.significant and not few.regression


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="q"):
        percentile_upper_bound([1.0], 100)
    with pytest.raises(ValueError, match="non-empty"):
        compare([], [1.0])
    with pytest.raises(ValueError, match="alpha"):
        compare([1.0], [1.0], alpha=1.5)
