"""The embedded OCR demos, run as a user runs them (`farm run` on the shipped job files): text
lines and pages rendered on first use, PP-OCRv4's models from the rapidocr-onnxruntime wheel,
every trial judged by CER (lower is better) or hmean on the target runtime, int8 on both CPU
targets. The farm's fp32 CER is checked against decoding the model's outputs ourselves."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from farm.cli import main
from farm.errors import SpecError
from farm.store.db import Store

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _wheel() -> None:
    from workloads.demos.ocr import model_file

    try:
        model_file("ch_PP-OCRv4_rec_infer.onnx")
    except SpecError:
        pytest.skip("the rapidocr-onnxruntime wheel is not installed (make installs it)")


def own_cer(results: Path) -> float:
    """CER of the wheel's recogniser on the demo's eval lines, decoded here: ONNX Runtime,
    argmax per column, repeats merged, blank 0 dropped, dictionary from the metadata, space last,
    surrounding spaces stripped, edit distances from rapidfuzz."""
    import onnxruntime as ort
    from rapidfuzz.distance import Levenshtein

    from workloads import load_workload

    wl = load_workload({"name": "ocr-lines"}, results, results, source="test")
    ev = wl.data().eval
    session = ort.InferenceSession(str(wl.path))
    table = ["", *session.get_modelmeta().custom_metadata_map["character"].splitlines(), " "]
    edits = total = 0
    for start in range(0, len(ev), 16):
        (probs,) = session.run(None, {"x": ev.x[start : start + 16]})
        for row, ref in zip(probs.argmax(axis=2), ev.truth[start : start + 16], strict=True):
            keep = np.r_[True, row[1:] != row[:-1]] & (row != 0)
            text = "".join(table[k] for k in row[keep]).strip()
            edits += Levenshtein.distance(text, ref.strip())
            total += len(ref.strip())
    return edits / total


@pytest.mark.slow
def test_the_ocr_lines_demo_is_judged_by_cer_on_both_targets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "farm.duckdb"
    assert main(["run", str(ROOT / "farm" / "jobs" / "ocr_lines.toml"), "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"┃\s+cer\s+┃", out) and "Across targets: cer (min)" in out
    store = Store(db)
    [job] = store.jobs()
    trials = store.trials(job.job_id)
    assert all(t.status == "completed" for t in trials), trials
    assert all(t.quality_higher_is_better is False and t.quality_metric == "cer" for t in trials)
    for t in trials:
        assert {"cer", "wer", "exact_match", "one_minus_ned", "cer_vs_fp32"} <= set(t.metrics)
    baselines = [t for t in trials if t.is_baseline]
    assert len(baselines) == 2 and all(t.metrics["cer"] <= 0.01 for t in baselines)
    ort_fp32 = next(t for t in baselines if t.target == "cpu-onnxruntime")
    assert ort_fp32.metrics["cer"] == pytest.approx(own_cer(tmp_path), abs=1e-12)
    for target in ("cpu-onnxruntime", "cpu-openvino"):
        int8 = [t for t in trials if t.target == target and t.params["precision"] == "int8"]
        assert int8 and all(t.metrics["cer"] < 0.02 for t in int8), int8


@pytest.mark.slow
def test_the_ocr_pages_demo_is_judged_by_hmean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "farm.duckdb"
    job = ROOT / "farm" / "jobs" / "ocr_pages.toml"
    assert main(["run", str(job), "--db", str(db), "--trials", "2"]) == 0
    assert "Across targets: hmean (max)" in capsys.readouterr().out
    store = Store(db)
    trials = store.trials(store.jobs()[0].job_id)
    assert all(t.status == "completed" for t in trials), trials
    assert {"hmean", "precision", "recall", "hmean_vs_fp32"} <= set(trials[0].metrics)
    assert all(t.metrics["hmean"] >= 0.9 for t in trials if t.is_baseline)
