"""DB (Differentiable Binarization) post-processing: a text probability map → scored quads.

PaddleOCR's ``DBPostProcess`` (and RapidOCR's copy of it), step by step: the map is thresholded
at ``threshold`` (optionally dilated by a 2×2 kernel), each connected region's contour gets its
minimum-area rectangle, which is dropped when its short side is under 3 px or when the mean
probability inside it (the "fast" box score) is under ``box_threshold``; the rectangle is then
grown by ``unclip_ratio`` (pyclipper's polygon offset by ``area × ratio / perimeter``, as DB
shrank the text regions by that much when it was trained), re-fitted with a minimum-area
rectangle, and dropped when its short side is under 5 px. Quads are in map pixels, clockwise
from the top-left. OpenCV and pyclipper are imported inside the functions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

MIN_SIZE = 3


def mini_box(points: np.ndarray) -> tuple[np.ndarray, float]:
    """The minimum-area rectangle of ``points`` as a clockwise quad from the top-left, and its
    short side."""
    import cv2

    rect = cv2.minAreaRect(np.asarray(points, dtype=np.float32).reshape(-1, 1, 2))
    pts = sorted(cv2.boxPoints(rect).tolist(), key=lambda p: p[0])
    left = sorted(pts[:2], key=lambda p: p[1])
    right = sorted(pts[2:], key=lambda p: p[1])
    quad = np.asarray([left[0], right[0], right[1], left[1]], dtype=np.float32)
    return quad, float(min(rect[1]))


def box_score(prob: np.ndarray, quad: np.ndarray) -> float:
    """The mean probability inside ``quad`` (DB's "fast" score: the quad rasterised over its
    bounding box)."""
    import cv2

    h, w = prob.shape
    xmin = int(np.clip(np.floor(quad[:, 0].min()), 0, w - 1))
    xmax = int(np.clip(np.ceil(quad[:, 0].max()), 0, w - 1))
    ymin = int(np.clip(np.floor(quad[:, 1].min()), 0, h - 1))
    ymax = int(np.clip(np.ceil(quad[:, 1].max()), 0, h - 1))
    mask = np.zeros((ymax - ymin + 1, xmax - xmin + 1), dtype=np.uint8)
    shifted = (quad - np.asarray([xmin, ymin], dtype=np.float32)).astype(np.int32)
    cv2.fillPoly(mask, [shifted.reshape(-1, 2)], 1)  # type: ignore[call-overload]
    return float(cv2.mean(prob[ymin : ymax + 1, xmin : xmax + 1], mask)[0])


def unclip(quad: np.ndarray, ratio: float) -> np.ndarray | None:
    """``quad`` grown by ``area × ratio / perimeter`` (rounded joins); None if it vanished."""
    import pyclipper

    poly = quad.astype(np.float64)
    x, y = poly[:, 0], poly[:, 1]
    surface = abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))) / 2.0
    perimeter = float(np.linalg.norm(poly - np.roll(poly, -1, axis=0), axis=1).sum())
    if perimeter <= 0:
        return None
    offset = pyclipper.PyclipperOffset()
    offset.AddPath(poly.tolist(), pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    grown: Any = offset.Execute(surface * ratio / perimeter)
    if not grown:
        return None
    return np.asarray(grown[0], dtype=np.float32)


def db_quads(
    prob: np.ndarray,
    threshold: float,
    box_threshold: float,
    unclip_ratio: float,
    max_candidates: int,
    dilation: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """(quads [K, 4, 2] in map pixels, scores [K]) of one probability map ``[H, W]``."""
    import cv2

    prob = np.asarray(prob, dtype=np.float32)
    mask: Any = (prob > threshold).astype(np.uint8)
    if dilation:
        mask = cv2.dilate(mask, np.ones((2, 2), dtype=np.uint8))
    contours, _ = cv2.findContours(mask * 255, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    quads, scores = [], []
    for contour in contours[:max_candidates]:
        quad, side = mini_box(contour)
        if side < MIN_SIZE:
            continue
        score = box_score(prob, quad)
        if score < box_threshold:
            continue
        grown = unclip(quad, unclip_ratio)
        if grown is None:
            continue
        quad, side = mini_box(grown)
        if side < MIN_SIZE + 2:
            continue
        quads.append(quad)
        scores.append(score)
    if not quads:
        return np.zeros((0, 4, 2), dtype=np.float32), np.zeros(0, dtype=np.float32)
    return np.stack(quads).astype(np.float32), np.asarray(scores, dtype=np.float32)
