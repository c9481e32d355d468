"""``min_quality_ratio`` and ``quality_confidence``: limits relative to fp32, and limits that
judge the worst end of a candidate's paired interval instead of its point estimate."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import pytest

from farm.engine.recorder import Recorder
from farm.errors import SpecError
from farm.evidence import Comparison
from farm.spec.constraints import at_worst_end, parse_limits

NAMES = ("accuracy", "cer")


def _limits(table: dict[str, Any]) -> list[Any]:
    return parse_limits("job.toml", "constraints", table, NAMES, ())


def test_a_ratio_is_the_trials_value_over_the_baselines() -> None:
    (limit,) = [c.resolved("accuracy") for c in _limits({"min_quality_ratio": 0.99})]
    assert limit.kind == "ratio" and limit.metric == "accuracy"
    assert limit.value({"accuracy": 0.891}, {"accuracy": 0.9}) == pytest.approx(0.99)
    assert limit.violation({"accuracy": 0.89}, {"accuracy": 0.9}) > 0
    assert limit.violation({"accuracy": 0.895}, {"accuracy": 0.9}) < 0
    assert "accuracy / baseline 0.9889 < 0.99" in limit.describe(0.98889)


def test_for_an_error_rate_the_ratio_is_the_baselines_over_the_trials() -> None:
    (limit,) = [
        c.resolved("cer", higher_is_better=False) for c in _limits({"min_quality_ratio": 0.9})
    ]
    assert limit.kind == "inverse_ratio"
    assert limit.value({"cer": 0.1}, {"cer": 0.09}) == pytest.approx(0.9)


def test_quality_confidence_is_a_setting_not_a_limit_and_must_be_a_fraction() -> None:
    assert _limits({"quality_confidence": 0.9, "max_quality_drop": 0.01})[0].field == (
        "max_quality_drop"
    )
    for bad in (0, 1, 1.5, "high"):
        with pytest.raises(SpecError, match="strictly between 0 and 1") as err:
            _limits({"quality_confidence": bad})
        assert err.value.field == "constraints.quality_confidence"


def test_the_worst_end_of_a_higher_is_better_metric_is_its_intervals_low_end() -> None:
    got = at_worst_end({"accuracy": 0.88, "ece": 0.1}, "accuracy", -0.03, 0.01, -0.02, True)
    assert got["accuracy"] == pytest.approx(0.87) and got["ece"] == 0.1
    got = at_worst_end({"cer": 0.12}, "cer", -0.01, 0.05, 0.02, False)
    assert got["cer"] == pytest.approx(0.15)
    assert at_worst_end({"accuracy": 0.9}, "accuracy", math.nan, math.nan, 0, True) == {
        "accuracy": 0.9
    }


def _comparison(low: float, high: float, delta: float) -> Comparison:
    return Comparison(
        metric="accuracy",
        higher_is_better=True,
        baseline=0.9,
        value=0.9 + delta,
        low=low,
        high=high,
        confidence=0.95,
        resamples=1000,
        seed=0,
        n_images=500,
        broken=3,
        fixed=1,
        flip_threshold=0.5,
    )


@pytest.mark.parametrize("confidence", [None, 0.95])
def test_a_drop_within_the_limit_whose_interval_is_not_fails_only_under_confidence(
    confidence: float | None,
) -> None:
    limits = [c.resolved("accuracy") for c in _limits({"max_quality_drop": 0.01})]
    prepared = SimpleNamespace(
        limits=limits, quality_metric="accuracy", quality_confidence=confidence
    )
    recorder = Recorder(None, "job", prepared, lambda: 0.0)  # type: ignore[arg-type]
    comparison = _comparison(low=-0.02, high=0.004, delta=-0.008)
    violations, said = recorder.judge({"accuracy": 0.892}, {"accuracy": 0.9}, comparison)
    if confidence is None:
        assert violations["max_quality_drop"] < 0 and not said
    else:
        assert violations["max_quality_drop"] == pytest.approx(0.01)
        assert said == [
            "accuracy drop vs baseline 0.02 > 0.01 (max_quality_drop) "
            "(worst end of the 95 % interval)"
        ]


def test_a_job_keeps_quality_confidence_and_its_intervals_use_it() -> None:
    import tomllib

    from farm.engine.prepare import evidence_settings
    from farm.spec.job import parse_job

    text = (
        'name = "qc"\ntargets = ["cpu-onnxruntime"]\n[workload]\nname = "digits"\n'
        "[constraints]\nmax_quality_drop = 0.01\nmin_quality_ratio = 0.99\n"
        "quality_confidence = 0.9\n"
    )
    spec = parse_job(tomllib.loads(text), source="qc.toml")
    assert spec.constraints == {
        "max_quality_drop": 0.01,
        "min_quality_ratio": 0.99,
        "quality_confidence": 0.9,
    }
    assert evidence_settings(spec).confidence == 0.9
    plain = parse_job(tomllib.loads(text.replace("quality_confidence = 0.9\n", "")), "qc.toml")
    assert evidence_settings(plain).confidence == 0.95
