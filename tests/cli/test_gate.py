"""`farm gate`: budget with a confidence bound, regressions on raw samples, refusals, outputs."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from support.factories import CONTRACT, ENV, job_record, make_store, trial

from farm.cli import main
from farm.store.db import Store

RNG = np.random.default_rng(7)


def samples(scale: float = 1.0, n: int = 400) -> np.ndarray:
    return RNG.lognormal(np.log(scale), 0.08, n)


def two_jobs(tmp_path: Path, slow: float = 1.0, **cand_kw: object) -> str:
    """Baseline job `base` and candidate job `cand` in one store, two configurations each."""
    db = tmp_path / "f.duckdb"
    rows = [trial(0), trial(1, params={"batch_size": 8, "precision": "int8"}, quality=0.965)]
    make_store(db, "base", rows, {0: samples(), 1: samples(0.5)})
    cand = [
        trial(0, **cand_kw),
        trial(1, params={"batch_size": 8, "precision": "int8"}, quality=0.965, **cand_kw),
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
    assert root.get("failures") == "0" and int(root.get("tests", "")) == 5  # 1 budget + 2 × 2


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


def test_a_quality_regression_fails_named_by_the_tasks_metric(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "f.duckdb"
    make_store(db, "base", [trial(0)], {0: samples()})
    make_store(db, "cand", [trial(0, quality=0.95)], {0: samples()})
    assert gate(str(db)) == 1
    assert "accuracy: REGRESSION: accuracy 0.9700 → 0.9500" in capsys.readouterr().out
    detector = {"quality_metric": "map", "quality": 0.70}
    make_store(db, "dbase", [trial(0, **detector)], {0: samples()})
    make_store(db, "dcand", [trial(0, **{**detector, "quality": 0.65})], {0: samples()})
    args = ["gate", "--db", str(db), "--candidate", "dcand", "--baseline", "dbase"]
    assert main([*args, "--no-confirm"]) == 1
    assert "precision=fp32: map: REGRESSION: map 0.7000 → 0.6500" in capsys.readouterr().out
    # --quality-tolerance, and --accuracy-tolerance its older name, decide alike.
    assert main([*args, "--no-confirm", "--quality-tolerance", "0.06"]) == 0
    assert main([*args, "--no-confirm", "--accuracy-tolerance", "0.06"]) == 0


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
    from farm.store.db import Store

    db = tmp_path / "f.duckdb"
    store = Store(db)
    spec = {"name": "empty", "workload": {"name": "digits"}, "targets": ["cpu-a"]}
    store.create_job("empty-1", "empty", json.dumps(spec))
    store.set_job_status("empty-1", "failed", "driver crashed")
    b = tmp_path / "b.toml"
    b.write_text("[all]\nmax_p95_ms = 5\n")
    assert main(["gate", "--db", str(db), "--candidate", "empty-1", "--budget", str(b)]) == 1
    assert main(["recommend", "empty-1", "--db", str(db), "--budget", str(b)]) == 1


# -- confirmation: fallback, --no-confirm, and which configurations are re-measured -----------


def test_without_artifacts_the_gate_falls_back_to_the_store_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Trials that name artifacts missing from the cache: the store-only rule, labelled."""
    from farm.store.db import Store

    db = two_jobs(tmp_path, slow=1.15, build_key="k0", artifact_hash="0123456789abcdef")
    md, xml = tmp_path / "s.md", tmp_path / "j.xml"
    assert gate(db, "--markdown", str(md), "--junit", str(xml)) == 1
    out = capsys.readouterr().out
    label = "latency: REGRESSION (store only, not confirmed: candidate artifact k0 (hash 0123"
    assert label in out and f"not found in {tmp_path / 'artifacts'}" in out
    assert "note: STORE-ONLY: 2 latency verdict(s) could not be confirmed" in out
    text = md.read_text()
    assert "### Latency confirmation" in text and text.count("⚠️ **store only**") == 2
    root = ET.parse(xml).getroot()
    bases = [p.get("value") for p in root.iter("property") if p.get("name") == "basis"]
    assert bases == ["store-fallback", "store-fallback"]
    assert Store(db).confirmations("cand") == []


def test_no_confirm_keeps_the_store_only_rule_and_its_messages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = two_jobs(tmp_path, slow=1.15, build_key="k0", artifact_hash="0123456789abcdef")
    assert gate(db, "--no-confirm") == 1
    out = capsys.readouterr().out
    assert "FAIL  cpu-a batch_size=1 n=0 precision=fp32: latency: REGRESSION: median" in out
    assert "store only" not in out and "STORE-ONLY" not in out
    assert gate(db, "--no-confirm", "--threshold", "0.2") == 0


