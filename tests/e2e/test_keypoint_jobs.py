"""Keypoint jobs end to end: a user's pose ONNX (raw Ultralytics head, end-to-end export) on the
square-keypoints data, real Ray, real runtimes, real DuckDB; bad sigmas and malformed keypoints
files exit 2 naming the field."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from support.keypoint_data import SIGMAS, end2end_pose_onnx, write_square_keypoints, yolo_pose_onnx
from support.predict import predictions

from farm.cli import main
from farm.engine import JobRunner
from farm.spec.job import load_job
from farm.store.db import Store
from workloads import load_workload

DATA = """[workload.data]
eval = "val/images"
eval_annotations = "val/person_keypoints.json"
"""
MEASUREMENT = """
[measurement]
min_duration_s = 0.1
max_duration_s = 0.4
min_samples = 16
"""


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("keypoints")
    write_square_keypoints(root / "val", n=14)
    yolo_pose_onnx(root / "pose.onnx")
    end2end_pose_onnx(root / "pose_e2e.onnx")
    return root


def _job(root: Path, name: str, workload: str, targets: str, extra: str = "") -> Path:
    path = root / f"{name}.toml"
    path.write_text(
        f'name = "{name}"\ntargets = {targets}\n{workload}\n'
        "[search]\ntrials_per_target = 3\nseed = 2\n"
        'precision = ["fp32", "int8"]\nbatch_size = [1, 2]\n'
        f"{extra}{MEASUREMENT}"
    )
    return path


def _workload(model: str, outputs: str, extra: str = "") -> str:
    return (
        f'[workload]\nonnx = "{model}"\ntask = "keypoints"\noutputs = "{outputs}"\n'
        f"oks_sigmas = {SIGMAS}\n{extra}{DATA}"
    )


def _pycocotools_kp_map(wl, root: Path, preds) -> float:  # type: ignore[no-untyped-def]
    """pycocotools' OKS AP@[.5:.95] of ``preds`` against the job's keypoints file itself."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    split = wl.data().eval
    coco = COCO(str(root / "val" / "person_keypoints.json"))
    ids = [info["image_id"] for info in split.info]
    cats = sorted(coco.getCatIds())  # the head's labels are indices (`class_ids = "index"`)
    dets = [
        {
            "image_id": image_id,
            "category_id": cats[int(label)],
            "keypoints": [float(v) for v in kp.reshape(-1)],
            "score": float(s),
        }
        for image_id, p in zip(ids, preds, strict=True)
        for kp, s, label in zip(p.keypoints, p.scores, p.labels, strict=True)
    ]
    ev = COCOeval(coco, coco.loadRes(copy.deepcopy(dets)), "keypoints")
    ev.params.kpt_oks_sigmas = np.asarray(SIGMAS)
    ev.params.imgIds = ids  # the calibration images carved from eval are not scored
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return float(ev.stats[0])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "outputs"), [("pose.onnx", "yolo"), ("pose_e2e.onnx", "end2end")]
)
def test_a_user_pose_onnx_runs_as_a_job_judged_by_kp_map(
    root: Path, model: str, outputs: str
) -> None:
    job = _job(
        root,
        f"kp-{outputs}",
        _workload(model, outputs),
        '["cpu-onnxruntime", "cpu-openvino"]',
        "[constraints]\nmax_quality_drop = 0.5\n",
    )
    store = Store(root / f"{outputs}.duckdb")
    runner = JobRunner(load_job(job), store)
    assert runner.run() == "completed"
    trials = store.trials(runner.job_id)
    assert len(trials) == 6 and all(t.status == "completed" for t in trials)
    assert {t.quality_metric for t in trials} == {"kp_map"}
    assert {t.precision for t in trials} >= {"fp32", "int8"}
    for t in trials:
        assert {"kp_map", "kp_map50", "kp_map75", "kp_ar", "kp_map_vs_fp32"} <= set(t.metrics)
        assert t.quality == t.metrics["kp_map"]
        assert t.params["oks_sigmas"] == SIGMAS
    wl = load_workload(load_job(job).workload, root)
    ref = predictions(wl.source_artifact(root), wl.data().eval, wl.task, wl.fixed_batch or 1)
    base = next(t for t in trials if t.target == "cpu-onnxruntime" and t.is_baseline)
    assert base.metrics["kp_map"] == pytest.approx(_pycocotools_kp_map(wl, root, ref), abs=1e-9)
    assert base.metrics["kp_map"] > 0.3


