"""ImageFolder data (one sub-folder per class) turned into in-memory splits, or synthetic inputs.

Preprocessing follows the job file: resize the shorter side to ``resize``, center-crop ``crop``,
scale to [0, 1], normalise with ``mean``/``std``. Classes are the sorted sub-folder names (as in
torchvision's ``ImageFolder``), so label ``i`` is the ``i``-th folder in sorted order.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from workloads.data import Split, WorkloadData
from workloads.datasets.common import IMAGE_SUFFIXES, carve, list_images, synthetic_splits
from workloads.datasets.config import DataConfig


def class_names(root: Path, cfg: DataConfig, key: str) -> list[str]:
    """Sorted class folder names of an ImageFolder; an error naming ``workload.data.<key>``
    when it holds no images."""
    classes = sorted(p.name for p in Path(root).iterdir() if p.is_dir() and list_images(p))
    if not classes:
        raise cfg.error(
            key,
            f"one sub-folder per class holding {', '.join(IMAGE_SUFFIXES)} files",
            f"no images in {root}",
        )
    return classes


def data_fingerprint(cfg: DataConfig) -> dict[str, Any]:
    """The data config plus, per directory, a hash of its file names, sizes and mtimes."""
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

    found = class_names(root, cfg, key)
    if classes is not None and found != classes:
        raise cfg.error(key, f"the eval classes {classes}", f"classes {found} in {root}")
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
        for path in list_images(Path(root) / name):
            infos.append({"file": f"{name}/{path.name}"})
            try:
                with Image.open(path) as img:
                    xs.append(transform(img.convert("RGB")).numpy())
            except OSError as exc:
                raise cfg.error(key, "readable images", f"{path}: {exc}") from None
            ys.append(label)
    return Split(
        np.stack(xs).astype(np.float32),
        np.asarray(ys, dtype=np.int64),
        None,
        tuple(infos),
        tuple(str(info["file"]) for info in infos),
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
    normalization = (cfg.mean, cfg.std)
    if cfg.eval is None:
        calib, ev = synthetic_splits(cfg, shape)
        return WorkloadData(
            None, calib, ev, num_classes, shape, has_labels=False, normalization=normalization
        )
    classes = class_names(cfg.eval, cfg, "eval")
    if len(classes) != num_classes:
        raise cfg.error(
            "eval",
            f"one class folder per model output ({num_classes})",
            f"{len(classes)} classes in {cfg.eval}",
        )
    ev = load_folder(cfg.eval, "eval", cfg, classes, size)
    if tuple(ev.x.shape[1:]) != tuple(shape):
        raise cfg.error(
            "crop",
            f"a crop the model takes: images come out as {tuple(ev.x.shape[1:])}, the model "
            f"takes {tuple(shape)}",
            cfg.crop,
        )
    if cfg.calib is not None:
        calib = load_folder(cfg.calib, "calib", cfg, classes, size)
    else:
        ev, calib = carve(ev, cfg, stratify=ev.y)
    train = load_folder(cfg.train, "train", cfg, classes, size) if cfg.train else None
    return WorkloadData(
        train,
        calib,
        ev,
        num_classes,
        shape,
        has_labels=True,
        class_names=tuple(classes),
        normalization=normalization,
    )