def test_the_largest_stored_slowdowns_are_re_measured_up_to_the_limit() -> None:
    """Which configurations the gate re-measures (a stub confirmer records the calls): the
    store's regressions and anything that drift could turn into one, largest first."""
    from farm.gate.checks import run_gate
    from farm.gate.confirm import Confirmer
    from farm.gate.decision import NotConfirmed
    from farm.gate.options import ConfirmOptions, GateOptions
    from farm.gate.snapshot import Snapshot

    def snap(name: str, scales: list[float]) -> Snapshot:
        trials = [
            trial(i, params={"batch_size": 1, "precision": "fp32", "n": i}, job_id=name)
            for i in range(len(scales))
        ]
        samples = {("cpu-a", i): list(samples_of(s)) for i, s in enumerate(scales)}
        return Snapshot(name, job_record(name), trials, samples, {"env1": ENV})

    def samples_of(scale: float) -> np.ndarray:
        return RNG.lognormal(np.log(scale), 0.05, 300)

    calls: list[int] = []

    class Stub(Confirmer):
        def confirm(self, cand, base, stored):  # type: ignore[no-untyped-def, override]
            calls.append(cand.trial_number)
            return NotConfirmed("stub")

    base = snap("base", [1.0, 1.0, 1.0, 1.0])
    cand = snap("cand", [1.10, 1.40, 0.30, 0.98])  # +10 %, +40 %, -70 %, -2 %
    stub = Stub(cand, base, ConfirmOptions(confirm_limit=2))
    result = run_gate(cand, None, base, GateOptions(), stub)
    assert calls == [0, 1]  # the 2 largest stored slowdowns (+10 %, +40 %), in trial order
    latency = [c for c in result.checks if c.kind == "latency"]  # in trial order
    assert "REGRESSION (store only, not confirmed: stub)" in latency[1].message
    assert latency[1].basis == "store-fallback" and not latency[1].passed
    assert "over the limit of 2 re-measured configurations" in latency[3].message
    assert "ok (store only; not re-measured: the stored slowdown -" in latency[2].message
    assert "is below threshold - drift = -45%)" in latency[2].message
    assert latency[2].passed and latency[2].basis == "store"


def kpi_jobs(tmp_path: Path, base_ece: float, cand_ece: float) -> str:
    """Two jobs whose one configuration differs only in its ECE (a release KPI)."""
    db = tmp_path / "k.duckdb"
    store = Store(db)
    for job_id, ece in (("base", base_ece), ("cand", cand_ece)):
        spec = {"name": job_id, "workload": {"name": "digits"}, "targets": ["cpu-a"]}
        store.create_job(job_id, job_id, json.dumps(spec))
        metrics = {"accuracy": 0.97, "ece": ece, "robustness": 0.9}
        record = trial(0, job_id=job_id, metrics=metrics)
        store.record_trial(record, samples(), environment=("env1", ENV))
        store.set_job_status(job_id, "completed")
    return str(db)


