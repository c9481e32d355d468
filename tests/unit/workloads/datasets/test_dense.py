"""Image + mask folders and plain image folders as the dense and generic tasks read them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from farm.errors import SpecError
from workloads import load_workload

SEG = {"onnx": "seg.onnx", "task": "segmentation"}


def _copy(squares: Path, tmp_path: Path) -> Path:
    shutil.copytree(squares / "val", tmp_path / "val")
    shutil.copy(squares / "seg.onnx", tmp_path / "seg.onnx")
    return tmp_path


def test_masks_are_read_at_the_original_image_size(squares: Path) -> None:
    data = {"eval": "val/images", "eval_masks": "val/masks", "calib_fraction": 0.25}
    wl = load_workload({**SEG, "data": data, "class_names": ["bg", "red", "green"]}, squares)
    d = wl.data()
    assert len(d.eval) + len(d.calib) == 12 and len(d.calib) == 3
    assert d.eval.truth is not None and d.eval.info is not None
    assert d.eval.truth[0].shape == tuple(d.eval.info[0]["orig_hw"])
    assert d.class_names == ("bg", "red", "green")


def test_a_mask_of_the_wrong_size_is_refused(squares: Path, tmp_path: Path) -> None:
    from PIL import Image

    root = _copy(squares, tmp_path)
    Image.new("L", (10, 10)).save(root / "val" / "masks" / "img003.png")
    section = {**SEG, "data": {"eval": "val/images", "eval_masks": "val/masks"}}
    with pytest.raises(SpecError) as err:
        load_workload(section, root, source="job.toml").data()
    text = str(err.value)
    assert err.value.field == "workload.data.eval_masks" and err.value.path == "job.toml"
    assert "img003.png" in text and "10×10" in text


def test_a_mask_with_an_unknown_class_is_refused(squares: Path, tmp_path: Path) -> None:
    from PIL import Image

    root = _copy(squares, tmp_path)
    mask = root / "val" / "masks" / "img001.png"
    size = Image.open(mask).size
    Image.new("L", size, 7).save(mask)
    section = {**SEG, "data": {"eval": "val/images", "eval_masks": "val/masks"}}
    with pytest.raises(SpecError, match=r"class indices 0\.\.2 .*class 7") as err:
        load_workload(section, root).data()
    assert err.value.field == "workload.data.eval_masks"


def test_an_image_without_a_mask_is_named(squares: Path, tmp_path: Path) -> None:
    root = _copy(squares, tmp_path)
    (root / "val" / "masks" / "img002.png").unlink()
    section = {**SEG, "data": {"eval": "val/images", "eval_masks": "val/masks"}}
    with pytest.raises(SpecError, match=r"img002\.png") as err:
        load_workload(section, root).data()
    assert err.value.field == "workload.data.eval_masks"


def test_class_names_must_name_every_output_channel(squares: Path) -> None:
    section = {**SEG, "class_names": ["bg", "red"], "data": {"synthetic_samples": 2}}
    with pytest.raises(SpecError, match=r"one per class \(3\)") as err:
        load_workload(section, squares).data()
    assert err.value.field == "workload.class_names"
