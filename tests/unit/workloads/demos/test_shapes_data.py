"""The embedded shapes datasets (workloads/demos/shapes_data.py): seeded scenes whose ground
truth matches their pixels, written to disk the way a user's data looks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from workloads.demos.shapes_data import (
    CATEGORIES,
    MANIFEST,
    MIN_VISIBLE,
    SEG_CLASSES,
    DetectionPaths,
    SegmentationPaths,
    render_scene,
    scenes,
    write_detection_dataset,
    write_segmentation_dataset,
)

SMALL = {"image_size": 64, "n_train": 6, "n_calib": 3, "n_eval": 4}


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def det_paths(tmp_path_factory: pytest.TempPathFactory) -> DetectionPaths:
    return write_detection_dataset(tmp_path_factory.mktemp("det") / "shapes", seed=0, **SMALL)


@pytest.fixture(scope="module")
def seg_paths(tmp_path_factory: pytest.TempPathFactory) -> SegmentationPaths:
    return write_segmentation_dataset(tmp_path_factory.mktemp("seg") / "shapes", seed=0, **SMALL)


# ------------------------------------------------------------------------------------------
# Generator


def test_same_seed_same_bytes_other_seed_other_data(
    det_paths: DetectionPaths, tmp_path: Path
) -> None:
    again = write_detection_dataset(tmp_path / "again", seed=0, **SMALL)
    other = write_detection_dataset(tmp_path / "other", seed=1, **SMALL)
    first = _tree_bytes(det_paths.root)
    assert first == _tree_bytes(again.root)
    second = _tree_bytes(other.root)
    assert first.keys() == second.keys()
    assert first["annotations/instances_eval.json"] != second["annotations/instances_eval.json"]
    assert all(first[k] != second[k] for k in first if k.endswith(".png"))


def test_an_image_does_not_depend_on_the_size_of_its_split() -> None:
    short = list(scenes("detection", "eval", seed=3, n=2, image_size=64))
    long = list(scenes("detection", "eval", seed=3, n=5, image_size=64))
    for a, b in zip(short, long, strict=False):
        assert np.array_equal(a.image, b.image)
    train = next(scenes("detection", "train", seed=3, n=1, image_size=64))
    assert not np.array_equal(train.image, short[0].image)


def test_scene_ground_truth_matches_its_pixels() -> None:
    rng = np.random.default_rng(7)
    counts = []
    for _ in range(40):
        scene = render_scene(rng, 64)
        n = len(scene.categories)
        counts.append(n)
        assert scene.image.shape == (64, 64, 3) and scene.image.dtype == np.uint8
        assert set(np.unique(scene.instances)) <= set(range(n + 1))
        for k in range(1, n + 1):
            ys, xs = np.nonzero(scene.instances == k)
            assert len(xs) > 0, "every annotated object is visible"
            expected = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
            assert scene.boxes[k - 1].tolist() == expected
        mask = scene.mask
        assert np.array_equal(mask == 0, scene.instances == 0)
        for k in range(1, n + 1):
            assert np.all(mask[scene.instances == k] == scene.categories[k - 1] + 1)
    assert min(counts) >= 1 and max(counts) <= 5 and len(set(counts)) >= 3


def test_objects_stay_mostly_visible_and_colours_contrast() -> None:
    """No shape is hidden below MIN_VISIBLE by later ones, and each stands out of its surround."""
    from scipy import ndimage

    rng = np.random.default_rng(11)
    for _ in range(30):
        scene = render_scene(rng, 64)
        img = scene.image.astype(np.float64)
        for k in range(1, len(scene.categories) + 1):
            inside = scene.instances == k
            ring = ndimage.binary_dilation(inside, iterations=2) & ~inside
            if inside.sum() < 20 or ring.sum() < 20:
                continue
            diff = np.abs(img[inside].mean(0) - img[ring].mean(0)).mean()
            assert diff > 15, f"object {k} blends into its surroundings ({diff=:.1f})"
        assert np.all(scene.areas >= MIN_VISIBLE * scene.drawn_areas)
        assert np.all(scene.areas <= scene.drawn_areas)
        assert scene.areas[-1] == scene.drawn_areas[-1], "the top object is whole"


# ------------------------------------------------------------------------------------------
# Files on disk


def test_detection_files_are_valid_coco(det_paths: DetectionPaths) -> None:
    assert {p.name for p in det_paths.calib_images.glob("*.png")} == {
        f"{i:05d}.png" for i in range(SMALL["n_calib"])
    }
    for images, annotation_file, n in (
        (det_paths.train_images, det_paths.train_annotations, SMALL["n_train"]),
        (det_paths.eval_images, det_paths.eval_annotations, SMALL["n_eval"]),
    ):
        coco = json.loads(annotation_file.read_text())
        assert [c["id"] for c in coco["categories"]] == list(range(1, len(CATEGORIES) + 1))
        assert [c["name"] for c in coco["categories"]] == list(CATEGORIES)
        assert len(coco["images"]) == n == len(list(images.glob("*.png")))
        sizes = {}
        for info in coco["images"]:
            with Image.open(images / info["file_name"]) as im:
                assert im.mode == "RGB"
                assert im.size == (info["width"], info["height"]) == (64, 64)
            sizes[info["id"]] = (info["width"], info["height"])
        ids = [a["id"] for a in coco["annotations"]]
        assert len(ids) == len(set(ids)) >= n
        for a in coco["annotations"]:
            x, y, w, h = a["bbox"]
            width, height = sizes[a["image_id"]]
            assert w > 0 and h > 0
            assert x >= 0 and y >= 0 and x + w <= width and y + h <= height
            assert 1 <= a["category_id"] <= len(CATEGORIES)
            assert a["iscrowd"] == 0
            assert 0 < a["area"] <= w * h
        per_image = np.bincount([a["image_id"] for a in coco["annotations"]], minlength=n + 1)
        assert per_image[1:].min() >= 1 and per_image.max() <= 5


def test_segmentation_files_have_matching_masks(seg_paths: SegmentationPaths) -> None:
    assert not (seg_paths.root / "calib" / "masks").exists()
    assert len(list(seg_paths.calib_images.glob("*.png"))) == SMALL["n_calib"]
    for images, masks, n in (
        (seg_paths.train_images, seg_paths.train_masks, SMALL["n_train"]),
        (seg_paths.eval_images, seg_paths.eval_masks, SMALL["n_eval"]),
    ):
        image_files = sorted(images.glob("*.png"))
        assert len(image_files) == n
        assert [p.name for p in sorted(masks.glob("*.png"))] == [p.name for p in image_files]
        for path in image_files:
            with Image.open(path) as im, Image.open(masks / path.name) as mk:
                assert im.mode == "RGB" and mk.mode == "L"
                assert mk.size == im.size == (64, 64)
                values = np.asarray(mk)
            assert values.max() < len(SEG_CLASSES)
            assert (values == 0).any() and (values > 0).any()


def test_writing_is_idempotent_and_refuses_a_different_dataset(
    det_paths: DetectionPaths, tmp_path: Path
) -> None:
    before = {p: p.stat().st_mtime_ns for p in det_paths.root.rglob("*")}
    assert write_detection_dataset(det_paths.root, seed=0, **SMALL) == det_paths
    assert {p: p.stat().st_mtime_ns for p in det_paths.root.rglob("*")} == before
    with pytest.raises(FileExistsError, match="different dataset"):
        write_detection_dataset(det_paths.root, seed=1, **SMALL)
    with pytest.raises(FileExistsError):  # a segmentation set is not a detection set
        write_segmentation_dataset(det_paths.root, seed=0, **SMALL)
    manifest = json.loads((det_paths.root / MANIFEST).read_text())
    assert manifest["kind"] == "detection" and manifest["seed"] == 0
    assert not list(det_paths.root.parent.glob(".*.tmp")), "no temporary folder left behind"


def test_an_empty_folder_is_filled_and_a_foreign_one_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    paths = write_segmentation_dataset(empty, seed=0, **SMALL)
    assert (paths.root / MANIFEST).exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="already holds"):
        write_detection_dataset(foreign, **SMALL)
    assert (foreign / "notes.txt").read_text() == "mine"
    with pytest.raises(ValueError, match="n_eval >= 1"):
        write_detection_dataset(tmp_path / "bad", **{**SMALL, "n_eval": 0})
