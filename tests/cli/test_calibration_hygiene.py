"""Calibration hygiene on the command line: `farm run` refuses a job file whose calibration
folder repeats eval images (exit 2, nothing stored), and the card says how the calibration set
of a job was chosen and how large it is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.images import calib_repeating_eval
from support.jobs import run_refused

from farm.release.card import build_card, to_html, to_markdown
from farm.store.db import Store


def test_farm_run_refuses_a_job_file_whose_calib_folder_repeats_eval_images(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    eval_dir, calib = calib_repeating_eval(tmp_path, repeated=1)
    job = tmp_path / "overlap.toml"
    job.write_text(
        'name = "overlap"\ntargets = ["cpu-onnxruntime"]\n[workload]\nmodel = "resnet18"\n'
        f"[workload.data]\neval = {json.dumps(str(eval_dir))}\n"
        f"calib = {json.dumps(str(calib))}\n"
    )
    err = run_refused(job, capsys)  # exit 2, no store written
    assert f"{job}: field `workload.data.calib`" in err
    assert "class_0/copy-0.png = eval class_0/0.png" in err
    assert "Traceback" not in err


def test_the_store_keeps_the_calibration_words_and_the_card_prints_them(tmp_path: Path) -> None:
    store = Store(tmp_path / "farm.duckdb")
    spec = {"name": "calib", "workload": {"name": "digits"}, "targets": ["cpu-a"]}
    words = "held-out split of the embedded digits data (180 images)"
    store.create_job("job1", "calib", json.dumps(spec), calibration=words)
    assert store.resolve_job("job1").calibration == words
    card = build_card(store, "job1")
    assert f"Calibration set: {words}." in to_markdown(card)
    assert f"Calibration set: {words}." in to_html(card)
