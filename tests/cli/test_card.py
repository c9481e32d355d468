"""`farm card`: the release note of what would ship, every KPI against the fp32 baseline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.factories import ENV, trial

from farm.cli import main
from farm.store.db import Store

BASE = {"accuracy": 0.97, "ece": 0.030, "robustness": 0.90, "slice/thin": 0.95, "acc/8": 0.9}
INT8 = {"accuracy": 0.97, "ece": 0.045, "robustness": 0.84, "slice/thin": 0.93, "acc/8": 0.9}


@pytest.fixture
def db(tmp_path: Path) -> str:
    """One job: the fp32 baseline, an int8 candidate as accurate but less calibrated (cheaper,
    so it ships), and one excluded by a KPI constraint."""
    path = tmp_path / "card.duckdb"
    store = Store(path)
    spec = {"name": "kpis", "workload": {"name": "digits"}, "targets": ["cpu-a"]}
    store.create_job("job1", "kpis", json.dumps(spec))
    int8 = {"batch_size": 1, "precision": "int8", "n": 1}
    rows = [
        (trial(0, cost_per_1k_usd=4e-5, artifact_hash="a0"), BASE),
        (trial(1, params=int8, cost_per_1k_usd=1e-5, artifact_hash="a1"), INT8),
        (
            trial(
                2,
                params={**int8, "n": 2},
                cost_per_1k_usd=5e-6,
                feasible=False,
                infeasible_reason="ece_increase 0.0500 > max 0.02",
            ),
            {**INT8, "ece": 0.08},
        ),
    ]
    for record, metrics in rows:
        store.record_trial(
            record.replace(job_id="job1", metrics=metrics), environment=("env1", ENV)
        )
    store.set_job_status("job1", "completed")
    return str(path)


def test_the_card_shows_every_kpi_of_what_ships_against_the_baseline(
    db: str, tmp_path: Path
) -> None:
    out = tmp_path / "card.md"
    assert main(["card", "--db", db, "kpis", "-o", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("# Release note: kpis")
    assert "Ship trial #1: `batch_size=1 n=1 precision=int8`" in text
    assert "| accuracy | 0.9700 | 0.9700 | +0.0000 |" in text  # accuracy holds …
    assert "| ece | 0.0300 | 0.0450 | +0.0150 |" in text  # … calibration does not
    assert "| robustness | 0.9000 | 0.8400 | -0.0600 |" in text
    assert "| slice/thin | 0.9500 | 0.9300 | -0.0200 |" in text
    assert "| artifact hash | `a1` |" in text
    assert "| #2 |" in text and "ece_increase 0.0500 > max 0.02" in text


def test_the_report_embeds_the_same_card(db: str, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    assert main(["report", "--db", db, "kpis", "-o", str(out)]) == 0
    page = out.read_text()
    assert "Release note" in page and "Ship trial #1" in page and "0.0450" in page


def test_unknown_job_and_bad_output_exit_2(db: str, tmp_path: Path) -> None:
    assert main(["card", "--db", db, "nope"]) == 2
    assert main(["card", "--db", db, "kpis", "-o", str(tmp_path)]) == 2
