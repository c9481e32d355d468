"""Paired judgements: bootstrap weights, McNemar's exact test, flips, the interval of a change,
and the sentence a lead reads."""

from __future__ import annotations

import math

import numpy as np
import pytest

from farm.evidence import Comparison, EvidenceSettings, compare, describe
from farm.evidence.paired import flipped, flips
from farm.evidence.stats import bootstrap_weights, mcnemar_exact, percentile_interval
from workloads.evidence import Evidence
from workloads.tasks import Classification


def _right_wrong(correct: list[bool] | np.ndarray, ids: tuple[str, ...] | None = None) -> Evidence:
    c = np.asarray(correct, dtype=bool)
    return Evidence(
        ids=ids or tuple(f"img/{i}" for i in range(len(c))),
        score=c.astype(float),
        predicted=("x",) * len(c),
        confidence=np.full(len(c), 0.9),
        correct=c,
        arrays={"correct": c},
    )


def test_bootstrap_weights_draw_n_images_per_row_and_are_seeded() -> None:
    w = np.concatenate(list(bootstrap_weights(7, 600, seed=3)))
    assert w.shape == (600, 7) and np.all(w.sum(axis=1) == 7)
    big = list(bootstrap_weights(1_000_000, 5, seed=3))  # chunked: memory stays bounded
    assert len(big) == 3 and sum(len(c) for c in big) == 5
    np.testing.assert_array_equal(w, np.concatenate(list(bootstrap_weights(7, 600, seed=3))))
    assert not np.array_equal(w, np.concatenate(list(bootstrap_weights(7, 600, seed=4))))


def test_mcnemar_is_the_exact_binomial_tail() -> None:
    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(1, 0) == 1.0
    assert mcnemar_exact(5, 0) == pytest.approx(2 / 32)
    assert mcnemar_exact(10, 2) == pytest.approx(2 * (1 + 12 + 66) / 4096)
    assert mcnemar_exact(2, 10) == mcnemar_exact(10, 2)
    assert 0 < mcnemar_exact(700, 400) < 1e-15  # many changed images: no overflow


def test_percentile_interval_drops_nan_rows() -> None:
    values = np.concatenate([np.arange(101.0), [np.nan]])
    assert percentile_interval(values, 0.9) == pytest.approx((5.0, 95.0))
    assert all(math.isnan(v) for v in percentile_interval(np.array([np.nan]), 0.9))


def test_a_candidate_that_breaks_one_image_and_fixes_none() -> None:
    base = _right_wrong([True] * 95 + [False] * 5)
    cand = _right_wrong([True] * 94 + [False] * 6)
    c = compare(Classification(), base, cand, metric="accuracy", higher_is_better=True)
    assert (c.broken, c.fixed, c.n_images) == (1, 0, 100)
    assert c.delta == pytest.approx(-0.01) and c.drop == pytest.approx(0.01)
    assert c.low <= c.delta <= c.high and not c.significant
    assert c.p_value == 1.0 and c.verdict == "no significant change"
    again = compare(Classification(), base, cand, metric="accuracy", higher_is_better=True)
    assert (again.low, again.high) == (c.low, c.high)  # seeded


def test_a_candidate_that_breaks_many_images_is_significantly_worse() -> None:
    base = _right_wrong([True] * 100)
    cand = _right_wrong([True] * 80 + [False] * 20)
    c = compare(
        Classification(),
        base,
        cand,
        metric="accuracy",
        higher_is_better=True,
        settings=EvidenceSettings(confidence=0.9, resamples=400, seed=1),
    )
    assert c.significant and c.verdict == "worse" and c.drop_interval[1] > c.drop > 0
    assert c.p_value == pytest.approx(2 / 2**20) and (c.resamples, c.seed) == (400, 1)


def test_trials_judged_on_other_images_are_not_compared() -> None:
    with pytest.raises(ValueError, match="different images"):
        compare(
            Classification(),
            _right_wrong([True, False]),
            _right_wrong([True, False], ids=("a", "b")),
            metric="accuracy",
            higher_is_better=True,
        )


