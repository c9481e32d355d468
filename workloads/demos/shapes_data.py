"""The embedded "shapes" data: seeded synthetic detection and segmentation datasets on disk.

The detection and segmentation demos need data that ships with the farm (nothing is downloaded)
and is read through the same loaders as a user's data, so it is *written to disk* in the usual
formats: PNG images plus COCO instances JSON (detection) or single-channel class-index PNG masks
(segmentation). Each image shows 1-5 filled shapes (circle, square, triangle; random size,
rotation and colour) on a textured background (a colour gradient, a few random-frequency
sinusoids and Gaussian noise). Objects may overlap; a placement that would leave an earlier object
less than :data:`MIN_VISIBLE` visible is redrawn, so every annotated object stays recognisable.

Everything follows from the seed: every image has its own generator seeded by
``(seed, kind, split, index)``, so an image does not change when the size of another split does.
Only numpy and PIL are used (no torch), so writing the data is cheap to import.

Annotations describe what is *visible*: a box is the tight box of the object's visible pixels
and ``area`` is its visible pixel count; no object is dropped (the placement rule keeps each one at
least half visible). Masks use the class index of the top-most object at each pixel; the ignore
value 255 is reserved but unused (masks are exact, because shapes are drawn without
anti-aliasing).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

CATEGORIES: tuple[str, ...] = ("circle", "square", "triangle")
#: Mask pixel value = index in this tuple; :data:`IGNORE_INDEX` is reserved (unused).
SEG_CLASSES: tuple[str, ...] = ("background", *CATEGORIES)
IGNORE_INDEX = 255
#: Bumped whenever the drawing changes, so that cached datasets and models are not reused.
GENERATOR_VERSION = 1
MANIFEST = "shapes.json"
#: An earlier object must keep at least this fraction of its pixels visible.
MIN_VISIBLE = 0.5
#: Object size (diameter of the circumscribed circle) as a fraction of the image side.
SIZE_RANGE = (0.18, 0.45)
#: Minimum mean absolute RGB difference between an object and the background beneath it.
MIN_CONTRAST = 60.0
MAX_OBJECTS = 5

_KIND_CODES = {"detection": 1, "segmentation": 2}
_SPLIT_CODES = {"train": 1, "calib": 2, "eval": 3}


@dataclass(frozen=True)
class DetectionPaths:
    """Where a written detection dataset lives (COCO JSON for train and eval)."""

    root: Path
    train_images: Path
    train_annotations: Path
    calib_images: Path
    eval_images: Path
    eval_annotations: Path


@dataclass(frozen=True)
class SegmentationPaths:
    """Where a written segmentation dataset lives (masks share the image's file stem)."""

    root: Path
    train_images: Path
    train_masks: Path
    calib_images: Path
    eval_images: Path
    eval_masks: Path


@dataclass(frozen=True, eq=False)
class Scene:
    """One rendered image with its ground truth.

    ``image`` is uint8 (H, W, 3); ``instances`` is int32 (H, W) with 0 for background and k for
    the k-th object (1-based, later objects on top); ``categories[k-1]`` is the 0-based category
    index of object k; ``boxes`` are float32 (n, 4) xyxy pixel-edge boxes of the visible pixels;
    ``drawn_areas`` are the pixel counts of the objects as drawn, before later ones covered them.
    """

    image: np.ndarray
    instances: np.ndarray
    categories: np.ndarray
    boxes: np.ndarray
    drawn_areas: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        """The uint8 class-index mask (0 background, 1 + category index for objects)."""
        lut = np.concatenate([[0], self.categories + 1]).astype(np.uint8)
        return lut[self.instances]

    @property
    def areas(self) -> np.ndarray:
        """Visible pixel count of each object."""
        counts = np.bincount(self.instances.ravel(), minlength=len(self.categories) + 1)
        return counts[1:]


# --------------------------------------------------------------------------------------------
# Drawing


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A float (H, W, 3) background: colour gradient plus random-frequency sinusoidal texture."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / size
    angle = rng.uniform(0, 2 * math.pi)
    t = xx * math.cos(angle) + yy * math.sin(angle)
    t = (t - t.min()) / max(t.max() - t.min(), 1e-9)
    c0, c1 = rng.uniform(0, 255, size=3), rng.uniform(0, 255, size=3)
    bg = c0 + (c1 - c0) * t[..., None]
    for _ in range(int(rng.integers(1, 4))):
        freq = rng.uniform(1.0, 10.0)  # cycles per image
        theta = rng.uniform(0, math.pi)
        phase = rng.uniform(0, 2 * math.pi)
        wave = np.sin(2 * math.pi * freq * (xx * math.cos(theta) + yy * math.sin(theta)) + phase)
        bg += wave[..., None] * rng.uniform(5, 30, size=3)
    return bg


def _shape_polygon(
    category: str, cx: float, cy: float, radius: float, angle: float
) -> list[tuple[float, float]]:
    """Vertices of a regular polygon (square or triangle) of circumradius ``radius``."""
    n = 4 if category == "square" else 3
    return [
        (
            cx + radius * math.cos(angle + 2 * math.pi * k / n),
            cy + radius * math.sin(angle + 2 * math.pi * k / n),
        )
        for k in range(n)
    ]


def _shape_mask(
    category: str, size: int, cx: float, cy: float, radius: float, angle: float
) -> np.ndarray:
    """Boolean (H, W) mask of one shape, drawn without anti-aliasing so masks are exact."""
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    if category == "circle":
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=255)
    else:
        draw.polygon(_shape_polygon(category, cx, cy, radius, angle), fill=255)
    return np.asarray(canvas) > 0


