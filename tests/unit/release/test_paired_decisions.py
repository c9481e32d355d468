"""Budgets and recommend with paired intervals: ``quality_confidence`` judges the worst end
of a candidate's interval, and a pick carries the sentence a lead reads."""

from __future__ import annotations

import tomllib

import pytest
from support.factories import trial

from farm.errors import SpecError
from farm.evidence import Comparison
from farm.release.budget import Budget, Limits, check, parse_budget
from farm.release.recommend import recommend


def _comparison(low: float, high: float, delta: float, **kw: object) -> Comparison:
    values: dict[str, object] = {
        "metric": "accuracy",
        "higher_is_better": True,
        "baseline": 0.97,
        "value": 0.97 + delta,
        "low": low,
        "high": high,
        "confidence": 0.95,
        "resamples": 1000,
        "seed": 0,
        "n_images": 540,
        "broken": 3,
        "fixed": 1,
        "flip_threshold": 0.5,
    }
    values.update(kw)
    return Comparison(**values)  # type: ignore[arg-type]


BASE = {"accuracy": 0.97}


def test_without_quality_confidence_the_point_estimate_is_judged() -> None:
    t = trial(1, quality=0.965, quality_drop=0.005, metrics={"accuracy": 0.965})
    c = _comparison(-0.02, 0.01, -0.005)
    assert check(Limits(max_quality_drop=0.01), t, BASE, comparison=c) == []


def test_with_quality_confidence_the_worst_end_of_the_interval_is_judged() -> None:
    t = trial(1, quality=0.965, quality_drop=0.005, metrics={"accuracy": 0.965})
    c = _comparison(-0.02, 0.01, -0.005)
    limits = Limits({"max_quality_drop": 0.01, "quality_confidence": 0.95})
    (v,) = check(limits, t, BASE, comparison=c)
    assert v.field == "max_quality_drop" and v.value == pytest.approx(0.02)
    assert "worst end of the 95 % interval" in v.describe()
    ratio = Limits({"min_quality_ratio": 0.99, "quality_confidence": 0.95})
    (v,) = check(ratio, t, BASE, comparison=c)
    assert v.value == pytest.approx(0.95 / 0.97)
    assert check(limits, t, BASE) == []  # no comparison: the point, as before


def test_a_budget_takes_quality_confidence_as_a_fraction() -> None:
    text = "[all]\nmax_quality_drop = 0.01\nquality_confidence = 0.9\n"
    budget = parse_budget(tomllib.loads(text), "b.toml")
    assert budget.all.get("quality_confidence") == 0.9
    with pytest.raises(SpecError, match="strictly between 0 and 1"):
        parse_budget({"all": {"quality_confidence": 95}}, "b.toml")


def test_a_pick_carries_its_paired_interval_and_sentence() -> None:
    trials = [trial(0), trial(1, quality=0.965, quality_drop=0.005, cost_per_1k_usd=5e-6)]
    c = _comparison(-0.0056, 0.0019, -0.005)
    budget = Budget("b", Limits(), {"cpu-a": Limits()})
    rec = recommend("j1", trials, budget, ["cpu-a"], {("cpu-a", 1): c})
    pick = rec.per_target["cpu-a"].pick
    assert pick is not None and pick.comparison == c
    assert pick.sentence is not None and pick.sentence.endswith("no significant change")
    out = rec.to_dict()["per_target"]["cpu-a"]["pick"]["quality_change"]
    assert out["significant"] is False and out["broken"] == 3 and "sentence" in out
