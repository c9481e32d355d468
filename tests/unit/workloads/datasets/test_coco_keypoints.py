"""COCO person-keypoints files read as users have them: keypoints of length 3K, visibility 0–2,
``num_keypoints`` consistent; every problem names the file, the job field and the annotation's
field; the eval split carries keypoints and stable ids."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support.keypoint_data import NAMES, write_square_keypoints

from farm.errors import SpecError
from workloads.datasets.coco_keypoints import read_keypoints

FIELD = "workload.data.eval_annotations"


@pytest.fixture(scope="module")
def squares(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kp")
    write_square_keypoints(root / "val", n=6)
    return root / "val"


def _broken(squares: Path, tmp: Path, change: Any) -> Path:
    doc = json.loads((squares / "person_keypoints.json").read_text())
    change(doc)
    path = tmp / "broken.json"
    path.write_text(json.dumps(doc))
    return path


def test_a_good_file_gives_k_names_and_keypoints_by_image(squares: Path) -> None:
    kp = read_keypoints(squares / "person_keypoints.json", FIELD, "job.toml")
    assert kp.num_keypoints == 5 and kp.names == tuple(NAMES)
    first = next(v for v in kp.keypoints.values() if v)
    assert len(first[0]) == 15 and first[0][2] == 2


def _set_kp(d: dict, index: int, value: Any) -> None:
    d["annotations"][0]["keypoints"][index] = value


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d["annotations"][0].update(keypoints=[1, 2, 2] * 4), "annotations[0].keypoints"),
        (lambda d: d["annotations"][1].pop("keypoints"), "annotations[1].keypoints"),
        (lambda d: d["annotations"][0].update(keypoints="x"), "annotations[0].keypoints"),
        (lambda d: _set_kp(d, 5, 3), "annotations[0].keypoints[5]"),
        (lambda d: _set_kp(d, 2, -1), "annotations[0].keypoints[2]"),
        (lambda d: d["annotations"][0].update(num_keypoints=4), "annotations[0].num_keypoints"),
        (lambda d: d["annotations"][0].update(area=-1), "annotations[0].area"),
        (lambda d: d["categories"][0].update(keypoints=["a"]), "categories[1].keypoints"),
        (lambda d: d["annotations"][0].update(category_id=9), "annotations[0].category_id"),
    ],
)
def test_a_malformed_keypoints_file_names_itself_and_the_field(
    squares: Path, tmp_path: Path, change: Any, field: str
) -> None:
    path = _broken(squares, tmp_path, change)
    with pytest.raises(SpecError) as err:
        read_keypoints(path, FIELD, "job.toml")
    assert err.value.field == field
    assert str(path) in err.value.path and FIELD in err.value.path and "job.toml" in err.value.path


def test_without_keypoint_names_k_comes_from_the_annotations(squares: Path, tmp_path: Path) -> None:
    path = _broken(squares, tmp_path, lambda d: [c.pop("keypoints") for c in d["categories"]])
    assert read_keypoints(path, FIELD).num_keypoints == 5


def test_the_eval_split_carries_keypoints_areas_and_file_names(squares: Path) -> None:
    from workloads.datasets.config import parse_data_config
    from workloads.datasets.dense import Preprocess, keypoints_data

    section = {"eval": "images", "eval_annotations": "person_keypoints.json"}
    cfg = parse_data_config(section, squares, "keypoints", source="job.toml")
    data = keypoints_data(cfg, Preprocess((64, 64), True, (0, 0, 0), (1, 1, 1)), 0)
    ev = data.eval
    assert ev.truth is not None and ev.ids is not None and data.calib.ids is not None
    assert set(ev.ids).isdisjoint(data.calib.ids) and len(ev.ids) + len(data.calib.ids) == 6
    assert all(name.endswith(".png") for name in ev.ids)
    for t in ev.truth:
        assert t["keypoints"].shape == (len(t["labels"]), 5, 3) and len(t["area"]) == len(
            t["labels"]
        )
    assert data.class_names == {1: "red", 2: "green"}
    # the keypoints are in original pixels: the top-left corner is the box's
    t = next(t for t in ev.truth if len(t["labels"]))
    np.testing.assert_allclose(t["keypoints"][:, 0, :2], t["boxes"][:, :2])
