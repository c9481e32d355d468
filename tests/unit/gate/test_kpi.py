"""The gate's KPI checks: judged on the paired interval where the evidence recomputes the KPI,
else on the point values with a fixed tolerance, and the message says which."""

from __future__ import annotations

from farm.evidence import Comparison
from farm.gate.kpi import kpi_checks


def _brier(baseline: float, value: float, low: float, high: float) -> Comparison:
    return Comparison(
        metric="brier",
        higher_is_better=False,
        baseline=baseline,
        value=value,
        low=low,
        high=high,
        confidence=0.95,
        resamples=1000,
        seed=0,
        n_images=540,
        broken=0,
        fixed=0,
        flip_threshold=0.5,
    )


def test_a_kpi_change_the_images_cannot_tell_from_noise_is_not_a_regression() -> None:
    base, cand = {"brier": 0.10, "ece": 0.02}, {"brier": 0.115, "ece": 0.02}
    # +0.015 is past the 0.01 tolerance, but the interval reaches back to +0.004
    unsure = {"brier": _brier(0.10, 0.115, 0.004, 0.026)}
    brier, ece = kpi_checks(cand, base, paired=unsure)
    assert brier.passed and "[paired over the same images, 540 images]" in brier.message
    assert "+0.0150 [+0.0040, +0.0260] at 95 %" in brier.message
    assert ece.passed and "[fixed tolerance: no per-image terms of it are kept]" in ece.message
    # the whole interval past the tolerance: a regression
    sure = {"brier": _brier(0.10, 0.115, 0.011, 0.019)}
    assert not kpi_checks(cand, base, paired=sure)[0].passed
    # without evidence the point values decide, and the check says so
    alone = kpi_checks(cand, base)[0]
    assert not alone.passed and "[fixed tolerance: the two jobs were not judged" in alone.message


def test_a_kpi_that_got_better_passes_whatever_its_interval() -> None:
    better = {"brier": _brier(0.10, 0.05, -0.07, -0.03)}
    (check,) = kpi_checks({"brier": 0.05}, {"brier": 0.10}, paired=better)
    assert check.passed and check.message.startswith("ok: brier 0.1000 → 0.0500 (-0.0500")
