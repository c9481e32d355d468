"""Data of the OCR tasks: text-line images with their strings (recognition), page images with
their text regions (detection), read through the label files of
:mod:`workloads.datasets.ocr_labels`.

Recognition preprocessing is PaddleOCR's (``resize_norm_img`` of its text recogniser): the line
is resized to the model's input height ``H`` keeping its aspect ratio, its width capped at the
input width ``W`` (``min(W, ceil(H * w / h))``, OpenCV bilinear, as PaddleOCR does), scaled to
[0, 1], normalised with ``mean``/``std`` (PaddleOCR: 0.5 and 0.5) and right-padded with 0 (in
normalised space) to ``W``. A line wider than ``W / H`` is squeezed to ``W``: serve such lines
at a wider ``input_size``. Detection images are letterboxed (or resized) to the input size like
the detection task's (:class:`workloads.datasets.dense.Preprocess`), and the regions are judged
at the original size.

Each split keeps the image ids (``Split.ids``: the path as the label file writes it, relative
to the image folder), the ground truth (``Split.truth``: the string, or the text regions) and
what preprocessing did (``Split.info``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workloads.data import Split, WorkloadData
from workloads.datasets import ocr_labels
from workloads.datasets.common import IMAGE_SUFFIXES, carve, list_images, open_image
from workloads.datasets.config import DataConfig

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class LinePreprocess:
    """A text line → a ``(3, H, W)`` model input, PaddleOCR's way (see the module doc)."""

    size: tuple[int, int]  # (H, W): the height every line is brought to, the widest width
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __call__(self, image: Any) -> tuple[np.ndarray, dict[str, Any]]:
        import cv2
        import numpy as np

        rgb = np.asarray(image.convert("RGB"))
        h0, w0 = rgb.shape[:2]
        h, w = self.size
        width = max(1, min(w, math.ceil(h * (w0 / max(h0, 1)))))  # PaddleOCR: ceil(H * ratio)
        resized = cv2.resize(rgb, (width, h), interpolation=cv2.INTER_LINEAR)
        x = resized.astype(np.float32).transpose(2, 0, 1) / 255.0
        mean = np.asarray(self.mean, dtype=np.float32)[:, None, None]
        std = np.asarray(self.std, dtype=np.float32)[:, None, None]
        out = np.zeros((3, h, w), dtype=np.float32)
        out[:, :, :width] = (x - mean) / std
        return out, {"orig_hw": (h0, w0), "width": width}


@dataclass(frozen=True)
class BgrFirst:
    """``pre`` fed each image with its channels in BGR order, as OpenCV reads images and as
    PaddleOCR's tools feed its models (``[workload] channels = "bgr"``)."""

    pre: Any

    def __call__(self, image: Any) -> tuple[np.ndarray, dict[str, Any]]:
        import numpy as np
        from PIL import Image

        pixels = np.asarray(image.convert("RGB"))[..., ::-1]
        return self.pre(Image.fromarray(np.ascontiguousarray(pixels)))

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.pre.size)  # type: ignore[return-value]

    @property
    def mean(self) -> tuple[float, float, float]:
        return tuple(self.pre.mean)  # type: ignore[return-value]

    @property
    def std(self) -> tuple[float, float, float]:
        return tuple(self.pre.std)  # type: ignore[return-value]


def _split(items: list[tuple[str, Path, Any]], pre: Any, cfg: DataConfig, field: str) -> Split:
    """The images of ``items`` ((id, path, truth) each), preprocessed, in that order."""
    import numpy as np

    xs, infos = [], []
    for i, (image_id, path, _) in enumerate(items):
        x, info = pre(open_image(path, cfg, field))
        info.update(image_id=i, file=image_id)
        xs.append(x)
        infos.append(info)
    truth = [t for _, _, t in items]
    return Split(
        np.stack(xs).astype(np.float32, copy=False),
        None,
        None if all(t is None for t in truth) else tuple(truth),
        tuple(infos),
        tuple(image_id for image_id, _, _ in items),
    )


def _folder(folder: Path, cfg: DataConfig, field: str) -> list[tuple[str, Path, Any]]:
    paths = list_images(folder)
    if not paths:
        raise cfg.error(field, f"a folder of images ({', '.join(IMAGE_SUFFIXES)})", str(folder))
    return [(p.relative_to(folder).as_posix(), p, None) for p in paths]


def labelled_items(cfg: DataConfig, label_kind: str) -> list[tuple[str, Path, Any]]:
    """The eval images with their ground truth, as the label file lists them."""
    assert cfg.eval is not None and cfg.eval_labels is not None
    field = "workload.data.eval_labels"
    if label_kind == "text":
        rows = ocr_labels.read_rec_labels(cfg.eval_labels, cfg.eval, field, cfg.source)
    else:
        rows = ocr_labels.read_det_labels(cfg.eval_labels, cfg.eval, field, cfg.source)
    return [(r.id, r.path, r.truth) for r in rows]


def ocr_data(cfg: DataConfig, pre: Any, label_kind: str) -> WorkloadData:
    """Eval images with their labels, and calibration images (the ``calib`` folder, or a
    seeded part carved from the eval images, which then leave the eval split)."""
    ev = _split(labelled_items(cfg, label_kind), pre, cfg, "eval")
    if cfg.calib is not None:
        calib = _split(_folder(cfg.calib, cfg, "calib"), pre, cfg, "calib")
    else:
        ev, calib = carve(ev, cfg)
    return WorkloadData(
        None,
        calib,
        ev,
        0,
        (3, *pre.size),
        has_labels=True,
        normalization=(pre.mean, pre.std),
    )


def task_data(
    label_kind: str,
    cfg: DataConfig,
    size: tuple[int, int],
    letterbox: bool,
    bgr: bool = False,
) -> WorkloadData:
    """An OCR task's data: text lines (``label_kind = "text"``) or pages (``"regions"``) with
    their label file, fed in BGR order when ``bgr``; seeded synthetic inputs when the job gives
    no data."""
    from workloads.datasets import dense

    pre: Any
    if label_kind == "text":
        pre = LinePreprocess(size, cfg.mean, cfg.std)
    else:
        pre = dense.Preprocess(size, letterbox, cfg.mean, cfg.std)
    if cfg.synthetic:
        return dense.synthetic_data(cfg, dense.Preprocess(size, False, cfg.mean, cfg.std), 0)
    return ocr_data(cfg, BgrFirst(pre) if bgr else pre, label_kind)