#: Circumradius relative to half the drawn size, so that the three shapes look alike in size.
_RADIUS_SCALE = {"circle": 1.0, "square": 1.15, "triangle": 1.3}


def _random_shape(rng: np.random.Generator, size: int) -> tuple[int, np.ndarray]:
    """A random category and its mask, placed fully inside the image."""
    category = int(rng.integers(len(CATEGORIES)))
    name = CATEGORIES[category]
    radius = rng.uniform(*SIZE_RANGE) * size / 2 * _RADIUS_SCALE[name]
    margin = radius + 1
    cx, cy = rng.uniform(margin, size - margin, size=2)
    return category, _shape_mask(name, size, cx, cy, radius, rng.uniform(0, 2 * math.pi))


def _contrasting_colour(rng: np.random.Generator, references: list[np.ndarray]) -> np.ndarray:
    """A random RGB colour far enough from every colour in ``references``.

    The references are the mean background colour under the shape and the colours of the
    objects it overlaps, so that the edges of every object stay visible.
    """
    best, best_diff = rng.uniform(0, 255, size=3), -1.0
    for _ in range(64):
        colour = rng.uniform(0, 255, size=3)
        diff = min(float(np.abs(colour - ref).mean()) for ref in references)
        if diff >= MIN_CONTRAST:
            return colour
        if diff > best_diff:
            best, best_diff = colour, diff
    return best


def _fits(instances: np.ndarray, full_areas: list[int], mask: np.ndarray) -> bool:
    """Whether drawing ``mask`` on top leaves every earlier object at least MIN_VISIBLE visible."""
    after = np.where(mask, 0, instances)
    counts = np.bincount(after.ravel(), minlength=len(full_areas) + 1)[1:]
    return all(c >= MIN_VISIBLE * a for c, a in zip(counts, full_areas, strict=True))


def _visible_boxes(instances: np.ndarray, n: int) -> np.ndarray:
    """Tight xyxy pixel-edge boxes of each object's visible pixels."""
    boxes = np.zeros((n, 4), np.float32)
    for k in range(1, n + 1):
        ys, xs = np.nonzero(instances == k)
        boxes[k - 1] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    return boxes