def test_flipped_images_come_worst_first_and_unscored_images_are_skipped() -> None:
    base = _right_wrong([True] * 4)
    base = Evidence(base.ids, np.array([0.9, 0.8, np.nan, 0.5]), base.predicted, base.confidence)
    cand = Evidence(base.ids, np.array([0.1, 0.6, 0.0, 0.9]), base.predicted, base.confidence)
    broken, fixed = flipped(base, cand, 0.1)
    assert broken.tolist() == [0, 1] and fixed.tolist() == [3]


def test_a_change_that_is_the_threshold_itself_is_no_flip() -> None:
    """0.8 - 0.7 is 0.10000000000000009 in floating point: an image's own mAP rising from 0.7
    to 0.8 did not rise by more than 0.1, whichever way the last bit fell."""
    base = _right_wrong([True] * 3)
    base = Evidence(base.ids, np.array([0.7, 0.8, 0.7]), base.predicted, base.confidence)
    cand = Evidence(base.ids, np.array([0.8, 0.7, 0.81]), base.predicted, base.confidence)
    assert 0.8 - 0.7 > 0.1
    assert flips(base, cand, 0.1) == (0, 1)
    broken, fixed = flipped(base, cand, 0.1)
    assert broken.tolist() == [] and fixed.tolist() == [2]


def test_the_sentence_a_lead_reads() -> None:
    c = Comparison(
        metric="accuracy",
        higher_is_better=True,
        baseline=0.9,
        value=0.9 - 0.0019,
        low=-0.0056,
        high=0.0019,
        confidence=0.95,
        resamples=1000,
        seed=0,
        n_images=540,
        broken=1,
        fixed=0,
        flip_threshold=0.5,
    )
    assert describe(c, "int8") == (
        "int8: accuracy \u22120.19 pt [\u22120.56, +0.19] at 95 %, 1 image broken, 0 fixed; "
        "no significant change"
    )
    assert Comparison.from_dict(c.to_dict()) == c


def test_a_change_that_rounds_to_zero_reads_without_a_minus_sign() -> None:
    from farm.evidence.words import points

    assert points(-0.0) == "+0.00"
    assert points(-0.00001) == "+0.00"
    assert points(-0.00001, signed=False) == "0.00"
    assert points(-0.0019) == "\u22120.19"


def test_the_centred_interval_keeps_the_resamples_spread_around_the_estimate() -> None:
    from farm.evidence.stats import centred_interval

    values = np.arange(1001.0)  # mean 500
    assert centred_interval(values, 500.0, 0.9) == pytest.approx(percentile_interval(values, 0.9))
    # resamples that sit above the estimate (COCO mAP's repeated images) do not drag it along
    assert centred_interval(values, 400.0, 0.9) == pytest.approx((-50.0, 850.0))
    skewed = np.concatenate([np.zeros(900), np.arange(1.0, 101.0)])  # a long right tail
    low, high = centred_interval(skewed, 0.0, 0.9)
    assert high - 0.0 > 0.0 - low  # the shape is kept: longer on the side of the tail


def test_the_seeded_draws_are_kept_for_the_next_comparison_and_cannot_be_changed() -> None:
    from farm.evidence import stats

    first = list(stats.seeded_weights(50, 300, 7))
    again = list(stats.seeded_weights(50, 300, 7))
    assert all(a is b for a, b in zip(first, again, strict=True))  # drawn once
    fresh = list(stats.bootstrap_weights(50, 300, 7))
    assert all(np.array_equal(a, b) for a, b in zip(first, fresh, strict=True))
    with pytest.raises(ValueError):
        first[0][0, 0] = 5.0  # a comparison cannot disturb the next one's draws
    big = stats.KEPT_CELLS // 100 + 1
    assert stats.seeded_weights(100, big, 0) is not stats.seeded_weights(100, big, 0)
