"""Pareto marking and the cost formula, checked against an independent brute force."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from support.factories import make_store, trial

from farm.store.db import connect
from farm.store.fronts import cost_per_1k, front, mark_fronts, pareto_mask


def brute_force(values: np.ndarray, senses: list[int]) -> np.ndarray:
    v = values * np.asarray(senses)  # larger is better everywhere
    n = len(v)
    keep = np.ones(n, dtype=bool)
    for i, j in itertools.product(range(n), range(n)):
        if i != j and np.all(v[j] >= v[i]) and np.any(v[j] > v[i]):
            keep[i] = False
    return keep


@pytest.mark.parametrize("seed", range(5))
def test_mask_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 6, size=(60, 3)).astype(float)  # many ties
    senses = [1, -1, -1]
    assert np.array_equal(pareto_mask(values, senses), brute_force(values, senses))


def test_identical_points_both_stay_on_the_front() -> None:
    values = np.array([[0.9, 1.0, 1.0], [0.9, 1.0, 1.0], [0.8, 2.0, 2.0]])
    assert pareto_mask(values, [1, -1, -1]).tolist() == [True, True, False]


def test_the_front_ignores_failed_and_infeasible_trials() -> None:
    kept = trial(0, quality=0.9, latency_p95_ms=2.0, cost_per_1k_usd=1.0)
    trials = [
        kept,
        # better on every objective, but infeasible: must not hide the first trial
        trial(1, quality=0.95, latency_p95_ms=1.0, cost_per_1k_usd=0.5, feasible=False),
        trial(2, status="failed", feasible=False, quality=None, latency_p95_ms=None),
        trial(3, quality=0.8, latency_p95_ms=3.0, cost_per_1k_usd=2.0),
    ]
    assert front(trials) == [kept]


def test_the_store_marks_the_same_fronts(tmp_path: Path) -> None:
    """The set-based marking in SQL agrees with :func:`front` per target and across targets."""
    points = [
        ("cpu-a", 0.9, 2.0, 1.0),
        ("cpu-a", 0.8, 3.0, 2.0),
        ("cpu-a", 0.95, 2.5, 1.5),
        ("cpu-b", 0.85, 1.0, 0.5),
        ("cpu-b", 0.99, 4.0, 3.0),
    ]
    trials = [
        trial(i, target=t, quality=q, latency_p95_ms=p, cost_per_1k_usd=c)
        for i, (t, q, p, c) in enumerate(points)
    ]
    store = make_store(tmp_path / "f.duckdb", "j1", trials)
    with connect(store.path) as con:
        mark_fronts(con, "j1")
    marked = store.trials("j1")
    for target in ("cpu-a", "cpu-b"):
        of_target = [t for t in trials if t.target == target]
        on = {t.trial_number for t in marked if t.target == target and t.on_front}
        assert on == {t.trial_number for t in front(of_target)}
    on_global = {t.trial_number for t in marked if t.on_global_front}
    assert on_global == {t.trial_number for t in front(trials)}


def test_cost_formula() -> None:
    # $3.60 per hour at 1000 images/s: 3.6 / 3,600,000 images = $1e-6 per image = $1e-3 per 1k
    assert cost_per_1k(3.6, 1000.0) == pytest.approx(1e-3)
    assert cost_per_1k(0.0832, 4000.0) == pytest.approx(0.0832 / (4000 * 3600) * 1000)
    with pytest.raises(ValueError):
        cost_per_1k(1.0, 0.0)
