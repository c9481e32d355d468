"""`farm history`: jobs of one name over time, change points by the gate's test on raw samples.

Synthetic stores written through the real Store (fast), with samples drawn as tests/cli/test_gate.py
draws them: three nightly jobs of one name, the third 25 % slower.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from support.factories import ENV, trial

from farm.cli import main
from farm.store.db import Store
from farm.store.records import TrialRecord

NAME = "nightly"


def samples(scale: float, seed: int, n: int = 400) -> np.ndarray:
    return np.random.default_rng(seed).lognormal(np.log(scale), 0.08, n)


def add_job(
    store: Store,
    job_id: str,
    label: str,
    slow: float = 1.0,
    quality: float = 0.97,
    seed: int = 0,
) -> None:
    """One job named NAME: a baseline and an int8 trial on cpu-a, with raw samples."""
    spec = {"name": NAME, "workload": {"name": "digits"}, "targets": ["cpu-a"]}
    store.create_job(job_id, NAME, json.dumps(spec), label=label)
    rows: list[tuple[TrialRecord, np.ndarray]] = [
        (trial(0, quality=quality, latency_p95_ms=1.2 * slow), samples(slow, seed)),
        (
            trial(
                1,
                params={"batch_size": 1, "precision": "int8"},
                quality=quality - 0.004,
                quality_drop=0.004,
                latency_p95_ms=0.6 * slow,
                cost_per_1k_usd=5e-6,
            ),
            samples(0.5 * slow, seed + 1),
        ),
    ]
    for record, s in rows:
        store.record_trial(
            record.replace(job_id=job_id), s.tolist(), {"accuracy": quality}, ("env1", ENV)
        )
    store.set_job_status(job_id, "completed")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    store = Store(tmp_path / "f.duckdb")
    add_job(store, "nightly-1", "sha-1", seed=10)
    add_job(store, "nightly-2", "sha-2", seed=20)  # the same distribution: no change
    add_job(store, "nightly-3", "sha-3", slow=1.25, seed=30)  # a 25 % slowdown
    return store.path


def test_the_third_job_is_flagged_and_not_the_second(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["history", NAME, "--db", str(db), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [j["label"] for j in out["jobs"]] == ["sha-1", "sha-2", "sha-3"]
    assert out["basis"] == "baseline"
    changes = {p["job_id"]: p["changes"] for p in out["points"]}
    assert changes == {"nightly-1": [], "nightly-2": [], "nightly-3": ["slower"]}
    assert out["changes"] == [{"job_id": "nightly-3", "target": "cpu-a", "changes": ["slower"]}]
    third = out["points"][-1]
    assert third["trial_number"] == 0 and third["params"]["precision"] == "fp32"
    assert third["p95_ms"] == pytest.approx(1.5) and "REGRESSION" in third["detail"]
    assert "no step" in out["points"][1]["detail"]


def test_the_table_names_labels_and_the_change(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["history", NAME, "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "sha-3" in out and "nightly-3" in out and "slower" in out
    assert "change: cpu-a in sha-3" in out
    assert "change: cpu-a in sha-2" not in out


def test_with_a_budget_it_follows_the_recommended_configuration(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    budget = tmp_path / "b.toml"
    budget.write_text("[all]\nmax_accuracy_drop = 0.01\n")
    assert main(["history", NAME, "--db", str(db), "--budget", str(budget), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["basis"] == f"recommended under {budget}"
    assert {p["params"]["precision"] for p in out["points"]} == {"int8"}  # cheapest that passes
    assert [p["changes"] for p in out["points"]] == [[], [], ["slower"]]


def test_a_quality_drop_is_a_change_point_too(tmp_path: Path) -> None:
    from farm.release.history import release_history

    store = Store(tmp_path / "f.duckdb")
    add_job(store, "nightly-1", "a", seed=1)
    add_job(store, "nightly-2", "b", seed=2, quality=0.95)
    history = release_history(store, NAME)
    assert [p.changes for p in history.points] == [(), ("quality drop",)]


def test_html_page_and_report_section_show_the_history(db: Path, tmp_path: Path) -> None:
    from farm.api import open_store

    page = tmp_path / "h.html"
    assert main(["history", NAME, "--db", str(db), "--html", str(page)]) == 0
    html = page.read_text()
    assert 'id="fig-history"' in html and "sha-3" in html and "slower" in html

    job = open_store(db).job("nightly-3")
    report = job.report(tmp_path / "r.html").read_text()
    assert "<h2>Release history</h2>" in report and 'id="fig-history"' in report
    # The report of the second job shows only the jobs up to it: nothing flagged there.
    second = open_store(db).job("nightly-2").report(tmp_path / "r2.html").read_text()
    assert "sha-3" not in second and "Change points: none" in second


def test_unknown_name_and_bad_options_exit_2(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "nope", "--db", str(db)]) == 2
    assert "no job is named 'nope'" in capsys.readouterr().err
    assert main(["history", NAME, "--db", str(db), "--alpha", "2"]) == 2
    assert "--alpha: expected a number in (0, 1)" in capsys.readouterr().err