def render_scene(rng: np.random.Generator, image_size: int) -> Scene:
    """Draw one image of 1-5 shapes on a textured background, with its ground truth."""
    bg = _background(rng, image_size)
    n_wanted = int(rng.integers(1, MAX_OBJECTS + 1))
    instances = np.zeros((image_size, image_size), np.int32)
    image = bg.copy()
    categories: list[int] = []
    colours: list[np.ndarray] = []
    full_areas: list[int] = []
    for _ in range(n_wanted):
        for _attempt in range(20):
            category, mask = _random_shape(rng, image_size)
            if mask.any() and _fits(instances, full_areas, mask):
                break
        else:
            continue  # no room left for another object: the image keeps fewer
        below = np.unique(instances[mask])
        references = [bg[mask].mean(axis=0)] + [colours[k - 1] for k in below if k > 0]
        colour = _contrasting_colour(rng, references)
        shade = 1.0 + rng.uniform(-0.15, 0.15) * np.linspace(-1, 1, image_size)[None, :, None]
        image = np.where(mask[..., None], colour * shade, image)
        instances[mask] = len(categories) + 1
        categories.append(category)
        colours.append(colour)
        full_areas.append(int(mask.sum()))
    image = image + rng.normal(0.0, rng.uniform(2.0, 12.0), size=image.shape)
    pixels = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return Scene(
        image=pixels,
        instances=instances,
        categories=np.asarray(categories, np.int64),
        boxes=_visible_boxes(instances, len(categories)),
        drawn_areas=np.asarray(full_areas, np.int64),
    )


def scenes(kind: str, split: str, *, seed: int, n: int, image_size: int) -> Iterator[Scene]:
    """The ``n`` scenes of one split; image ``i`` depends only on (seed, kind, split, i)."""
    for i in range(n):
        rng = np.random.default_rng([seed, _KIND_CODES[kind], _SPLIT_CODES[split], i])
        yield render_scene(rng, image_size)


# --------------------------------------------------------------------------------------------
# Writing


def _file_name(i: int) -> str:
    return f"{i:05d}.png"


def _save_png(array: np.ndarray, path: Path) -> None:
    Image.fromarray(array).save(path, format="PNG")


def _coco(scene_list: list[Scene], image_size: int) -> dict[str, Any]:
    """COCO instances JSON (ids from 1; boxes [x, y, w, h] of the visible pixels)."""
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for i, scene in enumerate(scene_list):
        images.append(
            {"id": i + 1, "file_name": _file_name(i), "width": image_size, "height": image_size}
        )
        for box, category, area in zip(scene.boxes, scene.categories, scene.areas, strict=True):
            x1, y1, x2, y2 = (float(v) for v in box)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": int(category) + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": float(area),
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(CATEGORIES)]
    return {"images": images, "annotations": annotations, "categories": categories}


def _write_detection(tmp: Path, params: dict[str, Any]) -> None:
    (tmp / "annotations").mkdir()
    for split in ("train", "calib", "eval"):
        folder = tmp / split
        folder.mkdir()
        scene_list = list(
            scenes(
                "detection",
                split,
                seed=params["seed"],
                n=params[f"n_{split}"],
                image_size=params["image_size"],
            )
        )
        for i, scene in enumerate(scene_list):
            _save_png(scene.image, folder / _file_name(i))
        if split != "calib":
            coco = _coco(scene_list, params["image_size"])
            (tmp / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco))


def _write_segmentation(tmp: Path, params: dict[str, Any]) -> None:
    for split in ("train", "calib", "eval"):
        images = tmp / split / "images"
        masks = tmp / split / "masks"
        images.mkdir(parents=True)
        if split != "calib":
            masks.mkdir()
        for i, scene in enumerate(
            scenes(
                "segmentation",
                split,
                seed=params["seed"],
                n=params[f"n_{split}"],
                image_size=params["image_size"],
            )
        ):
            _save_png(scene.image, images / _file_name(i))
            if split != "calib":
                _save_png(scene.mask, masks / _file_name(i))