def _bad_keypoints(doc: dict) -> None:
    doc["annotations"][0]["keypoints"][2] = 3


@pytest.mark.parametrize(
    ("workload", "message"),
    [
        (  # sigmas for 4 keypoints, a model with 5 (its kpt_shape metadata)
            _workload("pose.onnx", "yolo").replace(
                f"oks_sigmas = {SIGMAS}", "oks_sigmas = [0.1, 0.1, 0.1, 0.1]"
            ),
            "workload.oks_sigmas",
        ),
        (  # no sigmas for a 5-keypoint model
            _workload("pose.onnx", "yolo").replace(f"oks_sigmas = {SIGMAS}\n", ""),
            "workload.oks_sigmas",
        ),
        (  # no sigmas for the 5 keypoints of an end-to-end model without metadata about them
            _workload("pose_e2e.onnx", "end2end").replace(f"oks_sigmas = {SIGMAS}\n", ""),
            "workload.oks_sigmas",
        ),
        (  # a visibility of 3 in the keypoints file
            _workload("pose.onnx", "yolo").replace("val/person_keypoints.json", "bad.json"),
            "annotations[0].keypoints[2]",
        ),
    ],
)
def test_bad_keypoint_jobs_exit_2_naming_the_field_and_write_nothing(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], workload: str, message: str
) -> None:
    for name in ("pose.onnx", "pose_e2e.onnx"):
        shutil.copy(root / name, tmp_path / name)
    shutil.copytree(root / "val", tmp_path / "val")
    doc = json.loads((root / "val" / "person_keypoints.json").read_text())
    _bad_keypoints(doc)
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    job = _job(tmp_path, "bad", workload, '["cpu-onnxruntime"]')
    db = tmp_path / "farm.duckdb"
    assert main(["run", str(job), "--db", str(db)]) == 2
    assert message in capsys.readouterr().err
    assert not db.exists() or not Store(db).jobs()


ULTRALYTICS = Path(__file__).resolve().parents[1] / "data" / "ultralytics_pose"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "extra"), [("pose17", ""), ("pose5x2", "oks_sigmas = [0.1, 0.1, 0.1, 0.1, 0.1]")]
)
def test_a_real_ultralytics_pose_export_runs_a_fidelity_job_without_labels(
    tmp_path: Path, model: str, extra: str
) -> None:
    """A tiny yolov8-pose exported by Ultralytics (dynamic batch and size, K and D in its
    metadata), no data: seeded synthetic inputs, fp32 and int8, judged by kp_map_vs_fp32."""
    workload = (
        f'[workload]\nonnx = "{ULTRALYTICS / model}.onnx"\ntask = "keypoints"\n'
        f'outputs = "yolo"\ninput_size = [128, 160]\n{extra}\n'
    )
    job = tmp_path / "job.toml"
    job.write_text(
        f'name = "ul-{model}"\ntargets = ["cpu-onnxruntime"]\n{workload}'
        '[search]\ntrials_per_target = 2\nseed = 0\nprecision = ["fp32", "int8"]\n'
        f"batch_size = [1]\n{MEASUREMENT}"
    )
    store = Store(tmp_path / "farm.duckdb")
    runner = JobRunner(load_job(job), store)
    assert runner.run() == "completed"
    trials = store.trials(runner.job_id)
    assert {t.precision for t in trials} == {"fp32", "int8"}
    assert all(t.status == "completed" for t in trials)
    assert {t.quality_metric for t in trials} == {"kp_map_vs_fp32"}
    base = next(t for t in trials if t.is_baseline)
    assert base.metrics["kp_map_vs_fp32"] == 1.0
    assert all(0.0 <= t.metrics["kp_map_vs_fp32"] <= 1.0 for t in trials)
