"""The robustness suite: seeded image corruptions from albumentations, at ImageNet-C strengths.

Each corruption has five severities modelled on ImageNet-C (Hendrycks & Dietterich 2019); the
farm uses 1, 3 and 5 unless the job says otherwise. Blur sizes are given for 224-pixel images
and scaled to the image's size, but not below 0.3 of it (a 15-pixel blur would erase a 32-pixel
digit; on a 224-pixel photo it is a moderate blur). The same seed gives the same images.

Splits hold normalised float images; a corruption undoes the normalisation, works on the 8-bit
image (as the corruptions are defined), and normalises the result again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from workloads.data import Split

#: severity 1..5 -> the transform's strength (ImageNet-C's tables where it has one).
STRENGTH: dict[str, tuple[float, ...]] = {
    "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),  # std on [0, 1]
    "motion_blur": (7, 11, 15, 19, 23),  # kernel size at 224 px
    "defocus_blur": (3, 4, 6, 8, 10),  # disc radius at 224 px
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),  # added brightness
    "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),  # contrast factor
    "jpeg_compression": (25, 18, 15, 10, 7),  # JPEG quality
    "pixelate": (0.6, 0.5, 0.4, 0.3, 0.25),  # downscale factor
}


def _odd(n: float) -> int:
    k = max(3, round(n))
    return k if k % 2 else k + 1


def transform(name: str, severity: int, size: int) -> Any:
    """The albumentations transform of ``name`` at ``severity`` for images of ``size`` px."""
    import albumentations as A
    import cv2

    s = STRENGTH[name][severity - 1]
    # blur sizes scale with the image, but not below 0.3 of their 224-pixel size, so that the
    # severities of a small image still differ
    scale = max(size / 224.0, 0.3)
    if name == "gaussian_noise":
        return A.GaussNoise(std_range=(s, s), mean_range=(0.0, 0.0), p=1.0)
    if name == "motion_blur":
        k = _odd(s * scale)
        return A.MotionBlur(blur_limit=(k, k), allow_shifted=False, p=1.0)
    if name == "defocus_blur":
        r = max(1, round(s * scale))
        return A.Defocus(radius=(r, r), alias_blur=(0.1, 0.1), p=1.0)
    if name == "brightness":
        return A.RandomBrightnessContrast(brightness_limit=(s, s), contrast_limit=(0.0, 0.0), p=1.0)
    if name == "contrast":
        return A.RandomBrightnessContrast(
            brightness_limit=(0.0, 0.0), contrast_limit=(s - 1.0, s - 1.0), p=1.0
        )
    if name == "jpeg_compression":
        q = int(s)
        return A.ImageCompression(quality_range=(q, q), p=1.0)
    if name == "pixelate":
        return A.Downscale(
            scale_range=(s, s),
            interpolation_pair={"downscale": cv2.INTER_AREA, "upscale": cv2.INTER_NEAREST},
            p=1.0,
        )
    raise KeyError(f"unknown corruption {name!r}")


def corrupt_images(images: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """``images`` (N, H, W, 3) uint8, corrupted; image i uses seed ``seed + i``."""
    import albumentations as A

    t = transform(name, severity, min(images.shape[1:3]))
    out = np.empty_like(images)
    for i, img in enumerate(images):
        out[i] = A.Compose([t], seed=seed + i)(image=img)["image"]
    return out


def corrupt_split(
    split: Split,
    name: str,
    severity: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    seed: int = 0,
    channels_last: bool = False,
) -> Split:
    """``split`` with every image corrupted (labels, ground truth and facts kept). Its images
    are NCHW, or NHWC with ``channels_last``; the result keeps their layout."""
    from dataclasses import replace

    x = split.x if channels_last else split.x.transpose(0, 2, 3, 1)
    m = np.asarray(mean, dtype=np.float32)
    s = np.asarray(std, dtype=np.float32)
    pixels = np.clip((x * s + m) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    corrupted = corrupt_images(np.ascontiguousarray(pixels), name, severity, seed)
    out = (corrupted.astype(np.float32) / 255.0 - m) / s
    if not channels_last:
        out = out.transpose(0, 3, 1, 2)
    return replace(split, x=np.ascontiguousarray(out, dtype=np.float32))
