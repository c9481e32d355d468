"""Pareto marking and the cost formula, checked against an independent brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from farm.store.fronts import cost_per_1k, front_rows, pareto_mask


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


def test_front_rows_ignore_failed_and_infeasible() -> None:
    rows = [
        {
            "status": "completed",
            "feasible": True,
            "accuracy": 0.9,
            "latency_p95_ms": 2.0,
            "cost_per_1k_usd": 1.0,
        },
        # better on every objective, but infeasible: must not hide the first row
        {
            "status": "completed",
            "feasible": False,
            "accuracy": 0.95,
            "latency_p95_ms": 1.0,
            "cost_per_1k_usd": 0.5,
        },
        {
            "status": "failed",
            "feasible": False,
            "accuracy": None,
            "latency_p95_ms": None,
            "cost_per_1k_usd": None,
        },
        {
            "status": "completed",
            "feasible": True,
            "accuracy": 0.8,
            "latency_p95_ms": 3.0,
            "cost_per_1k_usd": 2.0,
        },
    ]
    assert front_rows(rows) == [rows[0]]


def test_cost_formula() -> None:
    # $3.60 per hour at 1000 images/s: 3.6 / 3,600,000 images = $1e-6 per image = $1e-3 per 1k
    assert cost_per_1k(3.6, 1000.0) == pytest.approx(1e-3)
    assert cost_per_1k(0.0832, 4000.0) == pytest.approx(0.0832 / (4000 * 3600) * 1000)
    with pytest.raises(ValueError):
        cost_per_1k(1.0, 0.0)
