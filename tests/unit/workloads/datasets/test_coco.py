"""COCO instances files read as users have them: every problem names the COCO file, the job
field and file that named it, and the path inside the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from farm.errors import SpecError
from workloads import load_workload
from workloads.datasets.coco import read_coco

FIELD = "workload.data.eval_annotations"


def _broken(squares: Path, tmp: Path, change: Any) -> Path:
    doc = json.loads((squares / "val" / "instances.json").read_text())
    change(doc)
    path = tmp / "broken.json"
    path.write_text(json.dumps(doc))
    return path


def test_a_good_file_gives_images_categories_and_boxes_by_image(squares: Path) -> None:
    coco = read_coco(squares / "val" / "instances.json", FIELD, "job.toml")
    assert coco.categories == {1: "red", 2: "green"} and coco.category_ids == [1, 2]
    assert len(coco.images) == 12 and set(coco.annotations) == set(coco.images)
    box = next(a for anns in coco.annotations.values() for a in anns)
    assert set(box) == {"id", "category_id", "bbox", "area", "iscrowd"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d["annotations"][0].update(category_id=7), "annotations[0].category_id"),
        (lambda d: d["annotations"][1].update(bbox=[1, 2, 3]), "annotations[1].bbox"),
        (lambda d: d["annotations"][1].update(bbox=[1, 2, -3, 4]), "annotations[1].bbox"),
        (lambda d: d["annotations"][0].update(image_id=999), "annotations[0].image_id"),
        (lambda d: d["annotations"][0].update(iscrowd=2), "annotations[0].iscrowd"),
        (lambda d: d["annotations"].__setitem__(0, 3), "annotations[0]"),
        (lambda d: d.pop("categories"), "categories"),
        (lambda d: d.update(categories=[]), "categories"),
        (lambda d: d["categories"].append({"id": 1, "name": "again"}), "categories[2].id"),
        (lambda d: d["categories"][0].update(id="one"), "categories[0].id"),
        (lambda d: d["images"][0].pop("file_name"), "images[0].file_name"),
        (lambda d: d["images"][0].update(width=0), "images[0].width"),
        (lambda d: d["images"][1].update(id=d["images"][0]["id"]), "images[1].id"),
    ],
)
def test_a_malformed_file_names_itself_the_job_field_and_the_path_inside(
    squares: Path, tmp_path: Path, change: Any, field: str
) -> None:
    path = _broken(squares, tmp_path, change)
    with pytest.raises(SpecError) as err:
        read_coco(path, FIELD, "job.toml")
    assert err.value.field == field
    assert str(path) in err.value.path and FIELD in err.value.path and "job.toml" in err.value.path


def test_iscrowd_may_be_written_as_a_json_boolean(squares: Path, tmp_path: Path) -> None:
    path = _broken(squares, tmp_path, lambda d: d["annotations"][0].update(iscrowd=True))
    coco = read_coco(path, FIELD)
    assert any(a["iscrowd"] == 1 for anns in coco.annotations.values() for a in anns)


def test_a_file_that_is_not_json_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SpecError, match="valid JSON"):
        read_coco(bad, FIELD)


def test_an_image_missing_from_the_eval_folder_is_named(squares: Path, tmp_path: Path) -> None:
    path = _broken(squares, tmp_path, lambda d: d["images"][0].update(file_name="no.png"))
    section = {
        "onnx": "yolo.onnx",
        "task": "detection",
        "outputs": "yolo",
        "data": {"eval": "val/images", "eval_annotations": str(path)},
    }
    with pytest.raises(SpecError, match=r"an image in `workload.data.eval`.*'no.png'") as err:
        load_workload(section, squares, source="job.toml").data()
    assert str(path) in err.value.path and "job.toml" in err.value.path


def test_annotations_without_a_single_box_are_refused(squares: Path, tmp_path: Path) -> None:
    path = _broken(squares, tmp_path, lambda d: d.update(annotations=[]))
    section = {
        "onnx": "yolo.onnx",
        "task": "detection",
        "outputs": "yolo",
        "data": {"eval": "val/images", "eval_annotations": str(path)},
    }
    with pytest.raises(SpecError, match="at least one box") as err:
        load_workload(section, squares, source="job.toml").data()
    assert err.value.field == "annotations"
