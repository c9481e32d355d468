"""Data of the tasks judged per image region: COCO detection folders, image + mask segmentation
folders, and folders of images without ground truth (the generic task).

Preprocessing (stated in docs/workloads.md): each image is converted to RGB, brought to the
model's input size ``(H, W)`` — a *letterbox* (scale to fit keeping the aspect ratio, pad the
rest with grey 114 evenly on both sides, as Ultralytics does) or a plain *resize* — scaled to
[0, 1] and normalised with ``mean``/``std``. What was done to each image (its scale and padding,
its original size) is kept in ``Split.info``, so predictions map back to the original image and
are judged there, against the ground truth as the user wrote it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farm.errors import SpecError
from workloads.data import Split, WorkloadData
from workloads.datasets.common import (
    IMAGE_SUFFIXES,
    carve,
    list_images,
    open_image,
    synthetic_splits,
)
from workloads.datasets.config import DataConfig

if TYPE_CHECKING:
    import numpy as np

    from workloads.datasets.coco import CocoFile

#: Grey used to pad a letterboxed image (Ultralytics' value).
LETTERBOX_PAD = 114
MASK_IGNORE = 255


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes a model input."""

    size: tuple[int, int]  # (H, W)
    letterbox: bool
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __call__(self, image: Any) -> tuple[np.ndarray, dict[str, Any]]:
        """``image`` (a PIL image) → (C, H, W) float32 input and its facts (scale, padding,
        original size)."""
        import numpy as np
        from PIL import Image

        image = image.convert("RGB")
        w0, h0 = image.size
        h, w = self.size
        if self.letterbox:
            scale = min(h / h0, w / w0)
            nh, nw = max(1, round(h0 * scale)), max(1, round(w0 * scale))
            canvas = Image.new("RGB", (w, h), (LETTERBOX_PAD,) * 3)
            top, left = (h - nh) // 2, (w - nw) // 2
            canvas.paste(image.resize((nw, nh), Image.Resampling.BILINEAR), (left, top))
            info = {"scale": (nh / h0, nw / w0), "pad": (float(top), float(left))}
            image = canvas
        else:
            if (w0, h0) != (w, h):
                image = image.resize((w, h), Image.Resampling.BILINEAR)
            info = {"scale": (h / h0, w / w0), "pad": (0.0, 0.0)}
        x = np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 255.0
        mean = np.asarray(self.mean, dtype=np.float32)[:, None, None]
        std = np.asarray(self.std, dtype=np.float32)[:, None, None]
        info["orig_hw"] = (h0, w0)
        return (x - mean) / std, info


def _stack(xs: list[Any], infos: list[dict[str, Any]], truth: list[Any] | None) -> Split:
    import numpy as np

    return Split(
        np.stack(xs).astype(np.float32, copy=False),
        None,
        None if truth is None else tuple(truth),
        tuple(infos),
        tuple(str(info["file"]) for info in infos),
    )


def _listed(images_dir: Path, cfg: DataConfig, field: str) -> list[Path]:
    paths = list_images(images_dir)
    if not paths:
        raise cfg.error(field, f"a folder of images ({', '.join(IMAGE_SUFFIXES)})", str(images_dir))
    return paths


# -- detection -------------------------------------------------------------------------------


