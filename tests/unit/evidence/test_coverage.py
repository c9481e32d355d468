"""Do the paired intervals mean what they say? With a known true difference between two
models, the 95 % interval must cover it in 93–97 % of 1,000 seeded runs (each run: a fresh
sample of eval images, the interval from 1,000 resamples)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from farm.evidence import EvidenceSettings, compare
from workloads.evidence import Evidence
from workloads.tasks import Classification

RUNS = 1000


def _right_wrong(correct: np.ndarray) -> Evidence:
    n = len(correct)
    return Evidence(
        tuple(map(str, range(n))),
        correct.astype(float),
        ("",) * n,
        np.full(n, np.nan),
        correct,
        {"correct": correct},
    )


@pytest.mark.slow
def test_accuracy_intervals_cover_the_true_difference_95_percent_of_the_time() -> None:
    # fp32 right with p 0.9; the candidate breaks 3 % of its right images and fixes 10 % of
    # its wrong ones: true difference -0.9 * 0.03 + 0.1 * 0.1 = -0.017
    truth = -0.9 * 0.03 + 0.1 * 0.1
    covered = 0
    for run in range(RUNS):
        rng = np.random.default_rng(run)
        base = rng.random(400) < 0.9
        flip = rng.random(400)
        cand = np.where(base, flip >= 0.03, flip < 0.1)
        c = compare(
            Classification(),
            _right_wrong(base),
            _right_wrong(cand),
            metric="accuracy",
            higher_is_better=True,
            settings=EvidenceSettings(seed=run),
        )
        covered += c.low <= truth <= c.high
    assert 0.93 <= covered / RUNS <= 0.97, covered


def _map_coverage_benchmark() -> ModuleType:
    path = Path(__file__).parents[3] / "benchmarks" / "map_coverage.py"
    spec = importlib.util.spec_from_file_location("map_coverage", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_map_intervals_cover_the_true_change_95_percent_of_the_time() -> None:
    # 1,000 images per run drawn from a pool of 30,000 generated images whose mAP change (a
    # quantized detector's: boxes 2.3 px off instead of 2, scores jittered) is the truth; the
    # farm's interval for detection (percentile, centred on the estimate) must hold it 93-97 %
    # of the time. About 7 minutes on 2 cores. docs/kpis.md says where it does not (big changes).
    shares = _map_coverage_benchmark().coverage(images=1000, runs=RUNS, report=lambda _: None)
    assert 0.93 <= shares["farm"] <= 0.97, shares
