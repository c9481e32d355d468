"""`farm export`: parquet, csv and json round-trip the job's trials (json with raw samples, the
trials' artifact keys and hashes, and with --with-artifacts a copy of the artifacts)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support.factories import ROWS, make_store

from farm.cli import main
from farm.errors import UsageError
from farm.gate.snapshot import Snapshot
from farm.store.db import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = {0: np.linspace(1.0, 2.0, 50), 2: np.linspace(0.5, 0.7, 80)}
    return make_store(tmp_path / "f.duckdb", "j1", ROWS, s)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_tables_round_trip(store: Store, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"t.{fmt}"
    assert main(["export", "j1", "--db", str(store.path), "--format", fmt, "-o", str(out)]) == 0
    frame = pd.read_parquet(out) if fmt == "parquet" else pd.read_csv(out)
    stored = [t.to_row() for t in store.trials("j1")]
    assert len(frame) == len(stored) == len(ROWS)
    for col in ("trial_number", "quality", "accuracy", "latency_p95_ms", "cost_per_1k_usd"):
        np.testing.assert_allclose(
            frame[col].astype(float), [np.nan if r[col] is None else r[col] for r in stored]
        )
    assert [json.loads(p) for p in frame["params"]] == [json.loads(r["params"]) for r in stored]
    assert list(frame["status"]) == [r["status"] for r in stored]


def test_json_round_trips_trials_samples_and_environments(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "t.json"
    assert main(["export", "j1", "--db", str(store.path), "--format", "json", "-o", str(out)]) == 0
    back = Snapshot.from_file(out)
    direct = Snapshot.from_store(store, "j1")
    assert back.job_id == "j1" and back.spec == direct.spec
    assert back.samples == direct.samples and len(back.samples[(ROWS[0].target, 0)]) == 50
    assert back.environments == direct.environments
    assert [t.quality for t in back.trials] == [t.quality for t in direct.trials]
    assert [t.params for t in back.trials] == [t.params for t in direct.trials]
    doc = json.loads(out.read_text())
    assert doc["trials"][0]["accuracy"] == doc["trials"][0]["quality"] == ROWS[0].quality


def test_unknown_job_and_bad_format_exit_2(store: Store, tmp_path: Path) -> None:
    args = ["--db", str(store.path), "-o", str(tmp_path / "x")]
    assert main(["export", "nope", "--format", "csv", *args]) == 2
    with pytest.raises(SystemExit) as err:  # argparse rejects the choice
        main(["export", "j1", "--format", "xlsx", *args])
    assert err.value.code == 2


def test_json_records_artifacts_and_with_artifacts_copies_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each trial names its artifact (build key + hash); --with-artifacts copies the ones the
    cache holds, checked against the hash, and records the folder relative to the file."""
    from farm.artifact import Artifact
    from farm.store.artifacts import ArtifactCache

    art = Artifact("onnx", {"model.onnx": b"model bytes"}, {"input_shape": [3, 8, 8]})
    rows = [
        ROWS[0].replace(build_key="k0", artifact_hash=art.content_hash),
        ROWS[2].replace(build_key="k2", artifact_hash="0" * 16),  # not in the cache
    ]
    store = make_store(tmp_path / "f.duckdb", "j1", rows, {0: np.linspace(1.0, 2.0, 50)})
    ArtifactCache(tmp_path / "artifacts").save("k0", art)
    out, copies = tmp_path / "ci" / "base.json", tmp_path / "ci" / "artifacts"
    args = ["export", "j1", "--db", str(store.path), "--format", "json", "-o", str(out)]
    assert main([*args, "--with-artifacts", str(copies)]) == 0
    captured = capsys.readouterr()
    assert "copied 1 artifacts" in captured.out
    assert "cpu-a #2: artifact k2 (hash 0000000000000000) not found" in captured.err
    doc = json.loads(out.read_text())
    assert doc["artifacts"] == {"dir": "artifacts"}
    assert [(t["build_key"], t["artifact_hash"]) for t in doc["trials"]] == [
        ("k0", art.content_hash),
        ("k2", "0" * 16),
    ]
    assert ArtifactCache(copies).load("k0") == art
    assert Snapshot.from_file(out).artifacts_dir == out.parent / "artifacts"
    # Without --with-artifacts the file records no folder (the hashes are still there).
    assert main(args) == 0
    assert "artifacts" not in json.loads(out.read_text())


def test_bad_artifact_options_exit_2_and_write_nothing(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "t.csv"
    args = ["export", "j1", "--db", str(store.path), "-o", str(out)]
    assert main([*args, "--format", "csv", "--with-artifacts", str(tmp_path / "a")]) == 2
    assert "--with-artifacts: only with --format json" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "a").exists()
    a_file = tmp_path / "file"
    a_file.write_text("")
    assert main([*args, "--format", "json", "--with-artifacts", str(a_file)]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    doc = Snapshot.from_store(store, "j1").to_json()
    bad.write_text(json.dumps({**doc, "artifacts": "somewhere"}, default=str))
    with pytest.raises(UsageError, match=r"field `artifacts`: expected an object with a `dir`"):
        Snapshot.from_file(bad)
