"""The OCR demos' data: seeded text lines and pages written as a user's data looks (PNG files and
PaddleOCR label files the farm's own readers accept), the same bytes for the same seed, read
back with stable ids and PaddleOCR's preprocessing."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workloads.datasets import ocr
from workloads.datasets.config import DataConfig
from workloads.datasets.ocr_labels import read_det_labels, read_rec_labels
from workloads.demos.ocr_data import write_lines_dataset, write_pages_dataset


def test_lines_are_seeded_and_read_back_by_the_label_reader(tmp_path: Path) -> None:
    a = write_lines_dataset(tmp_path / "a", seed=3, n_eval=6, n_calib=2)
    b = write_lines_dataset(tmp_path / "b", seed=3, n_eval=6, n_calib=2)
    assert a.eval_labels.read_bytes() == b.eval_labels.read_bytes()
    for name in ("line_0000.png", "line_0005.png"):
        assert (a.eval_images / name).read_bytes() == (b.eval_images / name).read_bytes()
    rows = read_rec_labels(a.eval_labels, a.eval_images, "eval_labels", "demo")
    assert [r.id for r in rows] == [f"line_{i:04d}.png" for i in range(6)]
    assert all(r.truth and r.truth == r.truth.strip() for r in rows)
    assert len(list(a.calib_images.glob("*.png"))) == 2
    cfg = DataConfig(
        eval=a.eval_images,
        eval_labels=a.eval_labels,
        calib=a.calib_images,
        mean=(0.5,) * 3,
        std=(0.5,) * 3,
        source="demo",
    )
    data = ocr.task_data("text", cfg, (48, 320), False)
    assert data.eval.x.shape == (6, 3, 48, 320) and data.eval.ids == tuple(r.id for r in rows)
    assert data.eval.truth == tuple(r.truth for r in rows) and len(data.calib) == 2
    assert data.eval.x.min() >= -1.0 and data.eval.x.max() <= 1.0


def test_pages_give_regions_and_letterboxed_inputs(tmp_path: Path) -> None:
    pages = write_pages_dataset(tmp_path, seed=0, n_eval=3, n_calib=1, size=(200, 320))
    rows = read_det_labels(pages.eval_labels, pages.eval_images, "eval_labels", "demo")
    assert [r.id for r in rows] == ["page_000.png", "page_001.png", "page_002.png"]
    assert all(len(r.truth) >= 1 and not any(t.ignore for t in r.truth) for r in rows)
    cfg = DataConfig(
        eval=pages.eval_images,
        eval_labels=pages.eval_labels,
        calib=pages.calib_images,
        mean=(0.5,) * 3,
        std=(0.5,) * 3,
        source="demo",
    )
    data = ocr.task_data("regions", cfg, (64, 64), True)
    assert data.eval.x.shape == (3, 3, 64, 64)
    info = data.eval.info[0]
    assert info["orig_hw"] == (200, 320) and info["scale"] == (40 / 200, 64 / 320)
    assert data.eval.truth[0] == rows[0].truth
    assert np.isfinite(data.calib.x).all()
