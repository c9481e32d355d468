"""A real job keeps per-image evidence of every trial and compares each candidate with its
target's fp32 baseline image by image (real Ray, runtimes and DuckDB)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.jobs import SmallJob

from farm.evidence import compare
from farm.store.db import Store
from workloads.demos.digits import DigitsWorkload
from workloads.tasks import Classification


def test_every_trial_keeps_evidence_keyed_by_the_digits_ids(small_job: SmallJob) -> None:
    store = Store(small_job.db)
    ids = DigitsWorkload().data().eval.ids
    for r in store.trials(small_job.job_id):
        if not r.completed:
            continue
        ev = store.evidence(small_job.job_id, r.target, r.trial_number)
        assert ev is not None and ev.ids == ids
        assert ev.correct is not None and ev.correct.mean() == pytest.approx(r.quality)


def test_every_candidate_is_compared_with_its_targets_baseline(small_job: SmallJob) -> None:
    store = Store(small_job.db)
    job = small_job.job_id
    compared = store.comparisons(job)
    for r in store.trials(job):
        if not r.completed or r.is_baseline:
            assert (r.target, r.trial_number) not in compared
            continue
        (base_job, base_target, base_number), c = compared[(r.target, r.trial_number)]
        assert (base_job, base_target) == (job, r.target)
        assert c.value == pytest.approx(r.quality) and c.drop == pytest.approx(r.quality_drop)
        assert c.low <= c.delta <= c.high and (c.confidence, c.resamples) == (0.95, 1000)
        # reproduced from the stored evidence alone
        base = store.evidence(job, r.target, base_number)
        mine = store.evidence(job, r.target, r.trial_number)
        assert base is not None and mine is not None
        again = compare(Classification(), base, mine, metric="accuracy", higher_is_better=True)
        assert (again.low, again.high, again.broken, again.fixed) == (
            c.low,
            c.high,
            c.broken,
            c.fixed,
        )
        assert c.broken == int(np.sum(base.correct & ~mine.correct))  # type: ignore[operator]


def test_per_image_outcomes_read_back_in_sql(small_job: SmallJob) -> None:
    """The query docs/store.md shows: one row per image of two trials side by side."""
    store = Store(small_job.db)
    rows = store.query(
        """
        SELECT unnest(s.ids) AS image, unnest(b.correct) AS fp32, unnest(c.correct) AS cand
        FROM evidence b
        JOIN evidence c USING (job_id, target, image_set)
        JOIN image_sets s USING (image_set)
        WHERE b.job_id = ? AND b.trial_number = 0 AND c.trial_number = 1
          AND b.target = 'cpu-onnxruntime'
        """,
        [small_job.job_id],
    )
    assert len(rows) == len(DigitsWorkload().data().eval)
    assert rows[0]["image"].startswith("digits/")


def test_open_store_reads_evidence_and_comparisons(small_job: SmallJob) -> None:
    import farm

    view = farm.open_store(small_job.db)
    compared = view.comparisons(small_job.job_id)
    (target, number), (_, c) = next(iter(compared.items()))
    ev = view.evidence(small_job.job_id, target, number)
    assert ev is not None and len(ev) == c.n_images


def test_the_release_card_says_the_change_image_by_image(small_job: SmallJob) -> None:
    from farm.release.card import build_card

    store = Store(small_job.db)
    card = build_card(store, small_job.job_id)
    compared = store.comparisons(small_job.job_id)
    for t in card.targets:
        number = int(t.summary.split("#")[1].split(":")[0])
        said = "Against fp32, image by image:" in t.summary
        assert said == ((t.target, number) in compared), t.summary
        if said:
            assert " at 95 %, " in t.summary and " fixed; " in t.summary


def test_the_gate_judges_quality_image_by_image_when_both_jobs_saw_the_same_images(
    small_job: SmallJob,
) -> None:
    from farm.gate.checks import regression_checks
    from farm.gate.options import GateOptions
    from farm.gate.snapshot import Snapshot

    store = Store(small_job.db)
    snap = Snapshot.from_store(store, small_job.job_id)
    checks, _ = regression_checks(snap, snap, GateOptions())
    quality = [c for c in checks if c.kind == "accuracy"]
    assert quality and all(c.passed for c in quality)
    assert all("[paired over the same images, " in c.message for c in quality)
    assert all("0 images broken, 0 fixed; no significant change" in c.message for c in quality)
    # an export file keeps no evidence: the fixed tolerance decides, and the check says so
    snap_without = Snapshot(snap.source, snap.job, snap.trials, snap.samples)
    checks, _ = regression_checks(snap_without, snap, GateOptions())
    assert all("[fixed tolerance: " in c.message for c in checks if c.kind == "accuracy")


def test_pareto_marks_each_front_candidates_paired_change(
    small_job: SmallJob, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from farm.cli import main

    assert main(["pareto", small_job.job_id, "--db", str(small_job.db), "--json"]) == 0
    fronts = json.loads(capsys.readouterr().out)["per_target"]
    compared = Store(small_job.db).comparisons(small_job.job_id)
    for target, rows in fronts.items():
        for row in rows:
            change = row.get("quality_change")
            assert (change is not None) == ((target, row["trial_number"]) in compared)
            if change is not None:
                assert change["significant"] == (change["low"] > 0 or change["high"] < 0)
    assert main(["pareto", small_job.job_id, "--db", str(small_job.db)]) == 0
    assert "vs fp32 (paired)" in capsys.readouterr().out


def test_flips_and_mcnemar_equal_an_independent_onnxruntime_run_of_the_stored_artifacts(
    small_job: SmallJob, tmp_path: Path
) -> None:
    """Anyone can check the recorded flips: run the stored fp32 and int8 ONNX artifacts with
    ONNX Runtime on the digits eval images, count what each got right, test with scipy."""
    import onnxruntime as ort
    from scipy.stats import binomtest

    from farm.store.artifacts import ArtifactCache

    store = Store(small_job.db)
    compared = store.comparisons(small_job.job_id)
    trials = {(t.target, t.trial_number): t for t in store.trials(small_job.job_id)}
    ort_keys = sorted(k for k in compared if k[0] == "cpu-onnxruntime")
    int8 = [k for k in ort_keys if trials[k].params.get("precision") == "int8"]
    key = (int8 or ort_keys)[0]
    (_, target, base_number), c = compared[key]
    cache = ArtifactCache(small_job.db.parent / "artifacts")
    data = DigitsWorkload().data().eval
    assert data.y is not None

    def right(number: int) -> np.ndarray:
        artifact = cache.load(trials[(target, number)].build_key or "")
        assert artifact is not None and artifact.format == "onnx"
        folder = tmp_path / str(number)
        artifact.write_to(folder)
        (model,) = folder.glob("*.onnx")
        session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        top1 = [int(session.run(None, {name: x[None]})[0].argmax()) for x in data.x]
        return np.asarray(top1) == data.y

    base, cand = right(base_number), right(key[1])
    broken, fixed = int(np.sum(base & ~cand)), int(np.sum(~base & cand))
    assert (c.broken, c.fixed) == (broken, fixed)
    expected = binomtest(broken, broken + fixed, 0.5).pvalue if broken + fixed else 1.0
    assert c.p_value == pytest.approx(expected, rel=1e-9)
    assert c.value - c.baseline == pytest.approx(cand.mean() - base.mean(), abs=1e-12)


def test_per_class_accuracy_is_compared_for_every_candidate(small_job: SmallJob) -> None:
    store = Store(small_job.db)
    primary = store.comparisons(small_job.job_id)
    every = store.comparisons(small_job.job_id, kpis=True)
    for target, number in primary:
        names = {m for t, n, m in every if (t, n) == (target, number)}
        assert names == {"accuracy", "brier", "nll", *(f"acc/{d}" for d in range(10))}
