"""COCO person-keypoints files as users have them: read and checked before anything runs.

A keypoints file is a COCO instances file (checked as :mod:`workloads.datasets.coco` checks one:
images, categories, boxes) whose annotations also carry ``keypoints``: ``[x, y, v] * K`` with
visibility ``v`` 0 (not labelled), 1 (labelled, hidden) or 2 (visible), K the length of the
categories' ``keypoints`` names (or of the first annotation's list when no category names
them), ``num_keypoints`` (when given) the number of labelled keypoints. ``area`` may be absent
(CrowdPose): OKS then divides by ``0.53 · w · h`` of the box. Every error names the file, the
job field that named it and the annotation's field::

    kp.json (`workload.data.eval_annotations` in job.toml): field `annotations[3].keypoints`:
    expected 15 numbers ([x, y, v] for each of the 5 keypoints), got a list of 12
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farm._validate import Fields, is_number
from farm.errors import SpecError
from workloads.datasets import coco as instances

if TYPE_CHECKING:
    from workloads.data import Split


@dataclass(frozen=True)
class KeypointsFile:
    """A checked keypoints file: the instances part, K, the keypoint names, and per annotation
    (by image, in file order) its keypoints and its area (None where the file has none)."""

    coco: instances.CocoFile
    num_keypoints: int
    names: tuple[str, ...]
    keypoints: dict[int, list[list[float]]]
    areas: dict[int, list[float | None]]


def read_keypoints(path: Path, field: str, source: str | Path = "<memory>") -> KeypointsFile:
    """Read and check a COCO person-keypoints JSON (``field``: the job field naming it), holding
    at least one annotated object."""
    path = Path(path)
    coco = instances.read_coco(path, field, source)
    where = instances.coco_source(path, field, source)
    raw = json.loads(path.read_text(encoding="utf-8"))
    names = _keypoint_names(raw["categories"], where)
    k = len(names) if names else _first_length(raw["annotations"], where)
    keypoints: dict[int, list[list[float]]] = {i: [] for i in coco.images}
    areas: dict[int, list[float | None]] = {i: [] for i in coco.images}
    for i, entry in enumerate(raw["annotations"]):
        f = Fields(entry, where, f"annotations[{i}]")
        image_id = int(entry["image_id"])
        keypoints[image_id].append(_keypoints(f, k))
        area = entry.get("area")
        if area is not None and (not is_number(area) or area < 0):
            raise f.error("area", "a number >= 0 (or no `area`: `use_area = false`)", area)
        areas[image_id].append(None if area is None else float(area))
    if not raw["annotations"]:
        raise SpecError(
            where, "annotations", "at least one annotated object to evaluate against", []
        )
    return KeypointsFile(coco, k, names or tuple(f"kp{j}" for j in range(k)), keypoints, areas)


def _keypoint_names(categories: list[Any], where: str) -> tuple[str, ...]:
    """The keypoint names the categories give (all the same length), or () when none do."""
    found: tuple[str, ...] = ()
    for i, cat in enumerate(categories):
        names = cat.get("keypoints") if isinstance(cat, Mapping) else None
        if names is None:
            continue
        f = Fields(cat, where, f"categories[{i}]")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise f.error("keypoints", "a non-empty list of keypoint names", names)
        if found and len(names) != len(found):
            raise f.error("keypoints", f"{len(found)} names, as the other categories", len(names))
        found = tuple(names)
    return found


def _first_length(annotations: list[Any], where: str) -> int:
    for i, ann in enumerate(annotations):
        kps = ann.get("keypoints") if isinstance(ann, Mapping) else None
        if isinstance(kps, list) and kps and len(kps) % 3 == 0:
            return len(kps) // 3
        raise SpecError(
            where, f"annotations[{i}].keypoints", "[x, y, v] for each keypoint (3·K numbers)", kps
        )
    raise SpecError(where, "annotations", "at least one annotation with keypoints", [])


def _keypoints(f: Fields, k: int) -> list[float]:
    """One annotation's checked keypoints (``[x, y, v] * k``) and ``num_keypoints``."""
    kps = f.table.get("keypoints")
    what = f"{3 * k} numbers ([x, y, v] for each of the {k} keypoints)"
    if not isinstance(kps, list) or not all(is_number(v) for v in kps):
        raise f.error("keypoints", what, kps)
    if len(kps) != 3 * k:
        raise f.error("keypoints", what, f"a list of {len(kps)}")
    for j in range(k):
        v = kps[3 * j + 2]
        if v not in (0, 1, 2):
            raise f.error(f"keypoints[{3 * j + 2}]", f"visibility 0, 1 or 2 of keypoint {j}", v)
    labelled = sum(1 for j in range(k) if kps[3 * j + 2] > 0)
    given = f.table.get("num_keypoints", labelled)
    if given != labelled or isinstance(given, bool):
        raise f.error(
            "num_keypoints", f"{labelled}, the number of keypoints with visibility > 0", given
        )
    return [float(v) for v in kps]


def with_keypoints(split: Split, kp: KeypointsFile) -> Split:
    """``split`` (a detection split of ``kp``'s images, in ascending id order) with each image's
    keypoints ``[n, K, 3]``, areas (NaN where absent), the file's category ids and keypoint
    names added to its truth, and the image file names as its stable ids."""
    from dataclasses import replace

    import numpy as np

    assert split.truth is not None and split.info is not None
    cats = np.asarray(kp.coco.category_ids, dtype=np.int64)
    truth = []
    for t, info in zip(split.truth, split.info, strict=True):
        image_id = int(info["image_id"])
        kps = np.asarray(kp.keypoints[image_id], dtype=np.float64).reshape(-1, kp.num_keypoints, 3)
        area = [np.nan if a is None else a for a in kp.areas[image_id]]
        truth.append(
            {
                **t,
                "keypoints": kps,
                "area": np.asarray(area, dtype=np.float64),
                "category_ids": cats,
                "keypoint_names": kp.names,
            }
        )
    ids = tuple(str(info["file"]) for info in split.info)
    return replace(split, truth=tuple(truth), ids=ids)
