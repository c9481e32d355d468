"""`farm recommend`: the rule, the reasons runner-ups were excluded, and exit codes.

Uses small synthetic stores written through the real Store (fast); the end-to-end check on a real
job is in tests/test_report.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from farm.cli import main
from farm.store.db import Store

CONTRACT = {"min_samples": 64, "percentile_method": "inverted_cdf", "scenario": "single-stream"}
ENV = {"cpu_model": "test cpu", "farm_commit": "abc", "packages": {"onnxruntime": "1.0"}}


def trial(number: int, **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "target": "cpu-a",
        "trial_number": number,
        "is_baseline": number == 0,
        "candidate_hash": f"h{number}",
        "params": {"batch_size": 1, "precision": "fp32", "n": number},
        "status": "completed",
        "attempts": 1,
        "accuracy": 0.97,
        "accuracy_drop": 0.0,
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
    row.update(kw)
    return row


def make_store(
    db: Path,
    job_id: str,
    rows: list[dict[str, Any]],
    samples: dict[int, np.ndarray] | None = None,
    env: dict[str, Any] | None = None,
    workload: str = "digits",
) -> Store:
    """A store holding one job with ``rows``; ``samples`` by trial number (default: none)."""
    store = Store(db)
    targets = sorted({r["target"] for r in rows}) or ["cpu-a"]
    spec = {"name": job_id, "workload": {"name": workload}, "targets": targets}
    store.create_job(job_id, job_id, json.dumps(spec))
    for r in rows:
        r = {"job_id": job_id, **r}
        env_id = r.get("env_id") or "env1"
        s = (samples or {}).get(r["trial_number"], ())
        store.record_trial(r, s, environment=(env_id, env or ENV))
    store.set_job_status(job_id, "completed")
    return store


def budget(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "b.toml"
    p.write_text(text)
    return p


ROWS = [
    trial(0, cost_per_1k_usd=4e-5, latency_p95_ms=4.0, accuracy=0.97),
    trial(1, cost_per_1k_usd=1e-5, latency_p95_ms=1.0, accuracy=0.90, accuracy_drop=0.07),
    trial(2, cost_per_1k_usd=2e-5, latency_p95_ms=1.5, accuracy=0.965, accuracy_drop=0.005),
    trial(3, cost_per_1k_usd=2e-5, latency_p95_ms=1.4, accuracy=0.968, accuracy_drop=0.002),
    trial(4, cost_per_1k_usd=2e-5, latency_p95_ms=1.3, accuracy=0.968, accuracy_drop=0.002),
    trial(5, status="failed", error="TrialError: boom", feasible=False, accuracy=None),
    trial(6, cost_per_1k_usd=5e-6, latency_p95_ms=0.9, accuracy=0.96, feasible=False),
]


def test_cheapest_passing_wins_ties_by_accuracy_then_latency(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_store(tmp_path / "f.duckdb", "j1", ROWS)
    b = budget(tmp_path, "[all]\nmax_p95_ms = 3\nmax_accuracy_drop = 0.01\n")
    code = main(
        ["recommend", "j1", "--db", str(tmp_path / "f.duckdb"), "--budget", str(b), "--json"]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    choice = out["per_target"]["cpu-a"]
    # 1 is cheapest but drops 7 %; 2, 3, 4 tie on cost; 3 and 4 tie on accuracy; 4 is faster.
    assert choice["pick"]["trial_number"] == 4
    assert out["overall"]["trial_number"] == 4
    reasons = {o["trial_number"]: o["reason"] for o in choice["others"]}
    assert "accuracy drop vs baseline 0.07 > 0.01" in reasons[1]
    assert "p95 latency 4 ms > 3 ms" in reasons[0]
    assert reasons[5].startswith("trial failed: TrialError: boom")
    assert reasons[6].startswith("infeasible in the job")
    assert reasons[3].startswith("passes, but not first")


def test_nothing_passes_says_so_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_store(tmp_path / "f.duckdb", "j1", ROWS)
    b = budget(tmp_path, "[all]\nmax_p95_ms = 0.1\n")
    code = main(["recommend", "j1", "--db", str(tmp_path / "f.duckdb"), "--budget", str(b)])
    out = capsys.readouterr().out
    assert code == 1
    assert "NOTHING passes" in out and "overall: NOTHING meets the budget" in out
    assert "recommended" not in out


def test_bad_budget_and_unknown_job_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "f.duckdb")
    make_store(tmp_path / "f.duckdb", "j1", ROWS)
    bad = budget(tmp_path, "[all]\nmax_latency = 3\n")
    assert main(["recommend", "j1", "--db", db, "--budget", str(bad)]) == 2
    assert f"{bad}: field `all.max_latency`" in capsys.readouterr().err
    good = budget(tmp_path, "[all]\nmax_p95_ms = 3\n")
    assert main(["recommend", "nope", "--db", db, "--budget", str(good)]) == 2
    assert "no job matches 'nope'" in capsys.readouterr().err
    typo = budget(tmp_path, "[targets.cpu-z]\nmax_p95_ms = 3\n")
    assert main(["recommend", "j1", "--db", db, "--budget", str(typo)]) == 2
    assert "targets.cpu-z" in capsys.readouterr().err
