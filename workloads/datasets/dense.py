"""Data of the dense tasks: COCO detection folders and image + mask segmentation folders.

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

from farm.errors import UsageError
from workloads.base import Split, WorkloadData
from workloads.datasets.config import DataConfig
from workloads.datasets.imagefolder import IMAGE_SUFFIXES

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


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _open(path: Path, field: str) -> Any:
    from PIL import Image

    try:
        img = Image.open(path)
        img.load()
    except OSError as exc:
        raise UsageError(f"`workload.data.{field}`: cannot read image {path}: {exc}") from None
    return img


def _stack(xs: list[Any], infos: list[dict[str, Any]], truth: list[Any] | None) -> Split:
    import numpy as np

    return Split(
        np.stack(xs).astype(np.float32, copy=False),
        None,
        None if truth is None else tuple(truth),
        tuple(infos),
    )


# -- detection -------------------------------------------------------------------------------


def coco_split(images_dir: Path, coco: CocoFile, pre: Preprocess, field: str) -> Split:
    """Every image the COCO file lists, preprocessed, with its boxes as xyxy ground truth."""
    import numpy as np

    xs, infos, truth = [], [], []
    for image_id, entry in sorted(coco.images.items()):
        path = images_dir / entry["file_name"]
        if not path.is_file():
            raise UsageError(
                f"{coco.path} (`workload.data.{field}_annotations`): images[id={image_id}]."
                f"file_name {entry['file_name']!r} is not in `workload.data.{field}` "
                f"({images_dir})"
            )
        img = _open(path, field)
        size = (entry.get("height"), entry.get("width"))
        if None not in size and size != (img.height, img.width):
            raise UsageError(
                f"{coco.path}: images[id={image_id}] says {size[1]}×{size[0]} but "
                f"{path} is {img.width}×{img.height} (width × height)"
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


def image_split(images_dir: Path, pre: Preprocess, field: str) -> Split:
    """Every image of a folder, preprocessed, without ground truth (calibration images)."""
    paths = list_images(images_dir)
    if not paths:
        raise UsageError(
            f"`workload.data.{field}`: no images in {images_dir} ({', '.join(IMAGE_SUFFIXES)})"
        )
    xs, infos = [], []
    for i, path in enumerate(paths):
        x, info = pre(_open(path, field))
        info.update(image_id=i, file=path.name)
        xs.append(x)
        infos.append(info)
    return _stack(xs, infos, None)


def detection_data(
    cfg: DataConfig, pre: Preprocess, num_classes: int
) -> tuple[WorkloadData, CocoFile]:
    """Eval images with their COCO annotations, and calibration images (a folder, or carved
    from the eval images: those images then leave the eval split)."""
    from workloads.datasets.coco import read_coco

    assert cfg.eval is not None and cfg.eval_annotations is not None
    coco = read_coco(cfg.eval_annotations, "workload.data.eval_annotations")
    if not any(a for anns in coco.annotations.values() for a in anns):
        raise UsageError(
            f"{cfg.eval_annotations} (`workload.data.eval_annotations`): field `annotations`: "
            "expected at least one box to evaluate against, got none"
        )
    ev = coco_split(cfg.eval, coco, pre, "eval")
    if cfg.calib is not None:
        calib = image_split(cfg.calib, pre, "calib")
    else:
        ev, calib = carve(ev, cfg.calib_fraction, cfg.seed)
    data = WorkloadData(
        None,
        calib,
        ev,
        num_classes or len(coco.categories),
        (3, *pre.size),
        has_labels=True,
        class_names=coco.categories,
        normalization=(pre.mean, pre.std),
    )
    return data, coco


def carve(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """A seeded random ``fraction`` of the images becomes the calibration split; the rest
    stays for evaluation (never both)."""
    import numpy as np

    n = len(split)
    if n < 2:
        raise UsageError("`workload.data.eval`: needs at least 2 images to carve a calibration set")
    k = min(n - 1, max(1, round(n * fraction)))
    cal = np.sort(np.random.default_rng(seed).permutation(n)[:k])
    keep = np.setdiff1d(np.arange(n), cal)
    return split.subset(keep), split.subset(cal)


# -- segmentation ----------------------------------------------------------------------------


def mask_split(
    images_dir: Path, masks_dir: Path, pre: Preprocess, num_classes: int, field: str
) -> Split:
    """Images with their class-index masks (a PNG per image, same stem; 255 = ignore)."""
    import numpy as np

    paths = list_images(images_dir)
    if not paths:
        raise UsageError(
            f"`workload.data.{field}`: no images in {images_dir} ({', '.join(IMAGE_SUFFIXES)})"
        )
    masks = {p.stem: p for p in list_images(masks_dir)}
    xs, infos, truth = [], [], []
    for i, path in enumerate(paths):
        mask_path = masks.get(path.stem)
        where = f"`workload.data.{field}_masks`"
        if mask_path is None:
            raise UsageError(f"{where}: no mask for image {path.name} in {masks_dir}")
        img = _open(path, field)
        mask_img = _open(mask_path, f"{field}_masks")
        if mask_img.mode not in ("L", "P", "I", "I;16"):
            raise UsageError(
                f"{where}: {mask_path} is a {mask_img.mode} image; expected one channel of "
                "class indices (mode L or P)"
            )
        mask = np.asarray(mask_img).astype(np.int64)
        if mask.shape != (img.height, img.width):
            raise UsageError(
                f"{where}: {mask_path} is {mask.shape[1]}×{mask.shape[0]} but its image "
                f"{path.name} is {img.width}×{img.height}: a mask must have its image's size"
            )
        bad = mask[(mask != MASK_IGNORE) & ((mask < 0) | (mask >= num_classes))]
        if bad.size:
            raise UsageError(
                f"{where}: {mask_path} holds class {int(bad[0])}; expected class indices "
                f"0..{num_classes - 1} (`workload.num_classes` = {num_classes}) or "
                f"{MASK_IGNORE} (ignore)"
            )
        x, info = pre(img)
        info.update(image_id=i, file=path.name)
        xs.append(x)
        infos.append(info)
        truth.append(mask.astype(np.uint8))
    return _stack(xs, infos, truth)


def segmentation_data(
    cfg: DataConfig, pre: Preprocess, num_classes: int, class_names: tuple[str, ...] | None
) -> WorkloadData:
    assert cfg.eval is not None and cfg.eval_masks is not None
    ev = mask_split(cfg.eval, cfg.eval_masks, pre, num_classes, "eval")
    if cfg.calib is not None:
        calib = image_split(cfg.calib, pre, "calib")
    else:
        ev, calib = carve(ev, cfg.calib_fraction, cfg.seed)
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


def synthetic_data(
    cfg: DataConfig, pre: Preprocess, num_classes: int, class_names: Any = None
) -> WorkloadData:
    """Seeded random images in [0, 1], normalised: no ground truth, quality is fidelity."""
    import numpy as np

    rng = np.random.default_rng(cfg.seed)
    h, w = pre.size
    mean = np.asarray(pre.mean, dtype=np.float32)[:, None, None]
    std = np.asarray(pre.std, dtype=np.float32)[:, None, None]

    def draw() -> Split:
        x = (rng.random((cfg.synthetic_samples, 3, h, w), dtype=np.float32) - mean) / std
        infos = tuple({"image_id": i} for i in range(cfg.synthetic_samples))
        return Split(x.astype(np.float32), None, None, infos)

    calib, ev = draw(), draw()
    return WorkloadData(
        None,
        calib,
        ev,
        num_classes,
        (3, h, w),
        has_labels=False,
        class_names=class_names,
        normalization=(pre.mean, pre.std),
    )


def unlabelled_data(cfg: DataConfig, pre: Preprocess) -> WorkloadData:
    """A folder of images without ground truth (the generic task): eval images, and calibration
    images from their own folder or carved from the eval ones."""
    assert cfg.eval is not None
    ev = image_split(cfg.eval, pre, "eval")
    if cfg.calib is not None:
        calib = image_split(cfg.calib, pre, "calib")
    else:
        ev, calib = carve(ev, cfg.calib_fraction, cfg.seed)
    return WorkloadData(
        None, calib, ev, 0, (3, *pre.size), has_labels=False, normalization=(pre.mean, pre.std)
    )


def task_data(
    task: str,
    cfg: DataConfig,
    pre: Preprocess,
    num_classes: int,
    section: dict[str, Any],
) -> WorkloadData:
    """A dense or generic workload's data as its ``[workload.data]`` table describes it:
    synthetic images, COCO detections, image + mask folders (class names from ``section``, the
    ``[workload]`` table), or a folder of images alone (generic)."""
    from workloads import tasks

    if task == "generic":
        return synthetic_data(cfg, pre, 0) if cfg.synthetic else unlabelled_data(cfg, pre)

    if task == "detection":
        if cfg.synthetic:
            return synthetic_data(cfg, pre, num_classes)
        data, _ = detection_data(cfg, pre, num_classes)
        return data
    names = tasks.class_names(section, num_classes)
    if cfg.synthetic:
        return synthetic_data(cfg, pre, num_classes, names)
    return segmentation_data(cfg, pre, num_classes, names)
