"""An error rate as the primary metric (CER: lower is better) is ranked, limited and judged the
right way round: fronts, the stored fronts, recommend's tie-break, constraints and budgets."""

from __future__ import annotations

from pathlib import Path

from support.factories import make_store, trial

from farm.release.budget import check, load_budget
from farm.release.recommend import rank_key
from farm.spec.constraints import MetricLimit
from farm.store.db import connect
from farm.store.fronts import front, mark_fronts
from farm.store.records import TrialRecord
from workloads.tasks import higher_is_better


def cer_trial(number: int, cer: float, **fields: object) -> TrialRecord:
    return trial(
        number,
        quality=cer,
        quality_metric="cer",
        quality_higher_is_better=False,
        **fields,
    )


def test_the_registry_knows_which_metrics_are_error_rates() -> None:
    assert higher_is_better("accuracy") and higher_is_better("map")
    assert not higher_is_better("max_abs_logit_diff")


def test_a_lower_error_rate_dominates_at_equal_latency_and_cost() -> None:
    low, high = cer_trial(1, 0.01), cer_trial(2, 0.05)
    assert front([low, high]) == [low]
    # the same numbers as accuracy: the larger one wins
    assert front([trial(1, quality=0.01), trial(2, quality=0.05)])[0].trial_number == 2


def test_stored_fronts_rank_an_error_rate_the_right_way(tmp_path: Path) -> None:
    store = make_store(tmp_path / "s.duckdb", "j", [cer_trial(0, 0.05), cer_trial(1, 0.01)])
    with connect(store.path) as con:
        assert mark_fronts(con, "j") == (1, 1)
    assert [t.trial_number for t in store.trials("j") if t.on_front] == [1]


def test_recommend_breaks_a_cost_tie_by_the_lower_error_rate() -> None:
    worse, better = cer_trial(1, 0.05), cer_trial(2, 0.01)
    assert min([worse, better], key=rank_key) is better


def test_a_quality_drop_limit_on_an_error_rate_limits_its_increase() -> None:
    limit = MetricLimit("max_quality_drop", "drop", "quality", 0.01).resolved("cer", False)
    assert limit.kind == "increase"
    assert limit.violation({"cer": 0.03}, {"cer": 0.01}) > 0  # CER rose by 0.02
    assert limit.violation({"cer": 0.005}, {"cer": 0.01}) <= 0  # it fell: better


def test_a_minimum_quality_in_a_budget_is_a_maximum_error_rate(tmp_path: Path) -> None:
    (tmp_path / "b.toml").write_text("[all]\nmin_quality = 0.02\n")
    limits = load_budget(tmp_path / "b.toml").limits_for("cpu-a")
    assert check(limits, cer_trial(1, 0.01)) == []
    assert [v.limit for v in check(limits, cer_trial(2, 0.03))] == [0.02]
