"""A real job with slices and an operating point judges its KPIs image by image: each
candidate's Brier, NLL, false positive / negative rates, slices, worst slice and slice gap get
a paired interval against the fp32 baseline, and the gate judges them the same way (real Ray,
ONNX Runtime and DuckDB)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from farm.engine.runner import JobRunner
from farm.gate.checks import regression_checks
from farm.gate.options import GateOptions
from farm.gate.snapshot import Snapshot
from farm.spec.job import parse_job
from farm.store.db import Store

SLICES = Path(__file__).resolve().parents[2] / "farm" / "jobs" / "digits_slices.csv"
JUDGED = {"brier", "nll", "fp_rate", "fn_rate", "worst_slice", "slice_gap"}


@pytest.fixture(scope="module")
def kpi_job(results_dir: Path) -> tuple[Store, str]:
    job = f"""
name = "kpi-evidence"
targets = ["cpu-onnxruntime"]
[workload]
name = "digits"
[workload.data]
slices = "{SLICES}"
[evaluation]
positive_classes = [8, 9]
target_precision = 0.95
[search]
trials_per_target = 3
seed = 2
precision = ["fp32", "int8"]
batch_size = [8]
threads = [1]
[measurement]
min_duration_s = 0.2
max_duration_s = 0.5
min_samples = 16
"""
    store = Store(results_dir / "kpi-evidence.duckdb")
    runner = JobRunner(parse_job(tomllib.loads(job), source="kpi.toml"), store)
    assert runner.run() == "completed"
    return store, runner.job_id


def test_every_kpi_that_is_a_mean_or_a_slice_is_compared_and_equals_the_recorded_one(
    kpi_job: tuple[Store, str],
) -> None:
    store, job_id = kpi_job
    trials = {(r.target, r.trial_number): r for r in store.trials(job_id) if r.completed}
    every = store.comparisons(job_id, kpis=True)
    candidates = {(t, n) for t, n, _ in every}
    assert candidates and all(not trials[k].is_baseline for k in candidates)
    for key in candidates:
        got = {m: c for (t, n, m), (_, c) in every.items() if (t, n) == key}
        slices = {m for m in trials[key].metrics if m.startswith("slice/")}
        assert slices and JUDGED | slices <= set(got)
        for name in JUDGED | slices:
            c = got[name]
            assert c.value == pytest.approx(trials[key].metrics[name], abs=1e-9), name
            assert c.low <= c.delta <= c.high, name


def test_the_gate_judges_those_kpis_on_their_paired_interval(kpi_job: tuple[Store, str]) -> None:
    store, job_id = kpi_job
    snap = Snapshot.from_store(store, job_id)
    checks, _ = regression_checks(snap, snap, GateOptions())
    kpis = {c.name.split(": ")[-1]: c for c in checks if c.kind == "kpi"}
    assert set(kpis) >= JUDGED
    for name in JUDGED:
        assert kpis[name].passed and "[paired over the same images, " in kpis[name].message
        assert "+0.0000 [+0.0000, +0.0000] at 95 %" in kpis[name].message
    assert "[fixed tolerance: no per-image terms of it are kept]" in kpis["ece"].message
    # without the evidence (an export file), every KPI says it was judged on a fixed tolerance
    without = Snapshot(snap.source, snap.job, snap.trials, snap.samples)
    checks, _ = regression_checks(without, snap, GateOptions())
    assert all("[fixed tolerance: the two jobs" in c.message for c in checks if c.kind == "kpi")