def coco_split(
    images_dir: Path, coco: CocoFile, pre: Preprocess, cfg: DataConfig, field: str
) -> Split:
    """Every image the COCO file lists, preprocessed, with its boxes as xyxy ground truth."""
    import numpy as np

    from workloads.datasets.coco import coco_source

    where = coco_source(coco.path, f"workload.data.{field}_annotations", cfg.source)
    xs, infos, truth = [], [], []
    for image_id, entry in sorted(coco.images.items()):
        path = images_dir / entry["file_name"]
        if not path.is_file():
            raise SpecError(
                where,
                f"images[id={image_id}].file_name",
                f"an image in `workload.data.{field}` ({images_dir})",
                entry["file_name"],
            )
        img = open_image(path, cfg, field)
        size = (entry.get("height"), entry.get("width"))
        if None not in size and size != (img.height, img.width):
            raise SpecError(
                where,
                f"images[id={image_id}]",
                f"the size of {path}, {img.width}×{img.height} (width × height)",
                f"{size[1]}×{size[0]}",
            )
        x, info = pre(img)
        info.update(image_id=image_id, file=entry["file_name"])
        anns = coco.annotations[image_id]
        boxes = np.asarray([a["bbox"] for a in anns], dtype=np.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        xs.append(x)
        infos.append(info)
        truth.append(
            {
                "boxes": boxes,
                "labels": np.asarray([a["category_id"] for a in anns], dtype=np.int64),
                "iscrowd": np.asarray([a["iscrowd"] for a in anns], dtype=np.int64),
            }
        )
    return _stack(xs, infos, truth)


def image_split(images_dir: Path, pre: Preprocess, cfg: DataConfig, field: str) -> Split:
    """Every image of a folder, preprocessed, without ground truth (calibration images)."""
    xs, infos = [], []
    for i, path in enumerate(_listed(images_dir, cfg, field)):
        x, info = pre(open_image(path, cfg, field))
        info.update(image_id=i, file=path.name)
        xs.append(x)
        infos.append(info)
    return _stack(xs, infos, None)


def read_eval_coco(cfg: DataConfig) -> CocoFile:
    """The eval split's COCO file, checked to hold at least one box."""
    from workloads.datasets.coco import coco_source, read_coco

    assert cfg.eval_annotations is not None
    field = "workload.data.eval_annotations"
    coco = read_coco(cfg.eval_annotations, field, cfg.source)
    if not any(a for anns in coco.annotations.values() for a in anns):
        raise SpecError(
            coco_source(cfg.eval_annotations, field, cfg.source),
            "annotations",
            "at least one box to evaluate against",
            [],
        )
    return coco


def detection_data(cfg: DataConfig, pre: Preprocess, num_classes: int) -> WorkloadData:
    """Eval images with their COCO annotations, and calibration images (a folder, or carved
    from the eval images: those images then leave the eval split)."""
    assert cfg.eval is not None
    coco = read_eval_coco(cfg)
    ev = coco_split(cfg.eval, coco, pre, cfg, "eval")
    ev, calib = _with_calibration(ev, cfg, pre)
    return WorkloadData(
        None,
        calib,
        ev,
        num_classes or len(coco.categories),
        (3, *pre.size),
        has_labels=True,
        class_names=coco.categories,
        normalization=(pre.mean, pre.std),
    )


def keypoints_data(cfg: DataConfig, pre: Preprocess, num_classes: int) -> WorkloadData:
    """Eval images with their boxes and keypoints (a COCO person-keypoints file, see
    :mod:`workloads.datasets.coco_keypoints`), and calibration images (a folder, or carved from
    the eval images); stable ids are the images' file names."""
    from dataclasses import replace

    from workloads.datasets.coco_keypoints import read_keypoints, with_keypoints

    assert cfg.eval is not None and cfg.eval_annotations is not None
    kp = read_keypoints(cfg.eval_annotations, "workload.data.eval_annotations", cfg.source)
    ev = with_keypoints(coco_split(cfg.eval, kp.coco, pre, cfg, "eval"), kp)
    ev, calib = _with_calibration(ev, cfg, pre)
    if calib.ids is None:
        calib = replace(calib, ids=tuple(str(i["file"]) for i in calib.info or ()))
    return WorkloadData(
        None,
        calib,
        ev,
        num_classes or len(kp.coco.categories),
        (3, *pre.size),
        has_labels=True,
        class_names=kp.coco.categories,
        normalization=(pre.mean, pre.std),
    )


def _with_calibration(ev: Split, cfg: DataConfig, pre: Preprocess) -> tuple[Split, Split]:
    """(eval, calibration): the calib folder's images, or a random part carved from eval."""
    if cfg.calib is not None:
        return ev, image_split(cfg.calib, pre, cfg, "calib")
    return carve(ev, cfg)


# -- segmentation ----------------------------------------------------------------------------


def mask_split(
    images_dir: Path,
    masks_dir: Path,
    pre: Preprocess,
    num_classes: int,
    cfg: DataConfig,
    field: str,
) -> Split:
    """Images with their class-index masks (a PNG per image, same stem; 255 = ignore)."""
    xs, infos, truth = [], [], []
    masks = {p.stem: p for p in list_images(masks_dir)}
    for i, path in enumerate(_listed(images_dir, cfg, field)):
        mask_path = masks.get(path.stem)
        if mask_path is None:
            raise cfg.error(f"{field}_masks", f"a mask for every image, in {masks_dir}", path.name)
        img = open_image(path, cfg, field)
        mask_img = open_image(mask_path, cfg, f"{field}_masks")
        truth.append(_mask(mask_img, mask_path, img, path.name, num_classes, cfg, field))
        x, info = pre(img)
        info.update(image_id=i, file=path.name)
        xs.append(x)
        infos.append(info)
    return _stack(xs, infos, truth)


def _mask(
    mask_img: Any,
    mask_path: Path,
    img: Any,
    image_name: str,
    num_classes: int,
    cfg: DataConfig,
    field: str,
) -> np.ndarray:
    """A checked class-index mask: one channel, its image's size, known classes or 255."""
    import numpy as np

    key = f"{field}_masks"
    if mask_img.mode not in ("L", "P", "I", "I;16"):
        raise cfg.error(
            key,
            "one channel of class indices (mode L or P)",
            f"{mask_path}: a {mask_img.mode} image",
        )
    mask = np.asarray(mask_img).astype(np.int64)
    if mask.shape != (img.height, img.width):
        raise cfg.error(
            key,
            f"a mask of its image's size ({image_name} is {img.width}×{img.height})",
            f"{mask_path}: {mask.shape[1]}×{mask.shape[0]}",
        )
    bad = mask[(mask != MASK_IGNORE) & ((mask < 0) | (mask >= num_classes))]
    if bad.size:
        raise cfg.error(
            key,
            f"class indices 0..{num_classes - 1} (`workload.num_classes` = {num_classes}) or "
            f"{MASK_IGNORE} (ignore)",
            f"{mask_path}: class {int(bad[0])}",
        )
    return mask.astype(np.uint8)


def segmentation_data(
    cfg: DataConfig, pre: Preprocess, num_classes: int, class_names: tuple[str, ...] | None
) -> WorkloadData:
    """Eval images with their masks, and calibration images (a folder, or carved from eval)."""
    assert cfg.eval is not None and cfg.eval_masks is not None
    ev = mask_split(cfg.eval, cfg.eval_masks, pre, num_classes, cfg, "eval")
    ev, calib = _with_calibration(ev, cfg, pre)
    return WorkloadData(
        None,
        calib,
        ev,
        num_classes,
        (3, *pre.size),
        has_labels=True,
        class_names=class_names,
        normalization=(pre.mean, pre.std),
    )


# -- without ground truth --------------------------------------------------------------------


def synthetic_data(
    cfg: DataConfig, pre: Preprocess, num_classes: int, class_names: Any = None
) -> WorkloadData:
    """Seeded random images in [0, 1], normalised: no ground truth, quality is fidelity."""
    calib, ev = synthetic_splits(cfg, (3, *pre.size), (pre.mean, pre.std))
    return WorkloadData(
        None,
        calib,
        ev,
        num_classes,
        (3, *pre.size),
        has_labels=False,
        class_names=class_names,
        normalization=(pre.mean, pre.std),
    )


def unlabelled_data(cfg: DataConfig, pre: Preprocess) -> WorkloadData:
    """A folder of images without ground truth (the generic task): eval images, and calibration
    images from their own folder or carved from the eval ones."""
    assert cfg.eval is not None
    ev, calib = _with_calibration(image_split(cfg.eval, pre, cfg, "eval"), cfg, pre)
    return WorkloadData(
        None, calib, ev, 0, (3, *pre.size), has_labels=False, normalization=(pre.mean, pre.std)
    )


def task_data(
    truth: tuple[str, ...],
    cfg: DataConfig,
    pre: Preprocess,
    num_classes: int,
    class_names: tuple[str, ...] | None = None,
) -> WorkloadData:
    """A workload's data as its ``[workload.data]`` table describes it, by the kind of ground
    truth its task reads (``Task.truth``): COCO detections, image + mask folders (per-class
    metrics named by ``class_names``), or, for a task without ground truth, a folder of images
    alone; seeded synthetic images when there is no data."""
    if cfg.synthetic:
        return synthetic_data(cfg, pre, num_classes, class_names)
    if "keypoints" in truth:  # a COCO person-keypoints file (boxes and keypoints)
        return keypoints_data(cfg, pre, num_classes)
    if "annotations" in truth:
        return detection_data(cfg, pre, num_classes)
    if "masks" in truth:
        return segmentation_data(cfg, pre, num_classes, class_names)
    return unlabelled_data(cfg, pre)
