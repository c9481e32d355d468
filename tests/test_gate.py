"""`farm gate`: budget with a confidence bound, regressions on raw samples, refusals, outputs."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from test_recommend import CONTRACT, ENV, make_store, trial

from farm.cli import main

RNG = np.random.default_rng(7)


def samples(scale: float = 1.0, n: int = 400) -> np.ndarray:
    return RNG.lognormal(np.log(scale), 0.08, n)


def two_jobs(tmp_path: Path, slow: float = 1.0, **cand_kw: object) -> str:
    """Baseline job `base` and candidate job `cand` in one store, two configurations each."""
    db = tmp_path / "f.duckdb"
    rows = [trial(0), trial(1, params={"batch_size": 8, "precision": "int8"}, accuracy=0.965)]
    make_store(db, "base", rows, {0: samples(), 1: samples(0.5)})
    cand = [
        trial(0, **cand_kw),
        trial(1, params={"batch_size": 8, "precision": "int8"}, accuracy=0.965, **cand_kw),
    ]
    env = {**ENV, "farm_commit": "def"}  # a new commit alone is not a different environment
    make_store(db, "cand", cand, {0: samples(slow), 1: samples(0.5 * slow)}, env=env)
    return str(db)


def gate(db: str, *extra: str) -> int:
    return main(["gate", "--db", db, "--candidate", "cand", "--baseline", "base", *extra])


def test_identical_distributions_pass_with_markdown_and_junit(tmp_path: Path) -> None:
    db = two_jobs(tmp_path)
    b = tmp_path / "b.toml"
    b.write_text("[all]\nmax_p95_ms = 3\n")
    md, xml = tmp_path / "s.md", tmp_path / "j.xml"
    code = gate(db, "--budget", str(b), "--markdown", str(md), "--junit", str(xml))
    assert code == 0
    assert md.read_text().startswith("## farm gate: ✅ passed")
    root = ET.parse(xml).getroot()
    assert root.get("failures") == "0" and int(root.get("tests")) == 5  # 1 budget + 2 × 2


def test_slowdown_fails_and_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = two_jobs(tmp_path, slow=1.15)
    xml = tmp_path / "j.xml"
    assert gate(db, "--junit", str(xml)) == 1
    out = capsys.readouterr().out
    assert "FAIL  cpu-a batch_size=1 n=0 precision=fp32: latency: REGRESSION" in out
    failures = ET.parse(xml).getroot().findall(".//failure")
    assert len(failures) == 2 and all(f.get("type") == "latency-failure" for f in failures)
    # The same slowdown under a 20 % threshold is not a regression.
    assert gate(db, "--threshold", "0.2") == 0


def test_accuracy_regression_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "f.duckdb"
    make_store(db, "base", [trial(0)], {0: samples()})
    make_store(db, "cand", [trial(0, accuracy=0.95)], {0: samples()})
    assert gate(str(db)) == 1
    assert "accuracy: REGRESSION: accuracy 0.9700 → 0.9500" in capsys.readouterr().out


def test_budget_uses_the_bound_not_the_point_estimate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "f.duckdb"
    # p95 point estimate 1.2 ms passes 3 ms, but 40 samples cannot bound a p95 at 95 %.
    make_store(db, "cand", [trial(0)], {0: samples(n=40)})
    b = tmp_path / "b.toml"
    b.write_text("[all]\nmax_p95_ms = 3\n")
    assert main(["gate", "--db", str(db), "--candidate", "cand", "--budget", str(b)]) == 1
    out = capsys.readouterr().out
    assert "fail on the confidence bound" in out and "too few samples" in out
    make_store(db, "cand2", [trial(0)], {0: samples(n=200)})
    assert main(["gate", "--db", str(db), "--candidate", "cand2", "--budget", str(b)]) == 0


def test_refuses_different_environment_or_contract_unless_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "f.duckdb"
    make_store(db, "base", [trial(0)], {0: samples()})
    other_env = {**ENV, "cpu_model": "other cpu"}
    make_store(db, "cand", [trial(0, env_id="env2")], {0: samples()}, env=other_env)
    assert gate(str(db)) == 2
    err = capsys.readouterr().err
    assert "environments differ (cpu_model: 'test cpu' vs 'other cpu')" in err
    assert "--allow-different-env" in err
    assert gate(str(db), "--allow-different-env") == 0

    make_store(db, "cand3", [trial(0, contract={**CONTRACT, "min_samples": 8})], {0: samples()})
    args = ["gate", "--db", str(db), "--candidate", "cand3", "--baseline", "base"]
    assert main(args) == 2
    assert "measurement contracts differ (min_samples: 64 vs 8)" in capsys.readouterr().err
    assert main([*args, "--allow-different-contract"]) == 0


def test_baseline_file_from_export_gives_the_same_verdict(tmp_path: Path) -> None:
    db = two_jobs(tmp_path, slow=1.15)
    exported = tmp_path / "base.json"
    assert main(["export", "base", "--db", db, "--format", "json", "-o", str(exported)]) == 0
    args = ["gate", "--db", db, "--candidate", "cand", "--baseline-file", str(exported)]
    assert main(args) == 1
    assert main([*args, "--threshold", "0.2"]) == 0


def test_input_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = two_jobs(tmp_path)
    assert main(["gate", "--db", db, "--candidate", "cand"]) == 2
    assert "nothing to check" in capsys.readouterr().err
    assert main(["gate", "--db", db, "--candidate", "nope", "--baseline", "base"]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "something"}))
    assert main(["gate", "--db", db, "--candidate", "cand", "--baseline-file", str(bad)]) == 2
    assert "field `format`: expected 'farm-export'" in capsys.readouterr().err
    make_store(Path(db), "other", [trial(0)], {0: samples()}, workload="cifar")
    assert main(["gate", "--db", db, "--candidate", "other", "--baseline", "base"]) == 2
    assert "different workloads" in capsys.readouterr().err


def test_nothing_to_judge_is_not_a_pass(tmp_path: Path) -> None:
    """A failed job with no trials, or a budgeted target that never produced one, fails."""
    from farm.store import Store

    db = tmp_path / "f.duckdb"
    store = Store(db)
    spec = {"name": "empty", "workload": {"name": "digits"}, "targets": ["cpu-a"]}
    store.create_job("empty-1", "empty", json.dumps(spec))
    store.set_job_status("empty-1", "failed", "driver crashed")
    b = tmp_path / "b.toml"
    b.write_text("[all]\nmax_p95_ms = 5\n")
    assert main(["gate", "--db", str(db), "--candidate", "empty-1", "--budget", str(b)]) == 1
    assert main(["recommend", "empty-1", "--db", str(db), "--budget", str(b)]) == 1
