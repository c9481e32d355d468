"""Calibration hygiene in real jobs: a job that allows its calibration folder to repeat eval
images runs, and every job stores how its calibration set was chosen and its size, which the card
prints (the embedded demos' own held-out split included)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from support.images import calib_repeating_eval
from support.jobs import SmallJob

from farm.engine.runner import JobRunner
from farm.release.card import build_card, to_markdown
from farm.spec.job import parse_job
from farm.store.db import Store


def test_a_digits_job_records_its_held_out_calibration_split(small_job: SmallJob) -> None:
    job = Store(small_job.db).resolve_job(small_job.job_id)
    assert job.calibration == "held-out split of the embedded digits data (180 images)"


@pytest.mark.slow
def test_allow_calib_overlap_lets_the_job_run_and_the_card_says_so(tmp_path: Path) -> None:
    eval_dir, calib = calib_repeating_eval(tmp_path, repeated=2)
    torch.manual_seed(0)
    weights = tmp_path / "resnet18-2cls.pt"
    torch.save(torchvision.models.resnet18(num_classes=2).state_dict(), weights)
    raw = {
        "name": "calib-overlap",
        "targets": ["cpu-onnxruntime"],
        "workload": {
            "model": "resnet18",
            "weights": str(weights),
            "data": {
                "eval": str(eval_dir),
                "calib": str(calib),
                "allow_calib_overlap": True,
                "resize": 32,
                "crop": 32,
            },
        },
        "search": {
            "trials_per_target": 2,
            "seed": 0,
            "precision": ["fp32", "int8"],
            "batch_size": [1],
            "threads": [1],
        },
        "measurement": {"min_duration_s": 0.1, "max_duration_s": 0.4, "min_samples": 16},
    }
    store = Store(tmp_path / "farm.duckdb")
    runner = JobRunner(parse_job(raw, source="overlap.toml"), store)
    assert runner.run() == "completed"
    words = (
        f"folder {calib} (6 images); 2 of them are eval images too (`allow_calib_overlap = true`)"
    )
    assert store.resolve_job(runner.job_id).calibration == words
    assert all(t.status == "completed" for t in store.trials(runner.job_id))
    assert f"Calibration set: {words}." in to_markdown(build_card(store, runner.job_id))
