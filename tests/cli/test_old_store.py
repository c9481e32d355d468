"""A store written by the previous release (9e3164a, before the ``quality`` rename) opens,
migrates and answers every read command as that release did.

The reference outputs in tests/data/store-9e3164a/ are what 9e3164a printed for this store.
JSON outputs must keep every key and value they had (``quality`` / ``quality_drop`` are added
beside ``accuracy`` / ``accuracy_drop``); text outputs must be identical but for the wording the
rename changed, listed in :data:`RENAMED`.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from farm.cli import main
from farm.store.db import Store
from farm.store.records import TrialRecord
from farm.store.schema import SCHEMA_VERSION

DATA = Path(__file__).parents[1] / "data"
REFERENCE = DATA / "store-9e3164a"
#: Where the reference outputs were made.
OLD_DB, OLD_BUDGET = "/tmp/oldstore/compact.duckdb", "/tmp/oldstore/b.toml"
JOBS = {
    "digits-kpis": "digits-kpis-20261207-004140-30d8",
    "shapes-detect": "shapes-detect-20261207-004233-7d1d",
}
#: The wording the rename changed, and nothing else: (old, new).
RENAMED = [
    ("ties by higher accuracy, then", "ties by higher quality, then"),
    ("USD/1k, accuracy 0.7350 vs", "USD/1k, map 0.7350 vs"),  # a detector's metric is map
]


@pytest.fixture
def old_store(tmp_path: Path) -> Path:
    db = tmp_path / "compact.duckdb"
    with gzip.open(DATA / "store-9e3164a.duckdb.gz") as src, db.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    shutil.copy(REFERENCE / "budget.toml", tmp_path / "b.toml")
    return db


def run(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(list(args)) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def renamed(text: str, db: Path) -> str:
    """The reference text as today's farm words it, with this test's paths."""
    text = text.replace(OLD_DB, str(db)).replace(OLD_BUDGET, str(db.parent / "b.toml"))
    for old, new in RENAMED:
        text = text.replace(old, new)
    return text


def assert_keeps(old: Any, new: Any, where: str = "$") -> None:
    """Every key and value of ``old`` is in ``new`` (which may add keys)."""
    if isinstance(old, dict):
        assert isinstance(new, dict), where
        for key, value in old.items():
            assert key in new, f"{where}.{key} is gone"
            assert_keeps(value, new[key], f"{where}.{key}")
    elif isinstance(old, list):
        assert isinstance(new, list) and len(new) == len(old), where
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            assert_keeps(a, b, f"{where}[{i}]")
    else:
        assert new == old, f"{where}: {new!r} != {old!r}"


def reference_json(name: str, db: Path) -> Any:
    path = REFERENCE / name
    text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
    return json.loads(renamed(text, db))


def trial_rows(doc: Any) -> list[dict[str, Any]]:
    """Every trial row of a ``pareto --json`` or ``export`` document."""
    if "trials" in doc:
        return list(doc["trials"])
    return [t for ts in doc["per_target"].values() for t in ts] + list(doc["global"])


def test_the_old_store_migrates_on_open_and_reads_as_records(old_store: Path) -> None:
    store = Store(old_store)
    records = store.trials(JOBS["shapes-detect"])
    assert store.query("SELECT max(version) AS v FROM schema_version")[0]["v"] == SCHEMA_VERSION
    assert {t.quality_metric for t in records} == {"map"}
    assert all(isinstance(t, TrialRecord) and t.quality is not None for t in records)
    (row,) = store.query(
        "SELECT accuracy, quality FROM trials WHERE job_id = ? AND trial_number = 0 "
        "AND target = 'cpu-onnxruntime'",
        [JOBS["shapes-detect"]],
    )
    assert row["accuracy"] == row["quality"] == pytest.approx(0.7349619058040222)


def test_jobs_history_and_the_gate_print_what_the_previous_release_printed(
    old_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(old_store)
    out = run(capsys, "jobs", "--json", "--db", db)
    assert json.loads(out) == reference_json("jobs.json", old_store)
    for name in JOBS:
        out = run(capsys, "history", name, "--json", "--db", db)
        assert json.loads(out) == reference_json(f"history-{name}.json", old_store)
    budget = str(old_store.parent / "b.toml")
    out = run(capsys, "gate", "--candidate", "digits-kpis", "--budget", budget, "--db", db)
    assert out == renamed((REFERENCE / "gate.txt").read_text(), old_store)


def test_the_jobs_table_lists_every_job_by_its_whole_id(
    old_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = run(capsys, "jobs", "--db", str(old_store))
    for job_id in JOBS.values():
        assert job_id in out


def test_cards_differ_only_by_the_renamed_wording(
    old_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in JOBS:
        out = run(capsys, "card", name, "--db", str(old_store))
        assert out == renamed((REFERENCE / f"card-{name}.md").read_text(), old_store)


@pytest.mark.parametrize("name", list(JOBS))
def test_pareto_and_export_json_keep_every_key_and_add_quality(
    old_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    pareto = json.loads(run(capsys, "pareto", name, "--json", "--db", str(old_store)))
    out = tmp_path / "export.json"
    run(capsys, "export", name, "--format", "json", "-o", str(out), "--db", str(old_store))
    export = json.loads(out.read_text())
    for new, reference in (
        (pareto, reference_json(f"pareto-{name}.json", old_store)),
        (export, reference_json(f"export-{name}.json.gz", old_store)),
    ):
        assert_keeps(reference, new)
        rows = trial_rows(new)
        assert rows and all(r["quality"] == r["accuracy"] for r in rows)
        assert all(r["quality_drop"] == r["accuracy_drop"] for r in rows)


def test_recommend_json_keeps_every_key(
    old_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    budget = str(old_store.parent / "b.toml")
    args = ("recommend", "digits-kpis", "--budget", budget, "--json", "--db", str(old_store))
    new = json.loads(run(capsys, *args))
    assert_keeps(reference_json("recommend.json", old_store), new)
    assert new["overall"]["quality"] == new["overall"]["accuracy"]
