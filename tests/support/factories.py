"""Records and small stores for the read side's tests: trials built as the engine records them,
written through the real :class:`~farm.store.db.Store` (fast: no Ray, no runtime)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from farm.store.db import Store
from farm.store.records import JobRecord, TrialRecord

CONTRACT = {"min_samples": 64, "percentile_method": "inverted_cdf", "scenario": "single-stream"}
ENV = {"cpu_model": "test cpu", "farm_commit": "abc", "packages": {"onnxruntime": "1.0"}}


def trial(number: int, **fields: Any) -> TrialRecord:
    """A completed, feasible classification trial of target ``cpu-a`` (trial 0 is the
    baseline); ``fields`` override any TrialRecord field by name."""
    values: dict[str, Any] = {
        "job_id": "j1",
        "target": "cpu-a",
        "trial_number": number,
        "is_baseline": number == 0,
        "candidate_hash": f"h{number}",
        "params": {"batch_size": 1, "precision": "fp32", "n": number},
        "status": "completed",
        "attempts": 1,
        "quality": 0.97,
        "quality_drop": 0.0,
        "quality_metric": "accuracy",
        "latency_p50_ms": 1.0,
        "latency_p95_ms": 1.2,
        "latency_p99_ms": 1.5,
        "throughput_ips": 1000.0,
        "cost_per_1k_usd": 1e-5,
        "batch_size": 1,
        "stable": True,
        "feasible": True,
        "env_id": "env1",
        "contract": CONTRACT,
    }
    values.update(fields)
    return TrialRecord(**values)


#: One target's trials: a baseline, a cheap one that drops 7 %, three that tie on cost, a
#: failure and an infeasible one (the recommend rule's cases).
ROWS = [
    trial(0, cost_per_1k_usd=4e-5, latency_p95_ms=4.0, quality=0.97),
    trial(1, cost_per_1k_usd=1e-5, latency_p95_ms=1.0, quality=0.90, quality_drop=0.07),
    trial(2, cost_per_1k_usd=2e-5, latency_p95_ms=1.5, quality=0.965, quality_drop=0.005),
    trial(3, cost_per_1k_usd=2e-5, latency_p95_ms=1.4, quality=0.968, quality_drop=0.002),
    trial(4, cost_per_1k_usd=2e-5, latency_p95_ms=1.3, quality=0.968, quality_drop=0.002),
    trial(5, status="failed", error="TrialError: boom", feasible=False, quality=None),
    trial(6, cost_per_1k_usd=5e-6, latency_p95_ms=0.9, quality=0.96, feasible=False),
]


def job_record(
    job_id: str, *, workload: str = "digits", targets: Sequence[str] = ("cpu-a",)
) -> JobRecord:
    """A completed job of ``workload`` on ``targets``."""
    spec = {"name": job_id, "workload": {"name": workload}, "targets": list(targets)}
    return JobRecord(job_id=job_id, name=job_id, spec=spec, status="completed")


def make_store(
    db: Path,
    job_id: str,
    trials: Sequence[TrialRecord],
    samples: dict[int, np.ndarray] | None = None,
    env: dict[str, Any] | None = None,
    workload: str = "digits",
) -> Store:
    """A store holding one completed job with ``trials`` (their job id set to ``job_id``);
    ``samples`` by trial number (default: none)."""
    store = Store(db)
    targets = sorted({t.target for t in trials}) or ["cpu-a"]
    spec = {"name": job_id, "workload": {"name": workload}, "targets": targets}
    store.create_job(job_id, job_id, json.dumps(spec))
    for t in trials:
        s = (samples or {}).get(t.trial_number, ())
        store.record_trial(
            t.replace(job_id=job_id), s, environment=(t.env_id or "env1", env or ENV)
        )
    store.set_job_status(job_id, "completed")
    return store


def write_budget(folder: Path, text: str) -> Path:
    """A budget file ``b.toml`` in ``folder``."""
    path = folder / "b.toml"
    path.write_text(text)
    return path
