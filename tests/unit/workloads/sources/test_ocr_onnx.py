"""A user's CTC recogniser (``task = "text_recognition"``) over text lines and a PaddleOCR label
file: PaddleOCR's preprocessing, stable ids, the farm's CER equal to decoding the model's
outputs ourselves, a batch written as ``-1`` (Paddle2ONNX) taken as dynamic, and bad label files
refused before anything runs (exit 2, the file and the line named, nothing written)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support.jobs import run_refused
from support.ocr_data import ctc_onnx, write_lines
from support.predict import predictions

from workloads import load_workload

CHARSET = "abcdefgh0123"
TEXTS = ["abc", "bad cafe 12", "h", "dead 3", "fade", "g0g", "cab", "ebb 21"]


@pytest.fixture
def user_dir(tmp_path: Path) -> Path:
    ctc_onnx(tmp_path / "rec.onnx", CHARSET)
    write_lines(tmp_path, TEXTS)
    return tmp_path


def _workload(root: Path, **data: Any) -> Any:
    table = {
        "onnx": "rec.onnx",
        "task": "text_recognition",
        "input_size": [8, 48],
        "data": {"eval": "lines", "eval_labels": "rec_gt.txt", **data},
    }
    return load_workload(table, root, source="job.toml")


def test_lines_are_read_with_paddleocr_preprocessing_and_stable_ids(user_dir: Path) -> None:
    import cv2
    from PIL import Image

    wl = _workload(user_dir)
    data = wl.data()
    ev = data.eval
    assert len(ev) + len(data.calib) == len(TEXTS)  # calibration carved from the eval lines
    assert ev.x.shape[1:] == (3, 8, 48)
    assert all(i.startswith("line_") for i in ev.ids)
    by_id = dict(zip([f"line_{i:03d}.png" for i in range(len(TEXTS))], TEXTS, strict=True))
    assert list(ev.truth) == [by_id[i] for i in ev.ids]
    # PaddleOCR's resize_norm_img: height 8, width by aspect ratio capped at 48, (x/255-0.5)/0.5,
    # right-padded with 0
    image = np.asarray(Image.open(user_dir / "lines" / ev.ids[0]).convert("RGB"))
    h, w = image.shape[:2]
    width = min(48, math.ceil(8 * (w / h)))  # resize_norm_img: ceil(imgH * ratio)
    want = cv2.resize(image, (width, 8)).astype(np.float32).transpose(2, 0, 1) / 255
    np.testing.assert_allclose(ev.x[0, :, :, :width], (want - 0.5) / 0.5, atol=1e-6)
    assert not ev.x[0, :, :, width:].any()


def test_the_farms_cer_equals_our_own_greedy_decoding(user_dir: Path, tmp_path: Path) -> None:
    import onnxruntime as ort
    from rapidfuzz.distance import Levenshtein

    wl = _workload(user_dir)
    ev = wl.data().eval
    assert wl.facts.input_dims == ("?", 3, 8, "W")  # Paddle2ONNX's -1 batch is dynamic
    preds = predictions(wl.source_artifact(tmp_path), ev, wl.task, batch=3)
    got = wl.task.quality(preds, ev, None, wl.data())
    session = ort.InferenceSession(str(user_dir / "rec.onnx"))
    (probs,) = session.run(None, {"x": ev.x})
    table = ["", *CHARSET, " "]
    texts = []
    for row in probs.argmax(axis=2):
        chars = [table[k] for j, k in enumerate(row) if k != 0 and (j == 0 or row[j - 1] != k)]
        texts.append("".join(chars).strip())
    edits = sum(Levenshtein.distance(h, r.strip()) for h, r in zip(texts, ev.truth, strict=True))
    assert got["cer"] == pytest.approx(edits / sum(len(r.strip()) for r in ev.truth), abs=1e-12)
    assert [p.text.strip() for p in preds] == texts


def test_a_calib_folder_gives_the_calibration_lines(user_dir: Path) -> None:
    # lines the eval set does not have (a calib folder repeating eval images is refused)
    write_lines(user_dir / "more", ["ace 0", "hedge 1"], folder="calib")
    wl = _workload(user_dir, calib="more/calib")
    data = wl.data()
    assert len(data.eval) == len(TEXTS) and len(data.calib) == 2
    assert data.calib.ids == ("line_000.png", "line_001.png")


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ("lines/line_000.png\tabc\nlines/line_001.png no tab\n", "line 2"),
        ("lines/line_000.png\tabc\nlines/nowhere.png\tx\n", "line 2"),
    ],
)
def test_a_bad_label_file_exits_2_naming_the_file_and_the_line(
    user_dir: Path, capsys: pytest.CaptureFixture[str], labels: str, message: str
) -> None:
    (user_dir / "rec_gt.txt").write_text(labels, encoding="utf-8")
    job = user_dir / "job.toml"
    job.write_text(
        'name = "ocr"\ntargets = ["cpu-onnxruntime"]\n[workload]\nonnx = "rec.onnx"\n'
        'task = "text_recognition"\ninput_size = [8, 48]\n'
        '[workload.data]\neval = "lines"\neval_labels = "rec_gt.txt"\n'
        '[search]\ntrials_per_target = 1\nprecision = ["fp32"]\nbatch_size = [1]\n'
    )
    err = run_refused(job, capsys)
    assert "rec_gt.txt" in err and message in err and "eval_labels" in err


def test_labels_are_only_for_the_ocr_tasks(user_dir: Path) -> None:
    from farm.errors import SpecError

    table = {
        "onnx": "rec.onnx",
        "task": "classification",
        "data": {"eval": "lines", "eval_labels": "rec_gt.txt"},
    }
    with pytest.raises(SpecError, match="text_recognition"):
        load_workload(table, user_dir, source="job.toml")


def test_labels_without_their_images_are_refused(user_dir: Path) -> None:
    from farm.errors import SpecError

    with pytest.raises(SpecError) as err:
        load_workload(
            {
                "onnx": "rec.onnx",
                "task": "text_recognition",
                "input_size": [8, 48],
                "data": {"eval_labels": "rec_gt.txt"},
            },
            user_dir,
            source="job.toml",
        )
    assert err.value.field == "workload.data.eval" and "eval_labels" in err.value.expected


def test_without_data_a_recogniser_is_judged_against_fp32(user_dir: Path) -> None:
    table = {"onnx": "rec.onnx", "task": "text_recognition", "input_size": [8, 48]}
    wl = load_workload(table, user_dir, source="job.toml")
    data = wl.data()
    assert not data.has_labels and data.eval.x.shape[1:] == (3, 8, 48)
    assert wl.task.primary_metric(data.has_labels) == "cer_vs_fp32"


def test_channels_bgr_feeds_lines_as_paddleocrs_tools_do(user_dir: Path) -> None:
    rgb = _workload(user_dir)
    table = {
        "onnx": "rec.onnx",
        "task": "text_recognition",
        "input_size": [8, 48],
        "channels": "bgr",
        "data": {"eval": "lines", "eval_labels": "rec_gt.txt"},
    }
    bgr = load_workload(table, user_dir, source="job.toml")
    assert bgr.data().eval.ids == rgb.data().eval.ids
    np.testing.assert_array_equal(bgr.data().eval.x, rgb.data().eval.x[:, ::-1])
    assert bgr.task.params()["channels"] == "bgr" and "channels" not in rgb.task.params()
