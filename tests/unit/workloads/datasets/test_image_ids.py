"""Every loader names its images stably (``Split.ids``): per-image evidence of two trials, in
one job or in two, is compared image by image by these ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from workloads import load_workload
from workloads.data import Split
from workloads.datasets.common import carve, synthetic_splits
from workloads.datasets.config import DataConfig


def test_ids_must_name_every_image() -> None:
    with pytest.raises(ValueError, match="3 images has 2 ids"):
        Split(np.zeros((3, 1, 1, 1), np.float32), ids=("a", "b"))


def test_a_subset_and_a_carve_keep_each_image_with_its_id() -> None:
    x = np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1)
    split = Split(x, ids=tuple(f"img/{i}" for i in range(10)))
    sub = split.subset(np.array([7, 2]))
    assert sub.ids == ("img/7", "img/2")
    ev, cal = carve(split, DataConfig(calib_fraction=0.3, seed=1))
    for part in (ev, cal):
        assert part.ids == tuple(f"img/{int(v)}" for v in part.x.ravel())


def test_without_ids_an_image_is_named_by_its_file_else_by_its_index() -> None:
    x = np.zeros((2, 1, 1, 1), np.float32)
    assert Split(x, info=({"file": "a.png"}, {})).image_ids("eval") == ("a.png", "eval/1")


def test_synthetic_inputs_are_named_by_their_index_apart_from_calibration() -> None:
    calib, ev = synthetic_splits(DataConfig(synthetic_samples=3), (3, 4, 4))
    assert ev.ids == ("synthetic/0", "synthetic/1", "synthetic/2")
    assert calib.ids == ("synthetic-calib/0", "synthetic-calib/1", "synthetic-calib/2")


def test_dense_folders_name_images_by_their_file(squares: Path) -> None:
    data = {"eval": "val/images", "eval_masks": "val/masks", "calib_fraction": 0.25}
    seg = {"onnx": "seg.onnx", "task": "segmentation", "class_names": ["bg", "red", "green"]}
    d = load_workload({**seg, "data": data}, squares).data()
    assert d.eval.ids is not None and d.eval.info is not None
    assert d.eval.ids == tuple(i["file"] for i in d.eval.info)
    assert not set(d.eval.ids) & set(d.calib.ids or ())
    files = {p.name for p in (squares / "val" / "images").iterdir()}
    assert set(d.eval.ids) <= files


def test_the_digits_demo_names_images_by_their_index_in_the_data_set() -> None:
    from workloads.demos.digits import DigitsWorkload

    d = DigitsWorkload().data()
    assert d.eval.ids is not None and all(i.startswith("digits/") for i in d.eval.ids)
    assert len(set(d.eval.ids)) == len(d.eval)


def test_an_image_folder_names_images_by_class_folder_and_file(tmp_path: Path) -> None:
    from support.images import make_imagefolder

    from workloads.datasets.imagefolder import load_folder

    make_imagefolder(tmp_path / "val", classes=2, per_class=2)
    split = load_folder(tmp_path / "val", "eval", DataConfig(), ["class_0", "class_1"], (8, 8))
    assert split.ids == ("class_0/0.png", "class_0/1.png", "class_1/0.png", "class_1/1.png")
