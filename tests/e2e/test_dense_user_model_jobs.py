"""Detection and segmentation jobs end to end: real Ray, real runtimes, real DuckDB."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import numpy as np
import pytest
from support.dense_data import boxes_scores_labels_onnx, segmenter_onnx, write_squares, yolo_onnx
from support.predict import predictions

from farm.cli import main
from farm.engine import JobRunner
from farm.spec.job import load_job
from farm.store.db import Store
from workloads import load_workload

MEASUREMENT = """
[measurement]
min_duration_s = 0.1
max_duration_s = 0.4
min_samples = 16
"""


def _job(root: Path, name: str, workload: str, targets: str, extra: str = "") -> Path:
    path = root / f"{name}.toml"
    path.write_text(
        f'name = "{name}"\ntargets = {targets}\n{workload}\n'
        "[search]\ntrials_per_target = 3\nseed = 2\n"
        'precision = ["fp32", "int8"]\nbatch_size = [1, 2]\n'
        f"{extra}{MEASUREMENT}"
    )
    return path


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dense")
    write_squares(root / "val", n=14)
    yolo_onnx(root / "yolo.onnx")
    boxes_scores_labels_onnx(root / "bsl.onnx")
    segmenter_onnx(root / "seg.onnx")
    return root


DET_DATA = """[workload.data]
eval = "val/images"
eval_annotations = "val/instances.json"
"""


def _run(job: Path, db: Path) -> tuple[Store, str]:
    store = Store(db)
    runner = JobRunner(load_job(job), store)
    assert runner.run() == "completed"
    return store, runner.job_id


def _pycocotools_map(wl, root: Path, predictions) -> float:  # type: ignore[no-untyped-def]
    """pycocotools' AP@[.5:.95] of ``predictions`` against the job's COCO file itself."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    split = wl.data().eval
    coco = COCO(str(root / "val" / "instances.json"))
    ids = [info["image_id"] for info in split.info]
    # a YOLO head's labels are indices into the sorted categories (`class_ids = "index"`)
    cats = sorted(coco.getCatIds())
    category = (lambda i: cats[i]) if wl.task.class_ids == "index" else (lambda i: i)
    dets = [
        {
            "image_id": image_id,
            "category_id": int(category(int(label))),
            "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
            "score": float(s),
        }
        for image_id, d in zip(ids, predictions, strict=True)
        for b, s, label in zip(d.boxes, d.scores, d.labels, strict=True)
    ]
    ev = COCOeval(coco, coco.loadRes(copy.deepcopy(dets)), "bbox")
    ev.params.imgIds = ids  # the calibration images carved from eval are not scored
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return float(ev.stats[0])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "outputs"), [("yolo.onnx", "yolo"), ("bsl.onnx", "boxes_scores_labels")]
)
def test_a_user_onnx_detector_runs_as_a_job(root: Path, model: str, outputs: str) -> None:
    workload = (
        f'[workload]\nonnx = "{model}"\ntask = "detection"\noutputs = "{outputs}"\n'
        + ('class_ids = "category_id"\n' if outputs == "yolo" else "")
        + DET_DATA
    )
    # a YOLO head's class index 0..1 ↔ category id 1..2: class_ids decides; here the fixture's
    # head predicts indices, so "category_id" would be wrong for yolo — use the index default
    workload = workload.replace('class_ids = "category_id"\n', "")
    job = _job(
        root,
        f"det-{outputs}",
        workload,
        '["cpu-onnxruntime", "cpu-openvino"]',
        "[constraints]\nmax_quality_drop = 0.5\n",
    )
    store, job_id = _run(job, root / f"{outputs}.duckdb")
    trials = store.trials(job_id)
    assert len(trials) == 6 and all(t.status == "completed" for t in trials)
    assert {t.quality_metric for t in trials} == {"map"}
    assert any(t.precision == "int8" for t in trials)
    for t in trials:
        assert {"map", "map50", "map_vs_fp32", "ap/red", "ap/green"} <= set(t.metrics)
        assert t.quality == t.metrics["map"]
        assert t.contract["measure_postprocess"] is True
        assert sum("score_threshold" in k for k in t.params) == 1
    # the farm's mAP of the ONNX Runtime baseline = pycocotools on the same predictions
    wl = load_workload(load_job(job).workload, root)
    ref = predictions(wl.source_artifact(root), wl.data().eval, wl.task, wl.fixed_batch or 1)
    base = next(t for t in trials if t.target == "cpu-onnxruntime" and t.is_baseline)
    assert base.metrics["map"] == pytest.approx(_pycocotools_map(wl, root, ref), abs=1e-6)
    assert base.metrics["map"] > 0.05
    jobs = store.jobs()
    assert jobs[0].job_id == job_id


