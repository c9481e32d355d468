"""The ICDAR 2015 text-detection protocol (RRC "Incidental Scene Text", task 4.1), as PaddleOCR's
``DetectionIoUEvaluator`` (from MhLiao/DB, itself from the RRC script) implements it.

Per image: ground-truth polygons that are not simple (self-intersecting, or of no area) are
skipped; those transcribed ``###`` are *don't care*. A detection is skipped the same way, and is
don't care when more than half of its area lies in one don't-care region. Then, in ground-truth
order and for each in detection order, a pair of cared-for, still unmatched polygons matches
when their IoU is **strictly above 0.5** (greedy, first come, one to one). Over the data set
(micro-averaged): precision = Σ matched / Σ cared detections, recall = Σ matched / Σ cared
ground truth (each 0 when its denominator is), ``hmean = 2PR / (P + R)`` (0 when both are 0).

Polygon areas and intersections: convex polygons (every quad a DB post-processing makes, nearly
every ICDAR box) with OpenCV's ``intersectConvexConvex`` (agrees with shapely to ~1e-6); other
polygons with pyclipper (integer coordinates at 1/1024 px). Both are imported inside the
functions: task modules import numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

IOU_CONSTRAINT = 0.5
AREA_PRECISION_CONSTRAINT = 0.5
#: pyclipper works in integers: coordinates are scaled by this first.
_CLIPPER_SCALE = 1024.0


@dataclass(frozen=True)
class Counts:
    """One image's (or a data set's) ICDAR counts."""

    gt_care: int
    det_care: int
    matched: int


def area(poly: np.ndarray) -> float:
    """The polygon's area (shoelace; vertices in order, either orientation)."""
    x, y = poly[:, 0].astype(np.float64), poly[:, 1].astype(np.float64)
    return abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))) / 2.0


def _cross(o: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    return float((a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]))


def _segments_cross(p1: np.ndarray, p2: np.ndarray, q1: np.ndarray, q2: np.ndarray) -> bool:
    """Whether two segments share a point (touching counts)."""
    d1, d2 = _cross(q1, q2, p1), _cross(q1, q2, p2)
    d3, d4 = _cross(p1, p2, q1), _cross(p1, p2, q2)
    if ((d1 > 0) != (d2 > 0) and d1 != 0 and d2 != 0) and (
        (d3 > 0) != (d4 > 0) and d3 != 0 and d4 != 0
    ):
        return True

    def on(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: float) -> bool:
        return (
            d == 0
            and min(a[0], b[0]) <= c[0] <= max(a[0], b[0])
            and (min(a[1], b[1]) <= c[1] <= max(a[1], b[1]))
        )

    return on(q1, q2, p1, d1) or on(q1, q2, p2, d2) or on(p1, p2, q1, d3) or on(p1, p2, q2, d4)


def is_simple(poly: np.ndarray) -> bool:
    """A valid, simple polygon: at least 3 vertices, some area, and no two non-adjacent edges
    touching (what shapely's ``is_valid and is_simple`` accepts for such rings)."""
    n = len(poly)
    if n < 3 or area(poly) <= 0:
        return False
    for i in range(n):
        for j in range(i + 1, n):
            if j == i + 1 or (i == 0 and j == n - 1):
                continue  # adjacent edges share a vertex
            if _segments_cross(poly[i], poly[(i + 1) % n], poly[j], poly[(j + 1) % n]):
                return False
    return True


def is_convex(poly: np.ndarray) -> bool:
    """Whether every turn of the (simple) polygon goes the same way."""
    n = len(poly)
    signs = {np.sign(_cross(poly[i], poly[(i + 1) % n], poly[(i + 2) % n])) for i in range(n)} - {
        0.0
    }
    return len(signs) <= 1


