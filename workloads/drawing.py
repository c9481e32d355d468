"""Drawing predictions on eval images for the error gallery (Pillow; imported on use).

Every helper takes and returns an ``[H, W, 3]`` uint8 array and enlarges small images first
(a 32-pixel digit is unreadable at its own size), so tasks' drawing hooks
(:meth:`workloads.evidence.PerImage.draw`) stay a few lines.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Images are drawn at least this many pixels on their short side.
MIN_SIDE = 160
#: Colours by class index (boxes, masks), repeating.
PALETTE = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
)  # fmt: skip


def to_pixels(
    x: np.ndarray, mean: Sequence[float], std: Sequence[float], layout: str
) -> np.ndarray:
    """A normalised model input (``CHW`` or ``HWC``) back to ``[H, W, 3]`` uint8 pixels."""
    hwc = x if layout == "NHWC" else np.transpose(x, (1, 2, 0))
    rgb = hwc * np.asarray(std, np.float32) + np.asarray(mean, np.float32)
    if rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    return (np.clip(rgb[:, :, :3], 0, 1) * 255).round().astype(np.uint8)


def enlarged(image: np.ndarray) -> tuple[np.ndarray, float]:
    """The image scaled (nearest neighbour) so its short side is at least :data:`MIN_SIDE`,
    and the scale."""
    scale = max(1.0, MIN_SIDE / min(image.shape[:2]))
    if scale == 1.0:
        return image, 1.0
    rows = (np.arange(int(image.shape[0] * scale)) / scale).astype(int)
    cols = (np.arange(int(image.shape[1] * scale)) / scale).astype(int)
    return image[rows[:, None], cols[None, :]], scale


def caption(image: np.ndarray, text: str) -> np.ndarray:
    """The image, enlarged, with ``text`` on a dark band below it."""
    from PIL import Image, ImageDraw

    big, _ = enlarged(image)
    canvas = Image.new("RGB", (big.shape[1], big.shape[0] + 18), (30, 30, 30))
    canvas.paste(Image.fromarray(big), (0, 0))
    ImageDraw.Draw(canvas).text((4, big.shape[0] + 3), text[:60], fill=(255, 255, 255))
    return np.asarray(canvas)


def boxes(
    image: np.ndarray, xyxy: np.ndarray, labels: np.ndarray, scores: np.ndarray, text: str
) -> np.ndarray:
    """Boxes (in the image's pixels) outlined in their class's colour, with their scores."""
    from PIL import Image, ImageDraw

    big, scale = enlarged(image)
    picture = Image.fromarray(big)
    draw = ImageDraw.Draw(picture)
    for box, label, score in zip(np.asarray(xyxy) * scale, labels, scores, strict=True):
        colour = PALETTE[int(label) % len(PALETTE)]
        draw.rectangle([float(v) for v in box], outline=colour, width=2)
        draw.text((float(box[0]) + 2, float(box[1]) + 1), f"{score:.2f}", fill=colour)
    return caption(np.asarray(picture), text)


def mask(image: np.ndarray, label_map: np.ndarray, text: str) -> np.ndarray:
    """The label map (any size: scaled to the image) blended over the image, class by colour
    (class 0, the background, left clear)."""
    h, w = image.shape[:2]
    rows = (np.arange(h) * label_map.shape[0] // h).clip(0, label_map.shape[0] - 1)
    cols = (np.arange(w) * label_map.shape[1] // w).clip(0, label_map.shape[1] - 1)
    labels = label_map[rows[:, None], cols[None, :]].astype(int)
    colours = np.asarray(PALETTE, np.float32)[labels % len(PALETTE)]
    alpha = np.where(labels > 0, 0.55, 0.0)[:, :, None]
    blended = image.astype(np.float32) * (1 - alpha) + colours * alpha
    return caption(blended.round().astype(np.uint8), text)
