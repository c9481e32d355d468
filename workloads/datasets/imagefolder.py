"""ImageFolder data (one sub-folder per class) turned into in-memory splits, or synthetic inputs.

Preprocessing follows the job file: resize the shorter side to ``resize``, center-crop ``crop``,
scale to [0, 1], normalise with ``mean``/``std``. Classes are the sorted sub-folder names (as in
torchvision's ``ImageFolder``), so label ``i`` is the ``i``-th folder in sorted order.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from farm.errors import UsageError
from workloads.base import Split, WorkloadData
from workloads.datasets.config import DataConfig

if TYPE_CHECKING:
    import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".ppm", ".tif", ".tiff")


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def class_names(root: Path, key: str) -> list[str]:
    """Sorted class folder names of an ImageFolder; UsageError when it holds no images."""
    classes = sorted(p.name for p in Path(root).iterdir() if p.is_dir() and _images(p))
    if not classes:
        raise UsageError(
            f"`workload.data.{key}`: no images in {root} (expected one sub-folder per class "
            f"holding {', '.join(IMAGE_SUFFIXES)} files)"
        )
    return classes


def data_fingerprint(cfg: DataConfig) -> dict[str, Any]:
    """The data config plus, per directory, a hash of its file names, sizes and mtimes."""
    import hashlib

    out: dict[str, Any] = {"config": cfg.to_json()}
    for key in ("eval", "calib", "train"):
        root = getattr(cfg, key)
        if root is None:
            continue
        h = hashlib.sha256()
        for path in sorted(Path(root).rglob("*")):
            if path.is_file():
                st = path.stat()
                h.update(f"{path.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        out[key] = h.hexdigest()[:16]
    return out


def load_folder(
    root: Path,
    key: str,
    cfg: DataConfig,
    classes: list[str] | None = None,
    size: tuple[int, int] | None = None,
) -> Split:
    """All images of an ImageFolder, preprocessed, with labels in the order of ``classes``.

    ``size`` (H, W), when the job declares the model's input size, replaces resize + center
    crop by a plain resize to exactly that size (a non-square input, say for OCR)."""
    import numpy as np
    import torch
    from PIL import Image
    from torchvision.transforms import v2

    found = class_names(root, key)
    if classes is not None and found != classes:
        raise UsageError(
            f"`workload.data.{key}`: classes {found} in {root} differ from the eval classes "
            f"{classes}"
        )
    geometry = (
        [v2.Resize(list(size), antialias=True)]
        if size is not None
        else [v2.Resize(cfg.resize, antialias=True), v2.CenterCrop(cfg.crop)]
    )
    transform = v2.Compose(
        [
            v2.ToImage(),
            *geometry,
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(cfg.mean), list(cfg.std)),
        ]
    )
    xs, ys, infos = [], [], []
    for label, name in enumerate(found):
        for path in _images(Path(root) / name):
            infos.append({"file": f"{name}/{path.name}"})
            try:
                with Image.open(path) as img:
                    xs.append(transform(img.convert("RGB")).numpy())
            except OSError as exc:
                raise UsageError(
                    f"`workload.data.{key}`: cannot read image {path}: {exc}"
                ) from None
            ys.append(label)
    return Split(
        np.stack(xs).astype(np.float32), np.asarray(ys, dtype=np.int64), None, tuple(infos)
    )


def load_data(
    cfg: DataConfig,
    num_classes: int,
    input_shape: tuple[int, int, int] | None = None,
    size: tuple[int, int] | None = None,
) -> WorkloadData:
    """The workload's splits from ImageFolders, or seeded synthetic inputs when there are none.
    ``size``: the declared input (H, W), see :func:`load_folder`."""
    shape = input_shape or (3, cfg.crop, cfg.crop)
    if cfg.synthetic:
        return _synthetic(cfg, num_classes, shape)
    assert cfg.eval is not None
    classes = class_names(cfg.eval, "eval")
    if len(classes) != num_classes:
        raise UsageError(
            f"`workload.data.eval`: {len(classes)} classes in {cfg.eval} but the model has "
            f"{num_classes} outputs"
        )
    ev = load_folder(cfg.eval, "eval", cfg, classes, size)
    if tuple(ev.x.shape[1:]) != tuple(shape):
        raise UsageError(
            f"`workload.data.crop`: images come out as {tuple(ev.x.shape[1:])}, "
            f"the model takes {tuple(shape)}"
        )
    if cfg.calib is not None:
        calib = load_folder(cfg.calib, "calib", cfg, classes, size)
    else:
        ev, calib = _carve(ev, cfg.calib_fraction, cfg.seed)
    train = load_folder(cfg.train, "train", cfg, classes, size) if cfg.train else None
    return WorkloadData(
        train,
        calib,
        ev,
        num_classes,
        shape,
        has_labels=True,
        class_names=tuple(classes),
        normalization=(cfg.mean, cfg.std),
    )


def _carve(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """Split off a calibration part, stratified where every class has two images or more."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    assert split.y is not None
    if len(split) < 2:
        raise UsageError("`workload.data.eval`: needs at least 2 images to carve a calibration set")
    idx = np.arange(len(split))
    stratify = split.y if np.bincount(split.y).min() >= 2 else None
    try:
        keep, cal = train_test_split(idx, test_size=fraction, stratify=stratify, random_state=seed)
    except ValueError:
        keep, cal = train_test_split(idx, test_size=fraction, random_state=seed)
    keep, cal = np.sort(keep), np.sort(cal)
    return split.subset(keep), split.subset(cal)


def _synthetic(cfg: DataConfig, num_classes: int, shape: tuple[int, int, int]) -> WorkloadData:
    """Seeded standard-normal inputs (already 'normalised'); no labels, no train split."""
    import numpy as np

    rng = np.random.default_rng(cfg.seed)
    n = cfg.synthetic_samples

    def draw() -> np.ndarray:
        return rng.standard_normal((n, *shape), dtype=np.float32)

    calib, ev = Split(draw()), Split(draw())
    return WorkloadData(
        None, calib, ev, num_classes, shape, has_labels=False, normalization=(cfg.mean, cfg.std)
    )