def intersection(a: np.ndarray, b: np.ndarray, convex: tuple[bool, bool]) -> float:
    """The area the two simple polygons share."""
    if convex[0] and convex[1]:
        import cv2

        shared, _ = cv2.intersectConvexConvex(
            np.ascontiguousarray(a, dtype=np.float32), np.ascontiguousarray(b, dtype=np.float32)
        )
        return max(float(shared), 0.0)
    import pyclipper

    clip = pyclipper.Pyclipper()
    clip.AddPath(pyclipper.scale_to_clipper(a.tolist(), _CLIPPER_SCALE), pyclipper.PT_SUBJECT, True)
    clip.AddPath(pyclipper.scale_to_clipper(b.tolist(), _CLIPPER_SCALE), pyclipper.PT_CLIP, True)
    paths = clip.Execute(pyclipper.CT_INTERSECTION, pyclipper.PFT_NONZERO, pyclipper.PFT_NONZERO)
    return sum(area(np.asarray(p, dtype=np.float64)) for p in paths) / _CLIPPER_SCALE**2


def evaluate_image(
    gt: Sequence[np.ndarray], gt_ignore: Sequence[bool], det: Sequence[np.ndarray]
) -> Counts:
    """One image's counts (see the module docstring)."""
    gts = [(np.asarray(p, np.float64), bool(i)) for p, i in zip(gt, gt_ignore, strict=True)]
    gts = [(p, i) for p, i in gts if is_simple(p)]
    dets = [p for p in (np.asarray(d, np.float64) for d in det) if is_simple(p)]
    gt_convex = [is_convex(p) for p, _ in gts]
    det_convex = [is_convex(p) for p in dets]
    gt_area = [area(p) for p, _ in gts]
    det_area = [area(p) for p in dets]
    dont_care = [k for k, (_, ignore) in enumerate(gts) if ignore]
    det_ignored = set()
    for d, poly in enumerate(dets):
        for k in dont_care:
            shared = intersection(gts[k][0], poly, (gt_convex[k], det_convex[d]))
            if det_area[d] > 0 and shared / det_area[d] > AREA_PRECISION_CONSTRAINT:
                det_ignored.add(d)
                break
    matched = 0
    gt_used = np.zeros(len(gts), dtype=bool)
    det_used = np.zeros(len(dets), dtype=bool)
    for g, (gpoly, ignore) in enumerate(gts):
        if ignore:
            continue
        for d, dpoly in enumerate(dets):
            if gt_used[g] or det_used[d] or d in det_ignored:
                continue
            shared = intersection(gpoly, dpoly, (gt_convex[g], det_convex[d]))
            union = gt_area[g] + det_area[d] - shared
            if union > 0 and shared / union > IOU_CONSTRAINT:
                gt_used[g] = det_used[d] = True
                matched += 1
    return Counts(len(gts) - len(dont_care), len(dets) - len(det_ignored), matched)


def hmean(
    matched: np.ndarray, gt_care: np.ndarray, det_care: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, hmean) of summed counts, element-wise (arrays or scalars)."""
    m = np.asarray(matched, dtype=np.float64)
    g = np.asarray(gt_care, dtype=np.float64)
    d = np.asarray(det_care, dtype=np.float64)
    recall = np.where(g > 0, m / np.where(g > 0, g, 1.0), 0.0)
    precision = np.where(d > 0, m / np.where(d > 0, d, 1.0), 0.0)
    total = precision + recall
    h = np.where(total > 0, 2.0 * precision * recall / np.where(total > 0, total, 1.0), 0.0)
    return precision, recall, h


def image_hmean(counts: Counts) -> float:
    """An image's own hmean, as the ICDAR script scores one image (no ground truth to find:
    recall 1, precision 1 unless something was detected)."""
    if counts.gt_care == 0:
        precision = 0.0 if counts.det_care > 0 else 1.0
        return 2 * precision / (precision + 1.0)
    recall = counts.matched / counts.gt_care
    precision = counts.matched / counts.det_care if counts.det_care else 0.0
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
