"""`farm recommend`: the rule, the reasons runner-ups were excluded, and exit codes.

Uses small synthetic stores written through the real Store (fast); the end-to-end check on a real
job is in tests/test_report.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.factories import ROWS, make_store, trial
from support.factories import write_budget as budget

from farm.cli import main


def test_cheapest_passing_wins_ties_by_quality_then_latency(
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
    # 1 is cheapest but drops 7 %; 2, 3, 4 tie on cost; 3 and 4 tie on quality; 4 is faster.
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


def test_json_keeps_the_accuracy_keys_and_adds_quality(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_store(tmp_path / "f.duckdb", "j1", ROWS)
    b = budget(tmp_path, "[all]\nmax_quality_drop = 0.01\n")
    main(["recommend", "j1", "--db", str(tmp_path / "f.duckdb"), "--budget", str(b), "--json"])
    pick = json.loads(capsys.readouterr().out)["overall"]
    assert pick["quality"] == pick["accuracy"] == 0.968
    assert pick["quality_drop"] == pick["accuracy_drop"] == 0.002
    assert pick["params"] == {"batch_size": 1, "precision": "fp32", "n": 4}


def test_a_detectors_reasons_name_its_own_metric(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [
        trial(0, quality_metric="map", quality=0.70, cost_per_1k_usd=4e-5),
        trial(1, quality_metric="map", quality=0.60, quality_drop=0.1, cost_per_1k_usd=1e-5),
        trial(2, quality_metric="map", quality=0.69, quality_drop=0.01, cost_per_1k_usd=2e-5),
    ]
    make_store(tmp_path / "f.duckdb", "j1", rows)
    b = budget(tmp_path, "[all]\nmax_accuracy_drop = 0.02\n")  # the documented alias
    assert main(["recommend", "j1", "--db", str(tmp_path / "f.duckdb"), "--budget", str(b)]) == 0
    out = capsys.readouterr().out
    assert "recommended #2" in out and "map 0.6900 (drop +0.0100)" in out
    assert "map drop vs baseline 0.1 > 0.02" in out
    assert "(limits: max_accuracy_drop=0.02)" in out  # the budget's own spelling
