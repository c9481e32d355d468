"""`farm export`: parquet, csv and json round-trip the job's trials (json with raw samples)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_recommend import ROWS, make_store

from farm.cli import main
from farm.gate import Snapshot
from farm.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = {0: np.linspace(1.0, 2.0, 50), 2: np.linspace(0.5, 0.7, 80)}
    return make_store(tmp_path / "f.duckdb", "j1", ROWS, s)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_tables_round_trip(store: Store, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"t.{fmt}"
    assert main(["export", "j1", "--db", str(store.path), "--format", fmt, "-o", str(out)]) == 0
    frame = pd.read_parquet(out) if fmt == "parquet" else pd.read_csv(out)
    stored = store.trials("j1")
    assert len(frame) == len(stored) == len(ROWS)
    for col in ("trial_number", "accuracy", "latency_p95_ms", "cost_per_1k_usd"):
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
    assert back.samples == direct.samples and len(back.samples[(ROWS[0]["target"], 0)]) == 50
    assert back.environments == direct.environments
    assert [t["accuracy"] for t in back.trials] == [t["accuracy"] for t in direct.trials]
    assert [t["params"] for t in back.trials] == [json.loads(t["params"]) for t in direct.trials]


def test_unknown_job_and_bad_format_exit_2(store: Store, tmp_path: Path) -> None:
    args = ["--db", str(store.path), "-o", str(tmp_path / "x")]
    assert main(["export", "nope", "--format", "csv", *args]) == 2
    with pytest.raises(SystemExit) as err:  # argparse rejects the choice
        main(["export", "j1", "--format", "xlsx", *args])
    assert err.value.code == 2