@pytest.mark.slow
def test_a_user_onnx_segmenter_runs_as_a_job(root: Path) -> None:
    from sklearn.metrics import confusion_matrix

    workload = (
        '[workload]\nonnx = "seg.onnx"\ntask = "segmentation"\n'
        'class_names = ["background", "red", "green"]\n[workload.data]\neval = "val/images"\n'
        'eval_masks = "val/masks"\nmean = [0.0, 0.0, 0.0]\nstd = [1.0, 1.0, 1.0]\n'
    )
    job = _job(
        root,
        "seg",
        workload,
        '["cpu-onnxruntime", "cpu-openvino"]',
        "[constraints]\nmax_quality_drop = 0.2\n",
    )
    store, job_id = _run(job, root / "seg.duckdb")
    trials = store.trials(job_id)
    assert len(trials) == 6 and all(t.status == "completed" for t in trials)
    assert {t.quality_metric for t in trials} == {"miou"}
    for t in trials:
        assert {"miou", "pixel_accuracy", "iou/red", "iou/green", "miou_vs_fp32"} <= set(t.metrics)
    wl = load_workload(load_job(job).workload, root)
    ref = predictions(wl.source_artifact(root), wl.data().eval, wl.task, wl.fixed_batch or 1)
    truth = np.concatenate([m.ravel() for m in wl.data().eval.truth])
    pred = np.concatenate([m.ravel() for m in ref])
    cm = confusion_matrix(truth, pred, labels=[0, 1, 2])
    miou = np.mean(np.diag(cm) / (cm.sum(0) + cm.sum(1) - np.diag(cm)))
    base = next(t for t in trials if t.target == "cpu-onnxruntime" and t.is_baseline)
    assert base.metrics["miou"] == pytest.approx(miou, abs=1e-9)


@pytest.mark.parametrize(
    ("workload", "message"),
    [
        (  # outputs that are not the declared convention
            '[workload]\nonnx = "seg.onnx"\ntask = "detection"\noutputs = "yolo"\n' + DET_DATA,
            '`outputs = "yolo"` expects one output',
        ),
        (  # a category id not in the JSON
            '[workload]\nonnx = "yolo.onnx"\ntask = "detection"\noutputs = "yolo"\n'
            '[workload.data]\neval = "val/images"\neval_annotations = "bad.json"\n',
            "annotations[0].category_id",
        ),
    ],
)
def test_bad_dense_jobs_exit_2_and_write_nothing(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], workload: str, message: str
) -> None:
    import json

    for name in ("seg.onnx", "yolo.onnx"):
        shutil.copy(root / name, tmp_path / name)
    shutil.copytree(root / "val", tmp_path / "val")
    doc = json.loads((root / "val" / "instances.json").read_text())
    doc["annotations"][0]["category_id"] = 42
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    job = _job(tmp_path, "bad", workload, '["cpu-onnxruntime"]')
    db = tmp_path / "farm.duckdb"
    assert main(["run", str(job), "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert not db.exists() or not Store(db).jobs()
