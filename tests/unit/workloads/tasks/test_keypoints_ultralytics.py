"""The keypoints task's ``"yolo"`` decoding against real Ultralytics pose exports: two tiny
yolov8-pose ONNX files (17 keypoints with visibility, one class; 5 keypoints without, two
classes) and what Ultralytics' own predictor made of each image's raw head, recorded by
``scripts/ultralytics_pose_fixtures.py`` (Ultralytics is not in the farm's venv: the recording is
the oracle). The farm reads the model from the file as a job would (K and D from its metadata),
letterboxes the image itself, decodes the same raw head and must find the same poses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from workloads import load_workload
from workloads.datasets.dense import LETTERBOX_PAD, Preprocess
from workloads.tasks.keypoints import Keypoints

DATA = Path(__file__).resolve().parents[3] / "data" / "ultralytics_pose"
#: model -> (kpt_shape, classes, the job's extra fields)
MODELS = {
    "pose17": ((17, 3), 1, {}),
    "pose5x2": ((5, 2), 2, {"oks_sigmas": [0.1] * 5}),
}


def _fixture(name: str) -> dict[str, Any]:
    with np.load(DATA / f"{name}.npz") as z:
        return {key: z[key] for key in z.files}


def _task(name: str, conf: float, iou: float, max_det: int) -> Keypoints:
    """The task as a job on the ONNX file configures it (metadata read from the file)."""
    section = {
        "onnx": f"{name}.onnx",
        "task": "keypoints",
        "outputs": "yolo",
        "input_size": [128, 160],
        "score_threshold": conf,
        "nms_iou": iou,
        "max_detections": max_det,
        **MODELS[name][2],
    }
    task = load_workload(section, DATA, source="job.toml").task
    assert isinstance(task, Keypoints)
    return task


def _letterbox(fx: dict[str, Any], i: int) -> dict[str, Any]:
    """The farm's own preprocessing of image ``i``: its scale, padding and original size."""
    from PIL import Image

    pre = Preprocess(tuple(int(v) for v in fx["input_hw"]), True, (0, 0, 0), (1, 1, 1))
    with Image.open(DATA / "images" / str(fx[f"img{i}_file"])) as image:
        _, info = pre(image)
    return info


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_model_reads_its_keypoint_shape_from_the_exports_metadata(name: str) -> None:
    task = _task(name, 0.001, 0.7, 100)
    fx = _fixture(name)
    (k, d), classes, _ = MODELS[name]
    assert task.head_shape() == (k, d)
    assert fx["img0_raw"].shape[0] == 4 + classes + k * d


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("setting", [0, 1])
def test_decoded_poses_equal_ultralytics_predictor_on_the_same_raw_head(
    name: str, setting: int
) -> None:
    """Same poses, same order: boxes, scores, classes, keypoints in original image pixels, after
    the score threshold, class-wise NMS and max_det (setting 0: the task's defaults, max_det
    binds; setting 1: conf 0.25, iou 0.5, NMS binds)."""
    fx = _fixture(name)
    conf, iou, max_det = fx["settings"][setting]
    task = _task(name, float(conf), float(iou), int(max_det))
    _, d = task.head_shape()
    n_images = sum(1 for key in fx if key.endswith("_raw"))
    infos = [_letterbox(fx, i) for i in range(n_images)]
    heads = np.stack([fx[f"img{i}_raw"] for i in range(n_images)])
    decoded = task.decode([heads], infos)  # one batch, as a dynamic-batch export runs it
    counts = []
    for i, got in enumerate(decoded):
        want = {
            k: fx[f"s{setting}_img{i}_{k}"] for k in ("boxes", "scores", "classes", "keypoints")
        }
        assert len(got) == len(want["scores"]) > 0, f"image {i}"
        np.testing.assert_array_equal(got.scores, want["scores"])
        np.testing.assert_array_equal(got.labels, want["classes"])
        np.testing.assert_allclose(got.boxes, want["boxes"], rtol=0, atol=1e-3)
        np.testing.assert_allclose(got.keypoints[..., :d], want["keypoints"], rtol=0, atol=1e-3)
        if d == 2:  # no visibility in the head: every keypoint counts as visible
            assert (got.keypoints[..., 2] == 1).all()
        counts.append(len(got))
    if setting == 0:
        assert max(counts) == int(max_det)  # the cut at max_det is exercised
    else:
        assert max(counts) < int(max_det)  # the score threshold and NMS decide
    if name == "pose5x2":
        assert {0, 1} <= {int(c) for i in range(n_images) for c in decoded[i].labels}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_letterbox_pads_where_ultralytics_pads(name: str) -> None:
    """The farm's padding (rows and columns of grey 114) is where Ultralytics' input has it, so
    mapping back through the farm's letterbox is mapping back through Ultralytics'."""
    fx = _fixture(name)
    h, w = (int(v) for v in fx["input_hw"])
    for i in range(sum(1 for key in fx if key.endswith("_raw"))):
        info = _letterbox(fx, i)
        top, left = (int(v) for v in info["pad"])
        sy, sx = info["scale"]
        h0, w0 = info["orig_hw"]
        nh, nw = round(h0 * sy), round(w0 * sx)
        grey = (fx[f"img{i}_input"] == LETTERBOX_PAD).all(axis=2)
        pad_rows = np.flatnonzero(grey.all(axis=1))
        pad_cols = np.flatnonzero(grey.all(axis=0))
        want_rows = [*range(top), *range(top + nh, h)]
        want_cols = [*range(left), *range(left + nw, w)]
        assert pad_rows.tolist() == want_rows and pad_cols.tolist() == want_cols, f"image {i}"
        assert want_rows or want_cols  # every image is padded along one axis


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_committed_export_gives_the_recorded_raw_heads(name: str) -> None:
    """The ONNX file is the one the fixture was recorded from: ONNX Runtime on Ultralytics'
    inputs, as one dynamic batch, gives the recorded heads."""
    import onnxruntime as ort

    fx = _fixture(name)
    n_images = sum(1 for key in fx if key.endswith("_raw"))
    x = np.stack([fx[f"img{i}_input"] for i in range(n_images)]).transpose(0, 3, 1, 2)
    session = ort.InferenceSession(str(DATA / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"images": x.astype(np.float32) / 255.0})
    want = np.stack([fx[f"img{i}_raw"] for i in range(n_images)])
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-3)