def test_a_kpi_regression_fails_the_gate_within_its_stated_tolerance(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = kpi_jobs(tmp_path, base_ece=0.030, cand_ece=0.045)  # +0.015 > default tolerance 0.01
    xml = tmp_path / "j.xml"
    assert gate(db, "--no-confirm", "--junit", str(xml)) == 1
    out = capsys.readouterr().out
    config = "cpu-a batch_size=1 n=0 precision=fp32"
    assert f"FAIL  {config}: ece: REGRESSION: ece 0.0300 → 0.0450" in out
    assert f"PASS  {config}: robustness: ok" in out
    suites = {s.get("name"): s for s in ET.parse(xml).getroot()}
    assert suites["farm gate: kpi"].get("failures") == "1"
    # The team's own tolerance decides; an improvement is never a regression.
    assert gate(db, "--no-confirm", "--kpi-tolerance", "ece=0.02") == 0
    assert gate(kpi_jobs(tmp_path / "b", 0.045, 0.030), "--no-confirm") == 0


def test_kpis_travel_in_the_exported_baseline(tmp_path: Path) -> None:
    db = kpi_jobs(tmp_path, base_ece=0.030, cand_ece=0.045)
    out = tmp_path / "base.json"
    assert main(["export", "--db", db, "base", "--format", "json", "-o", str(out)]) == 0
    assert json.loads(out.read_text())["trials"][0]["metrics"]["ece"] == 0.03
    args = ["gate", "--db", db, "--candidate", "cand", "--baseline-file", str(out)]
    assert main([*args, "--no-confirm"]) == 1


@pytest.mark.parametrize("value", ["ece", "bogus=0.1", "ece=x", "ece=-1"])
def test_a_bad_kpi_tolerance_is_exit_2(tmp_path: Path, value: str) -> None:
    db = kpi_jobs(tmp_path, 0.03, 0.03)
    assert gate(db, "--no-confirm", "--kpi-tolerance", value) == 2


# -- one gate path: the options check themselves, and the API reaches the CLI's verdict -------


def test_confirmation_flags_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db, base = str(tmp_path / "f.duckdb"), ["--baseline", "base"]
    assert gate(db, *base, "--alpha", "0.05", "--confirm-rounds", "3") == 2
    assert "--confirm-rounds: expected at least 6" in capsys.readouterr().err
    assert gate(db, *base, "--drift", "-1") == 2
    assert "--drift: expected a fraction >= 0" in capsys.readouterr().err
    assert gate(db, *base, "--confirm-limit", "0") == 2
    assert "--confirm-limit: expected at least 1" in capsys.readouterr().err
    assert gate(db, *base, "--baseline-artifacts", str(tmp_path / "none")) == 2
    assert "--baseline-artifacts: expected an existing folder" in capsys.readouterr().err
    assert gate(db, *base, "--threshold", "-1") == 2
    assert "--threshold: expected a fraction >= 0, got -1.0" in capsys.readouterr().err
    assert gate(db, *base, "--alpha", "7") == 2
    assert "--alpha: expected a number in (0, 1), got 7.0" in capsys.readouterr().err
    assert gate(db, *base, "--confidence", "0.2") == 2
    assert "--confidence: expected a number in [0.5, 1), got 0.2" in capsys.readouterr().err
    assert not Path(db).exists()  # refused before anything was opened or written


def test_the_api_refuses_what_the_cli_refuses_naming_its_own_arguments(tmp_path: Path) -> None:
    from farm.api import open_store
    from farm.errors import UsageError
    from farm.gate.options import GateOptions, OptionError

    job = open_store(two_jobs(tmp_path)).job("cand")
    cases = [
        ({"threshold": -3}, r"^threshold: expected a fraction >= 0, got -3$"),
        ({"alpha": 7}, r"^alpha: expected a number in \(0, 1\), got 7$"),
        ({"confidence": 0.2}, r"^confidence: expected a number in \[0.5, 1\), got 0.2$"),
        ({"drift": -1}, r"^drift: expected a fraction >= 0, got -1$"),
        ({"confirm_limit": 0}, r"^confirm_limit: expected at least 1, got 0$"),
        ({"alpha": 0.05, "confirm_rounds": 3}, r"^confirm_rounds: expected at least 6 "),
        ({"kpi_tolerances": {"ece": -1}}, r"^kpi_tolerances: expected a number >= 0 for ece"),
        ({"accuracy_tolerance": -1}, r"^quality_tolerance: expected a number >= 0, got -1$"),
    ]
    for options, message in cases:
        with pytest.raises(OptionError, match=message):
            job.gate(baseline="base", **options)
    with pytest.raises(OptionError, match=r"^threshold: expected a fraction >= 0"):
        GateOptions(threshold=-3)
    with pytest.raises(UsageError, match=r"unknown option 'treshold'"):
        job.gate(baseline="base", treshold=0.1)
    with pytest.raises(UsageError, match="nothing to check: give a budget or a baseline"):
        job.gate()


def test_the_api_and_the_cli_reach_the_same_verdict_on_the_same_jobs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both confirm by default: here the artifacts are gone, so both fall back to the store,
    say so, and fail the same checks with the same words."""
    from farm.api import open_store

    db = two_jobs(tmp_path, slow=1.15, build_key="k0", artifact_hash="0123456789abcdef")
    assert gate(db, "--json") == 1
    cli = json.loads(capsys.readouterr().out)
    result = open_store(db).job("cand").gate(baseline="base")
    assert result.passed is cli["passed"] is False
    assert [(c.name, c.passed, c.basis, c.message) for c in result.checks] == [
        (c["name"], c["passed"], c["basis"], c["message"]) for c in cli["checks"]
    ]
    assert result.notes == cli["notes"]
    assert {c.basis for c in result.checks if c.kind == "latency"} == {"store-fallback"}
    exported = tmp_path / "base.json"
    assert main(["export", "base", "--db", db, "--format", "json", "-o", str(exported)]) == 0
    from_file = open_store(db).job("cand").gate(baseline=exported, confirm=False, threshold=0.2)
    assert from_file.passed and gate(db, "--no-confirm", "--threshold", "0.2") == 0


def test_a_baseline_file_exported_before_the_quality_rename_still_gates(tmp_path: Path) -> None:
    """An older farm's export has ``accuracy`` / ``accuracy_drop`` and no ``quality``."""
    db = two_jobs(tmp_path)
    exported = tmp_path / "base.json"
    assert main(["export", "base", "--db", db, "--format", "json", "-o", str(exported)]) == 0
    doc = json.loads(exported.read_text())
    for t in doc["trials"]:
        del t["quality"], t["quality_drop"]
    exported.write_text(json.dumps(doc))
    args = ["gate", "--db", db, "--candidate", "cand", "--baseline-file", str(exported)]
    assert main([*args, "--no-confirm"]) == 0
    doc["trials"][0]["accuracy"] = 0.99  # the baseline was better: a quality regression
    exported.write_text(json.dumps(doc))
    assert main([*args, "--no-confirm"]) == 1
