"""The embedded keypoints data: seeded squares whose five keypoints are known, written to disk.

Each 64×64 image shows 1–3 filled squares (side 14–28 px, turned by at most 25° so that their
corners keep their names) on the shapes demo's textured, noisy backgrounds, never overlapping.
Each square has five keypoints: its corners ``top_left``, ``top_right``, ``bottom_right``,
``bottom_left`` (in the square's own frame) and its ``centre``, all visible (``v = 2``). The
data set is written as a user's would be: PNG images and a COCO person-keypoints JSON per
labelled split (category ``square`` with the keypoint names, ``bbox`` the tight box of the
square's pixels, ``area`` their count), calibration images alone.

Everything follows from the seed (each image has its own generator seeded by ``(seed, split,
index)``); numpy and PIL only.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workloads.demos import shapes_data as shapes

#: Keypoint names, in the order of the model's keypoint rows.
KEYPOINTS: tuple[str, ...] = ("top_left", "top_right", "bottom_right", "bottom_left", "centre")
CATEGORY = "square"
#: Bumped whenever the drawing changes, so that cached data sets and models are not reused.
GENERATOR_VERSION = 1
SIDE_RANGE = (14.0, 28.0)
MAX_TURN = math.radians(25)
MAX_SQUARES = 3
_SPLIT_CODES = {"train": 1, "calib": 2, "eval": 3}
_KIND_CODE = 3  # the detection and segmentation demos use 1 and 2


@dataclass(frozen=True)
class KeypointPaths:
    """Where a written keypoints data set lives."""

    root: Path
    train_images: Path
    train_annotations: Path
    calib_images: Path
    eval_images: Path
    eval_annotations: Path


@dataclass(frozen=True, eq=False)
class PoseScene:
    """One image (uint8 H×W×3) with its squares' keypoints ``[n, 5, 2]``, xyxy boxes and
    pixel areas."""

    image: np.ndarray
    keypoints: np.ndarray
    boxes: np.ndarray
    areas: np.ndarray


def _square(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, float]:
    """A random square: its five keypoints ``[5, 2]``, its pixel mask and its circumradius."""
    side = rng.uniform(*SIDE_RANGE)
    radius = side / math.sqrt(2)
    cx, cy = rng.uniform(radius + 1, size - radius - 1, size=2)
    turn = rng.uniform(-MAX_TURN, MAX_TURN)
    # shapes_data's vertex k sits at angle + k·90°: with angle = turn + 45° they are the
    # bottom-right, bottom-left, top-left and top-right corners (y grows downwards)
    br, bl, tl, tr = shapes._shape_polygon("square", cx, cy, radius, turn + math.pi / 4)
    points = np.asarray([tl, tr, br, bl, (cx, cy)], dtype=np.float64)
    mask = shapes._shape_mask("square", size, cx, cy, radius, turn + math.pi / 4)
    return points, mask, radius


def render_pose_scene(rng: np.random.Generator, image_size: int) -> PoseScene:
    """Draw one image of 1–3 non-overlapping squares with their keypoints."""
    bg = shapes._background(rng, image_size)
    image = bg.copy()
    kps: list[np.ndarray] = []
    boxes: list[tuple[float, ...]] = []
    areas: list[int] = []
    placed: list[tuple[np.ndarray, float]] = []
    for _ in range(int(rng.integers(1, MAX_SQUARES + 1))):
        for _attempt in range(20):
            points, mask, radius = _square(rng, image_size)
            centre = points[4]
            if mask.any() and all(np.hypot(*(centre - c)) > radius + r + 2 for c, r in placed):
                break
        else:
            continue  # no room left: the image keeps fewer squares
        colour = shapes._contrasting_colour(rng, [bg[mask].mean(axis=0)])
        image = np.where(mask[..., None], colour, image)
        ys, xs = np.nonzero(mask)
        kps.append(points)
        boxes.append((float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)))
        areas.append(int(mask.sum()))
        placed.append((points[4], radius))
    image = image + rng.normal(0.0, rng.uniform(2.0, 10.0), size=image.shape)
    return PoseScene(
        np.clip(np.rint(image), 0, 255).astype(np.uint8),
        np.asarray(kps, dtype=np.float64).reshape(-1, len(KEYPOINTS), 2),
        np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        np.asarray(areas, dtype=np.int64),
    )


def _coco(scene_list: list[PoseScene], image_size: int) -> dict[str, Any]:
    """A COCO person-keypoints document of the scenes (ids from 1)."""
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for i, scene in enumerate(scene_list):
        image_id = i + 1
        name = shapes._file_name(i)
        images.append(
            {"id": image_id, "file_name": name, "width": image_size, "height": image_size}
        )
        for pts, box, area in zip(scene.keypoints, scene.boxes, scene.areas, strict=True):
            x1, y1, x2, y2 = (float(v) for v in box)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": float(area),
                    "iscrowd": 0,
                    "keypoints": [round(float(v), 3) for p in pts for v in (*p, 2)],
                    "num_keypoints": len(KEYPOINTS),
                }
            )
    cats = [{"id": 1, "name": CATEGORY, "keypoints": list(KEYPOINTS), "skeleton": []}]
    return {"images": images, "annotations": annotations, "categories": cats}


def _scenes(split: str, params: dict[str, Any]) -> list[PoseScene]:
    n, size = params[f"n_{split}"], params["image_size"]
    return [
        render_pose_scene(
            np.random.default_rng([params["seed"], _KIND_CODE, _SPLIT_CODES[split], i]), size
        )
        for i in range(n)
    ]


def _write(tmp: Path, params: dict[str, Any]) -> None:
    (tmp / "annotations").mkdir(parents=True)
    for split in ("train", "calib", "eval"):
        folder = tmp / split
        folder.mkdir()
        scene_list = _scenes(split, params)
        for i, scene in enumerate(scene_list):
            shapes._save_png(scene.image, folder / shapes._file_name(i))
        if split != "calib":
            doc = _coco(scene_list, params["image_size"])
            (tmp / "annotations" / f"keypoints_{split}.json").write_text(json.dumps(doc))


def write_keypoints_dataset(
    root: Path,
    *,
    seed: int = 0,
    image_size: int = 64,
    n_train: int = 1500,
    n_calib: int = 64,
    n_eval: int = 150,
) -> KeypointPaths:
    """Write (once) the keypoints data set under ``root`` and return its paths: ``train/``,
    ``calib/``, ``eval/`` of ``00000.png``…, ``annotations/keypoints_{train,eval}.json``."""
    root = Path(root)
    params = {
        "kind": "keypoints",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "image_size": image_size,
        "n_train": n_train,
        "n_calib": n_calib,
        "n_eval": n_eval,
    }
    shapes._ensure_written(root, params, _write)
    return KeypointPaths(
        root=root,
        train_images=root / "train",
        train_annotations=root / "annotations" / "keypoints_train.json",
        calib_images=root / "calib",
        eval_images=root / "eval",
        eval_annotations=root / "annotations" / "keypoints_eval.json",
    )
