"""COCO instances files: read and check them, and score detections with a maintained library.

Reading checks everything evaluation relies on and names the file and the field path of the
first problem (``instances_val.json: field annotations[12].category_id: …``). Scoring uses
faster-coco-eval (a C++ implementation of the pycocotools protocol, same numbers); the tests
check it against pycocotools itself.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from farm.errors import UsageError


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


def read_coco(path: Path, field: str) -> CocoFile:
    """Read and check a COCO instances JSON (``field`` is the job-file field that named it)."""
    path = Path(path)

    def fail(where: str, expected: str, got: Any = None) -> UsageError:
        suffix = "" if got is None else f", got {got!r}"
        return UsageError(f"{path} (`{field}`): field `{where}`: expected {expected}{suffix}")

    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"`{field}`: cannot read {path}: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path} (`{field}`): not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise fail("<top level>", "a JSON object with images, annotations, categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(raw.get(key), list):
            raise fail(key, "a list", type(raw.get(key)).__name__ if key in raw else None)

    categories: dict[int, str] = {}
    for i, c in enumerate(raw["categories"]):
        if not isinstance(c, dict) or not _is_int(c.get("id")):
            raise fail(f"categories[{i}].id", "an integer category id", _get(c, "id"))
        name = c.get("name", str(c["id"]))
        if not isinstance(name, str) or not name:
            raise fail(f"categories[{i}].name", "a non-empty string", name)
        if c["id"] in categories:
            raise fail(f"categories[{i}].id", "a unique category id", c["id"])
        categories[int(c["id"])] = name
    if not categories:
        raise fail("categories", "at least one category")

    images: dict[int, dict[str, Any]] = {}
    for i, im in enumerate(raw["images"]):
        if not isinstance(im, dict) or not _is_int(im.get("id")):
            raise fail(f"images[{i}].id", "an integer image id", _get(im, "id"))
        if not isinstance(im.get("file_name"), str) or not im["file_name"]:
            raise fail(f"images[{i}].file_name", "the image's file name", im.get("file_name"))
        for key in ("width", "height"):
            if key in im and (not _is_int(im[key]) or im[key] < 1):
                raise fail(f"images[{i}].{key}", "a positive integer", im[key])
        if im["id"] in images:
            raise fail(f"images[{i}].id", "a unique image id", im["id"])
        images[int(im["id"])] = im
    if not images:
        raise fail("images", "at least one image")

    annotations: dict[int, list[dict[str, Any]]] = {i: [] for i in images}
    for i, a in enumerate(raw["annotations"]):
        where = f"annotations[{i}]"
        if not isinstance(a, dict):
            raise fail(where, "an object")
        if a.get("image_id") not in images:
            raise fail(f"{where}.image_id", "the id of an image in `images`", a.get("image_id"))
        if a.get("category_id") not in categories:
            raise fail(
                f"{where}.category_id",
                f"one of the category ids {sorted(categories)}",
                a.get("category_id"),
            )
        box = a.get("bbox")
        if (
            not isinstance(box, list)
            or len(box) != 4
            or not all(_is_number(v) for v in box)
            or box[2] < 0
            or box[3] < 0
        ):
            raise fail(f"{where}.bbox", "[x, y, width, height] with width, height >= 0", box)
        crowd = a.get("iscrowd", 0)
        if crowd not in (0, 1):
            raise fail(f"{where}.iscrowd", "0 or 1", crowd)
        annotations[int(a["image_id"])].append(
            {
                "id": a.get("id", i + 1),
                "category_id": int(a["category_id"]),
                "bbox": [float(v) for v in box],
                "area": float(a.get("area", box[2] * box[3])),
                "iscrowd": int(crowd),
            }
        )
    return CocoFile(path, images, categories, annotations)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else obj


# -- scoring ---------------------------------------------------------------------------------


def ground_truth(
    images: list[tuple[int, int, int]],
    boxes: list[Any],
    labels: list[Any],
    categories: dict[int, str],
    crowd: list[Any] | None = None,
) -> dict[str, Any]:
    """A COCO ground-truth document: ``images`` as (id, height, width); per image its boxes
    (xyxy, pixels), category ids and optional iscrowd flags."""
    doc_images = [{"id": i, "height": h, "width": w} for i, h, w in images]
    anns: list[dict[str, Any]] = []
    for (image_id, _, _), b, lab, cr in zip(
        images, boxes, labels, crowd or [None] * len(images), strict=True
    ):
        for k in range(len(b)):
            x1, y1, x2, y2 = (float(v) for v in b[k])
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image_id,
                    "category_id": int(lab[k]),
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": int(cr[k]) if cr is not None else 0,
                }
            )
    cats = [{"id": c, "name": n} for c, n in sorted(categories.items())]
    return {"images": doc_images, "annotations": anns, "categories": cats}


def detections(
    image_ids: list[int], boxes: list[Any], scores: list[Any], labels: list[Any]
) -> list[dict[str, Any]]:
    """COCO result entries (bbox as x, y, w, h) for per-image xyxy boxes."""
    out = []
    for image_id, b, s, lab in zip(image_ids, boxes, scores, labels, strict=True):
        for k in range(len(b)):
            x1, y1, x2, y2 = (float(v) for v in b[k])
            out.append(
                {
                    "image_id": int(image_id),
                    "category_id": int(lab[k]),
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": float(s[k]),
                }
            )
    return out


#: COCO summary statistics kept, by their index in ``COCOeval.stats``.
STATS = {"map": 0, "map50": 1, "map75": 2, "map_small": 3, "map_medium": 4, "map_large": 5}
AR100 = 8


def evaluate_bbox(gt: dict[str, Any], dets: list[dict[str, Any]]) -> dict[str, float]:
    """COCO bbox metrics: ``map`` (AP@[.5:.95]), ``map50``, ``map75``, ``map_small/medium/large``,
    ``ar100`` and ``ap/<category name>`` (AP@[.5:.95] of each category with ground truth).

    A metric COCO cannot compute (no ground truth of that size) is left out, never reported as
    COCO's ``-1`` placeholder. No detections at all score 0.
    """
    import numpy as np
    from faster_coco_eval import COCO, COCOeval_faster

    names = {c["id"]: c["name"] for c in gt["categories"]}
    has_truth = {a["category_id"] for a in gt["annotations"] if not a.get("iscrowd")}
    if not dets:
        out = {"map": 0.0, "map50": 0.0, "map75": 0.0, "ar100": 0.0}
        out.update({f"ap/{names[c]}": 0.0 for c in sorted(has_truth)})
        return out
    coco_gt = COCO(gt)
    coco_dt = coco_gt.loadRes(dets)
    ev = COCOeval_faster(coco_gt, coco_dt, iouType="bbox", print_function=lambda *a: None)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    stats = [float(v) for v in ev.stats]
    out = {name: stats[i] for name, i in STATS.items() if stats[i] >= 0}
    if stats[AR100] >= 0:
        out["ar100"] = stats[AR100]
    # precision: [IoU thresholds, recall points, categories, area ranges, max dets]
    precision = np.asarray(ev.eval["precision"])
    cat_ids = list(ev.params.catIds)
    for k, cat in enumerate(cat_ids):
        if cat not in has_truth:
            continue
        p = precision[:, :, k, 0, -1]
        valid = p[p > -1]
        out[f"ap/{names[cat]}"] = float(valid.mean()) if valid.size else 0.0
    return out
