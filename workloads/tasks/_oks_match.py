"""COCO keypoint matching per image and its accumulation over any multiset of images.

The same protocol as :func:`workloads.tasks._oks_eval.evaluate_keypoints` (pycocotools'
``COCOeval`` with ``iouType="keypoints"``, area range "all", 20 detections per image), written
out in numpy so that it can be split in two: :func:`match_image` runs once per image (which
detection matches which ground truth at each OKS threshold), :func:`accumulate` turns the matches
of all images, each weighted by how often a resample drew it, into AP and AR. With every weight 1
it is COCO's accumulation step for step, so the AP equals the library's (the tests check it);
that is what per-image evidence and its paired bootstrap intervals need.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workloads.tasks._oks_eval import MAX_DETS, OKS_THRESHOLDS, RECALL_POINTS

#: pycocotools' ``np.spacing(1)``: added to the area and to precision's denominator.
EPS = float(np.spacing(1))


def oks(
    dt_xy: np.ndarray,
    gt_kps: np.ndarray,
    gt_boxes: np.ndarray,
    gt_areas: np.ndarray,
    sigmas: np.ndarray,
) -> np.ndarray:
    """Object keypoint similarity ``[D, G]`` of detections' keypoints ``dt_xy`` ``[D, K, 2]``
    with ground truths ``gt_kps`` ``[G, K, 3]`` (boxes ``[G, 4]`` as x, y, w, h; areas ``[G]``).

    A ground truth without a labelled keypoint is compared with its box enlarged by its own size
    on each side (the distance outside it), as pycocotools does."""
    out = np.zeros((len(dt_xy), len(gt_kps)))
    if out.size == 0:
        return out
    var = (np.asarray(sigmas, dtype=np.float64) * 2) ** 2
    for j in range(len(gt_kps)):
        xg, yg, vg = gt_kps[j, :, 0], gt_kps[j, :, 1], gt_kps[j, :, 2]
        labelled = vg > 0
        xd, yd = dt_xy[:, :, 0], dt_xy[:, :, 1]
        if labelled.any():
            dx, dy = xd - xg, yd - yg
        else:
            bx, by, bw, bh = (float(v) for v in gt_boxes[j])
            dx = np.maximum(0, (bx - bw) - xd) + np.maximum(0, xd - (bx + bw * 2))
            dy = np.maximum(0, (by - bh) - yd) + np.maximum(0, yd - (by + bh * 2))
        e = (dx**2 + dy**2) / var / (float(gt_areas[j]) + EPS) / 2
        if labelled.any():
            e = e[:, labelled]
        out[:, j] = np.sum(np.exp(-e), axis=1) / e.shape[1]
    return out


@dataclass(frozen=True)
class ImageMatch:
    """One image's matches for one category: its scored detections (best first, at most
    :data:`~workloads.tasks._oks_eval.MAX_DETS`) and, per OKS threshold, which of them matched
    a ground truth and which are ignored (matched to an ignored one), plus how many ground
    truths count."""

    scores: np.ndarray  # [D]
    matched: np.ndarray  # [T, D] bool
    ignored: np.ndarray  # [T, D] bool
    gt_count: int
    #: Per threshold and detection, the index of the ground truth it matched (-1: none), and
    #: which of the given detections each scored one is (best first).
    partner: np.ndarray  # [T, D] int
    order: np.ndarray  # [D] int


def match_image(
    dt_scores: np.ndarray,
    dt_xy: np.ndarray,
    gt_kps: np.ndarray,
    gt_boxes: np.ndarray,
    gt_areas: np.ndarray,
    gt_ignore: np.ndarray,
    gt_crowd: np.ndarray,
    sigmas: np.ndarray,
) -> ImageMatch:
    """COCO's greedy matching (pycocotools ``evaluateImg``) of one image and category:
    detections best score first, each taking the unmatched ground truth of highest OKS above the
    threshold, counted ground truths before ignored ones; a crowd region may match many."""
    order = np.argsort(-dt_scores, kind="mergesort")[:MAX_DETS]
    scores, xy = dt_scores[order], dt_xy[order]
    gt_order = np.argsort(gt_ignore.astype(np.int64), kind="mergesort")
    g_ig, g_crowd = gt_ignore[gt_order], gt_crowd[gt_order]
    sim = oks(xy, gt_kps[gt_order], gt_boxes[gt_order], gt_areas[gt_order], sigmas)
    n_t, n_d, n_g = len(OKS_THRESHOLDS), len(order), len(gt_order)
    matched = np.zeros((n_t, n_d), dtype=bool)
    ignored = np.zeros((n_t, n_d), dtype=bool)
    partner = np.full((n_t, n_d), -1, dtype=np.int64)
    for t, thr in enumerate(OKS_THRESHOLDS):
        taken = np.zeros(n_g, dtype=bool)
        for d in range(n_d):
            best, m = min(float(thr), 1 - 1e-10), -1
            for g in range(n_g):
                if taken[g] and not g_crowd[g]:
                    continue
                if m > -1 and not g_ig[m] and g_ig[g]:
                    break
                if sim[d, g] < best:
                    continue
                best, m = sim[d, g], g
            if m == -1:
                continue
            matched[t, d], ignored[t, d], taken[m] = True, bool(g_ig[m]), True
            partner[t, d] = gt_order[m]
    counted = int(np.count_nonzero(~gt_ignore))
    return ImageMatch(scores, matched, ignored, counted, partner, order)


def keypoint_similarity(
    dt_xy: np.ndarray, gt_kps: np.ndarray, area: float, sigmas: np.ndarray
) -> np.ndarray:
    """Per keypoint, ``exp(-e)`` of one detection (``[K, 2]``) against one ground truth
    (``[K, 3]``): the terms OKS averages (NaN where the keypoint is not labelled)."""
    var = (np.asarray(sigmas, dtype=np.float64) * 2) ** 2
    d2 = ((dt_xy - gt_kps[:, :2]) ** 2).sum(axis=1)
    sim = np.exp(-d2 / var / (area + EPS) / 2)
    return np.where(gt_kps[:, 2] > 0, sim, np.nan)


def accumulate(
    scores: np.ndarray,
    matched: np.ndarray,
    ignored: np.ndarray,
    det_image: np.ndarray,
    gt_counts: np.ndarray,
    weights: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(precision ``[B, T, R]``, recall ``[B, T]``) of one category, for each row of ``weights``
    (``[B, N]``: how often each image counts). ``scores`` ``[D]``, ``matched``/``ignored``
    ``[T, D]`` are the category's detections of all images concatenated in image order (image
    ``det_image[d]``); ``gt_counts`` ``[N]`` its counted ground truths per image.

    Precision is -1 and recall -1 where no ground truth counts (COCO leaves those out)."""
    b, n_t, n_r = len(weights), len(OKS_THRESHOLDS), len(RECALL_POINTS)
    precision = -np.ones((b, n_t, n_r))
    recall = -np.ones((b, n_t))
    order = np.argsort(-scores, kind="mergesort")
    tps = (matched & ~ignored)[:, order].astype(np.float64)
    fps = (~matched & ~ignored)[:, order].astype(np.float64)
    w_det = weights[:, det_image[order]].astype(np.float64)  # [B, D]
    npig = weights.astype(np.float64) @ gt_counts.astype(np.float64)  # [B]
    for i in range(b):
        if npig[i] == 0:
            continue
        tp_sum = np.cumsum(tps * w_det[i], axis=1)
        fp_sum = np.cumsum(fps * w_det[i], axis=1)
        for t in range(n_t):
            precision[i, t], recall[i, t] = _curve(tp_sum[t], fp_sum[t], npig[i])
    return precision, recall


def _curve(tp: np.ndarray, fp: np.ndarray, npig: float) -> tuple[np.ndarray, float]:
    """COCO's interpolated precision at the recall points, and the final recall."""
    q = np.zeros(len(RECALL_POINTS))
    if not len(tp):
        return q, 0.0
    rc = tp / npig
    pr = np.maximum.accumulate((tp / (fp + tp + EPS))[::-1])[::-1]
    inds = np.searchsorted(rc, RECALL_POINTS, side="left")
    valid = inds < len(pr)
    q[valid] = pr[inds[valid]]
    return q, float(rc[-1])


def summary(precision: np.ndarray, recall: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(AP@[.5:.95], AR) per resample from per-category ``precision`` ``[C, B, T, R]`` and
    ``recall`` ``[C, B, T]``: the means over the entries COCO counts (> -1); 0 where none."""
    b = precision.shape[1]
    ap, ar = np.zeros(b), np.zeros(b)
    for i in range(b):
        # COCO's order: thresholds, recall points, categories
        p = precision[:, i].transpose(1, 2, 0)
        r = recall[:, i].T
        ap[i] = p[p > -1].mean() if (p > -1).any() else 0.0
        ar[i] = r[r > -1].mean() if (r > -1).any() else 0.0
    return ap, ar
