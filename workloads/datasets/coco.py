"""COCO instances files as users have them: read and checked before anything runs.

Reading checks everything evaluation relies on and names the COCO file, the job field and job
file that named it, and the path of the first problem inside the file::

    val.json (`workload.data.eval_annotations` in job.toml): field `annotations[12].category_id`:
    expected one of the category ids [1, 2], got 7

Scoring is the task layer's job (:mod:`workloads.tasks._coco_eval`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from farm._validate import Fields, is_number
from farm.errors import SpecError


@dataclass(frozen=True)
class CocoFile:
    """A checked COCO instances file: images by id, categories by id, annotations by image."""

    path: Path
    images: dict[int, dict[str, Any]]
    categories: dict[int, str]
    annotations: dict[int, list[dict[str, Any]]]

    @property
    def category_ids(self) -> list[int]:
        return sorted(self.categories)


def coco_source(path: Path, field: str, source: str | Path) -> str:
    """How errors name a COCO file: its path, and the job field and file that named it."""
    return f"{path} (`{field}` in {source})"


def read_coco(path: Path, field: str, source: str | Path = "<memory>") -> CocoFile:
    """Read and check a COCO instances JSON; ``field`` is the job field that named it
    (``workload.data.eval_annotations``), ``source`` the job file."""
    path = Path(path)
    where = coco_source(path, field, source)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpecError(source, field, "a readable COCO instances JSON", str(path)) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(where, "<file>", f"valid JSON ({exc})") from None
    if not isinstance(raw, Mapping):
        raise SpecError(where, "<top level>", "a JSON object with images, annotations, categories")
    top = Fields(raw, where)
    for key in ("images", "annotations", "categories"):
        if not isinstance(raw.get(key), list):
            got = type(raw[key]).__name__ if key in raw else None
            raise top.error(key, "a list", got)
    categories = _categories(raw["categories"], where)
    images = _images(raw["images"], where)
    annotations: dict[int, list[dict[str, Any]]] = {i: [] for i in images}
    for i, entry in enumerate(raw["annotations"]):
        ann = _annotation(_entry(entry, where, f"annotations[{i}]"), i, images, categories)
        annotations[ann["image_id"]].append(ann["annotation"])
    return CocoFile(path, images, categories, annotations)


def _entry(value: Any, where: str, prefix: str) -> Fields:
    if not isinstance(value, Mapping):
        raise SpecError(where, prefix, "an object", value)
    return Fields(value, where, prefix)


def _categories(entries: list[Any], where: str) -> dict[int, str]:
    categories: dict[int, str] = {}
    for i, entry in enumerate(entries):
        f = _entry(entry, where, f"categories[{i}]")
        cid = f.integer("id", expected="an integer category id")
        name = f.string("name", str(cid))
        if cid in categories:
            raise f.error("id", "a unique category id", cid)
        categories[cid] = name
    if not categories:
        raise SpecError(where, "categories", "at least one category")
    return categories


def _images(entries: list[Any], where: str) -> dict[int, dict[str, Any]]:
    images: dict[int, dict[str, Any]] = {}
    for i, entry in enumerate(entries):
        f = _entry(entry, where, f"images[{i}]")
        image_id = f.integer("id", expected="an integer image id")
        f.string("file_name", expected="the image's file name")
        f.positive_int("width", None)
        f.positive_int("height", None)
        if image_id in images:
            raise f.error("id", "a unique image id", image_id)
        images[image_id] = dict(entry)
    if not images:
        raise SpecError(where, "images", "at least one image")
    return images


def _annotation(
    f: Fields, index: int, images: dict[int, Any], categories: dict[int, str]
) -> dict[str, Any]:
    """One checked annotation: its image id and the fields evaluation uses."""
    image_id = f.table.get("image_id")
    if isinstance(image_id, bool) or image_id not in images:
        raise f.error("image_id", "the id of an image in `images`", image_id)
    category = f.table.get("category_id")
    if isinstance(category, bool) or category not in categories:
        raise f.error("category_id", f"one of the category ids {sorted(categories)}", category)
    box = f.table.get("bbox")
    if (
        not isinstance(box, list)
        or len(box) != 4
        or not all(is_number(v) for v in box)
        or box[2] < 0
        or box[3] < 0
    ):
        raise f.error("bbox", "[x, y, width, height] with width, height >= 0", box)
    crowd = f.table.get("iscrowd", 0)
    if crowd not in (0, 1):  # as pycocotools reads it: 0, 1 (or false, true)
        raise f.error("iscrowd", "0 or 1", crowd)
    return {
        "image_id": int(image_id),
        "annotation": {
            "id": f.table.get("id", index + 1),
            "category_id": int(category),
            "bbox": [float(v) for v in box],
            "area": float(f.table.get("area", box[2] * box[3])),
            "iscrowd": int(crowd),
        },
    }
