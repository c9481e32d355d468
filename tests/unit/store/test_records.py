"""The records are the store's tables: their fields are the columns the migrations create, and a
record goes into the store and comes back equal."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import duckdb
from support.factories import make_store, trial

from farm.store.db import Store, migrate
from farm.store.records import JOB_COLUMNS, TRIAL_COLUMNS, JobRecord, TrialRecord


def columns(db: Path, table: str) -> list[str]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
            "ORDER BY ordinal_position",
            [table],
        ).fetchall()
    finally:
        con.close()
    return [r[0] for r in rows]


def test_the_migrated_tables_have_exactly_the_records_columns(tmp_path: Path) -> None:
    db = tmp_path / "new.duckdb"
    con = duckdb.connect(str(db))
    migrate(con)
    con.close()
    assert sorted(columns(db, "trials")) == sorted(TRIAL_COLUMNS)
    assert sorted(columns(db, "jobs")) == sorted(JOB_COLUMNS)


def test_a_trial_comes_back_from_the_store_equal_with_its_metrics(tmp_path: Path) -> None:
    started = datetime(2026, 12, 7, 1, 2, 3)
    record = trial(
        3,
        metrics={"accuracy": 0.97, "ece": 0.02},
        started_at=started,
        contract={"min_samples": 64, "seed": 0},
        artifact_bytes=123,
    )
    store = make_store(tmp_path / "f.duckdb", "j1", [record])
    (back,) = store.trials("j1")
    assert back == record.replace(job_id="j1")
    assert back.to_row() == record.replace(job_id="j1").to_row()
    assert back.metrics == {"accuracy": 0.97, "ece": 0.02}
    assert back.metric("quality") == back.metric("accuracy") == 0.97


def test_a_row_of_a_store_before_the_rename_reads_accuracy_as_quality() -> None:
    row = trial(1, quality=0.9, quality_drop=0.05).to_row()
    del row["quality"], row["quality_drop"]
    record = TrialRecord.from_row(row)
    assert (record.quality, record.quality_drop) == (0.9, 0.05)
    assert record.params == {"batch_size": 1, "precision": "fp32", "n": 1}


def test_jobs_come_back_as_records_with_their_counts(tmp_path: Path) -> None:
    store = make_store(tmp_path / "f.duckdb", "j1", [trial(0), trial(1, status="failed")])
    (job,) = store.jobs()
    assert isinstance(job, JobRecord) and job.job_id == "j1" and job.status == "completed"
    assert (job.trials, job.completed, job.failed) == (2, 1, 1)
    assert store.resolve_job("j1").spec["targets"] == ["cpu-a"]
    assert json.loads(job.to_row()["spec"]) == dict(job.spec)
    assert [j.job_id for j in Store(store.path).jobs_named("j1")] == ["j1"]
