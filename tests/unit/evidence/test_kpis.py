"""Release KPIs judged image by image: per-class accuracy, KPIs kept as per-image terms (Brier,
NLL, the operating point's rates), user slices and the worst slice / slice gap they make."""

from __future__ import annotations

import numpy as np
import pytest

from farm.evidence import EvidenceSettings
from farm.evidence.kpis import compare_groups, compare_kpis, compare_slices, compare_terms
from workloads.evidence import Evidence, with_arrays
from workloads.tasks import Classification


def _right_wrong(correct: np.ndarray, **arrays: np.ndarray) -> Evidence:
    c = np.asarray(correct, dtype=bool)
    return Evidence(
        ids=tuple(f"img/{i}" for i in range(len(c))),
        score=c.astype(float),
        predicted=("x",) * len(c),
        confidence=np.full(len(c), 0.9),
        correct=c,
        arrays={"correct": c, **arrays},
    )


def test_per_class_accuracy_is_judged_within_its_class() -> None:
    truth = np.array([0] * 50 + [1] * 50)
    base = _right_wrong(np.ones(100, bool))
    cand = _right_wrong(np.r_[np.ones(50, bool), np.zeros(10, bool), np.ones(40, bool)])
    a, b = compare_groups(base, cand, {"acc/cat": truth == 0, "acc/dog": truth == 1})
    assert (a.metric, a.delta, a.broken, a.n_images, a.significant) == ("acc/cat", 0, 0, 50, False)
    assert b.delta == pytest.approx(-0.2) and b.broken == 10 and b.significant
    assert b.p_value == pytest.approx(2 / 2**10) and b.low <= -0.2 <= b.high


def test_a_kpi_kept_as_terms_is_their_mean_where_defined_and_judged_the_bad_way() -> None:
    rng = np.random.default_rng(0)
    brier = rng.uniform(0, 0.3, 200)
    positive = np.arange(200) < 80
    missed = np.where(positive, 0.0, np.nan)  # fn_rate: 1/0 on the positive images only
    worse_missed = missed.copy()
    worse_missed[:12] = 1.0  # the candidate misses 12 of the 80 positives
    base = _right_wrong(np.ones(200, bool), **{"kpi/brier": brier, "kpi/fn_rate": missed})
    cand = _right_wrong(
        np.ones(200, bool), **{"kpi/brier": brier + 0.02, "kpi/fn_rate": worse_missed}
    )
    got = {c.metric: c for c in compare_terms(base, cand, settings=EvidenceSettings(seed=1))}
    assert set(got) == {"brier", "fn_rate"}
    b, fn = got["brier"], got["fn_rate"]
    assert b.delta == pytest.approx(0.02) and b.low == pytest.approx(0.02)  # every image +0.02
    assert not b.higher_is_better and b.verdict == "worse" and b.p_value is None
    assert (b.n_images, b.broken, b.fixed) == (200, 0, 0)  # no term moved by half a unit
    assert (fn.n_images, fn.baseline, fn.value) == (80, 0.0, pytest.approx(12 / 80))
    assert (fn.broken, fn.fixed) == (12, 0) and fn.p_value == pytest.approx(2 / 2**12)
    assert fn.low > 0 and fn.verdict == "worse"


def test_a_kpi_only_one_trial_kept_is_not_compared() -> None:
    base = _right_wrong(np.ones(10, bool), **{"kpi/nll": np.zeros(10)})
    assert compare_terms(base, _right_wrong(np.ones(10, bool))) == []


def test_slices_their_worst_and_their_gap_are_recomputed_on_every_resample() -> None:
    n = 300
    dark, bright = np.arange(n) < 100, np.arange(n) >= 100
    base_right = np.ones(n, bool)
    base_right[100:110] = False  # bright: 190/200 right
    cand_right = base_right.copy()
    cand_right[:30] = False  # dark: 70/100 right (was 100/100)
    slices = {"slice/dark": dark, "slice/bright": bright}
    base, cand = _right_wrong(base_right, **slices), _right_wrong(cand_right, **slices)
    got = {c.metric: c for c in compare_slices(Classification(), base, cand, higher_is_better=True)}
    assert set(got) == {"slice/bright", "slice/dark", "worst_slice", "slice_gap"}
    d, w, gap = got["slice/dark"], got["worst_slice"], got["slice_gap"]
    assert (d.baseline, d.value, d.broken, d.n_images) == (1.0, 0.7, 30, 100)
    assert d.significant and d.low <= -0.3 <= d.high
    assert got["slice/bright"].delta == 0 and not got["slice/bright"].significant
    assert (w.baseline, w.value) == (pytest.approx(0.95), pytest.approx(0.7))
    assert w.higher_is_better and w.verdict == "worse"
    assert (gap.baseline, gap.value) == (pytest.approx(0.05), pytest.approx(0.25))
    assert not gap.higher_is_better and gap.verdict == "worse"


def test_a_slice_the_two_trials_drew_differently_is_not_compared() -> None:
    mask = np.arange(20) < 10
    base = _right_wrong(np.ones(20, bool), **{"slice/a": mask})
    cand = _right_wrong(np.ones(20, bool), **{"slice/a": ~mask})
    assert compare_slices(Classification(), base, cand, higher_is_better=True) == []
    assert compare_slices(Classification(), base, with_arrays(base, {}), higher_is_better=True)


def test_every_kpi_a_job_records_and_classes_named_as_the_task_names_them() -> None:
    truth = np.array([0] * 20 + [1] * 20)
    arrays = {"truth": truth, "kpi/nll": np.zeros(40), "slice/a": np.arange(40) < 10}
    base = _right_wrong(np.ones(40, bool), **arrays)
    cand = _right_wrong(np.r_[np.zeros(5, bool), np.ones(35, bool)], **arrays)

    def names(class_names: object) -> set[str]:
        got = compare_kpis(
            Classification(), base, cand, higher_is_better=True, class_names=class_names
        )
        return {c.metric for c in got}

    judged = {"nll", "slice/a", "worst_slice", "slice_gap"}
    assert names(("cat", "dog")) == {"acc/cat", "acc/dog", *judged}
    # a mapping of ids to names is not how a classifier names its metrics (class_labels)
    assert names({0: "cat", 1: "dog"}) == {"acc/0", "acc/1", *judged}
    assert names(None) == {"acc/0", "acc/1", *judged}
    got = compare_kpis(Classification(), base, cand, higher_is_better=True, class_names=("c",))
    first = next(c for c in got if c.metric == "acc/c")
    assert (first.broken, first.n_images, first.delta) == (5, 20, pytest.approx(-0.25))
