"""The embedded detection, segmentation and keypoints demos, run as a user runs them (`farm
run` on the shipped job files): data written, model trained on first use, every trial scored by
the task's metrics on the target runtime, fronts by the task's primary metric."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from farm.cli import main
from farm.store.db import Store

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("job", "primary", "others"),
    [
        ("shapes_detect.toml", "map", ("map50", "map75", "ar100", "ap/circle")),
        ("shapes_segment.toml", "miou", ("pixel_accuracy", "iou/background")),
        ("shapes_keypoints.toml", "kp_map", ("kp_map50", "kp_map75", "kp_ar", "kp_map_vs_fp32")),
    ],
)
def test_a_shapes_demo_runs_and_scores_every_trial_by_its_task(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    job: str,
    primary: str,
    others: tuple[str, ...],
) -> None:
    db = tmp_path / "farm.duckdb"
    assert main(["run", str(ROOT / "farm" / "jobs" / job), "--db", str(db), "--trials", "3"]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"┃\s+{primary}\s+┃", out), out  # the fronts' quality column names the metric
    assert f"Across targets: {primary} (max)" in out
    store = Store(db)
    [row] = store.jobs()
    trials = store.trials(row.job_id)
    assert {t.target for t in trials} == {"cpu-onnxruntime", "cpu-openvino"}
    assert len(trials) == 6 and all(t.status == "completed" for t in trials), trials
    for t in trials:
        assert {primary, *others} <= set(t.metrics), t.metrics.keys()
        assert t.quality == pytest.approx(t.metrics[primary])  # the front's quality
    baselines = [t for t in trials if t.is_baseline]
    # Good enough that quantization effects show (map50 / miou / kp_map50 >= 0.7 at fp32).
    quality = {"map": "map50", "miou": "miou", "kp_map": "kp_map50"}[primary]
    assert all(t.metrics[quality] >= 0.7 for t in baselines), baselines
    assert any(t.params["precision"] != "fp32" for t in trials)
    assert (tmp_path / "datasets").is_dir() and list((tmp_path / "models").rglob("*.pt"))