def _params(kind: str, **params: int) -> dict[str, Any]:
    for name, value in params.items():
        if name.startswith("n_") and value < 1:
            raise ValueError(f"`{name} >= 1` must hold, but got ({name}={value}).")
    if params["image_size"] < 32:
        raise ValueError(
            f"`image_size >= 32` must hold, but got (image_size={params['image_size']})."
        )
    return {
        "kind": kind,
        "generator_version": GENERATOR_VERSION,
        "categories": list(CATEGORIES),
        **params,
    }


def _read_manifest(root: Path) -> dict[str, Any] | None:
    try:
        return json.loads((root / MANIFEST).read_text())
    except (FileNotFoundError, NotADirectoryError):
        return None


def _ensure_written(
    root: Path, params: dict[str, Any], write: Callable[[Path, dict[str, Any]], None]
) -> None:
    """Write the dataset into a temporary sibling folder and rename it to ``root``.

    The manifest is written last, so a folder holding it is complete. If ``root`` already holds
    the same dataset (same manifest), nothing is written; if another process wins the race to
    the rename, its copy is kept and ours discarded.
    """
    root = Path(root)
    existing = _read_manifest(root)
    if existing == params:
        return
    if existing is not None or (root.exists() and any(root.iterdir())):
        raise FileExistsError(
            f"{root} already holds other files or a different dataset "
            f"({existing!r}); expected {params!r}. Choose another folder or delete it."
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}.", suffix=".tmp"))
    try:
        write(tmp, params)
        (tmp / MANIFEST).write_text(json.dumps(params, indent=2))
        try:
            os.rename(tmp, root)  # replaces an empty folder; fails if another writer won
        except OSError:
            if _read_manifest(root) != params:
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_detection_dataset(
    root: Path,
    *,
    seed: int = 0,
    image_size: int = 64,
    n_train: int = 3000,
    n_calib: int = 128,
    n_eval: int = 200,
) -> DetectionPaths:
    """Write (once) the shapes detection dataset under ``root`` and return its paths.

    Layout: ``train/``, ``calib/``, ``eval/`` hold ``00000.png``…; ``annotations/`` holds
    ``instances_train.json`` and ``instances_eval.json``, COCO instances files (category ids
    1..3 in the order of :data:`CATEGORIES`). Calibration images have no annotations.
    """
    root = Path(root)
    params = _params(
        "detection",
        seed=seed,
        image_size=image_size,
        n_train=n_train,
        n_calib=n_calib,
        n_eval=n_eval,
    )
    _ensure_written(root, params, _write_detection)
    return DetectionPaths(
        root=root,
        train_images=root / "train",
        train_annotations=root / "annotations" / "instances_train.json",
        calib_images=root / "calib",
        eval_images=root / "eval",
        eval_annotations=root / "annotations" / "instances_eval.json",
    )


def write_segmentation_dataset(
    root: Path,
    *,
    seed: int = 0,
    image_size: int = 64,
    n_train: int = 1500,
    n_calib: int = 128,
    n_eval: int = 200,
) -> SegmentationPaths:
    """Write (once) the shapes segmentation dataset under ``root`` and return its paths.

    Layout: ``<split>/images/00000.png`` (RGB) and ``<split>/masks/00000.png`` (mode ``L``,
    pixel = index in :data:`SEG_CLASSES`) for train and eval; ``calib/images`` only.
    """
    root = Path(root)
    params = _params(
        "segmentation",
        seed=seed,
        image_size=image_size,
        n_train=n_train,
        n_calib=n_calib,
        n_eval=n_eval,
    )
    _ensure_written(root, params, _write_segmentation)
    return SegmentationPaths(
        root=root,
        train_images=root / "train" / "images",
        train_masks=root / "train" / "masks",
        calib_images=root / "calib" / "images",
        eval_images=root / "eval" / "images",
        eval_masks=root / "eval" / "masks",
    )
