"""COCO bbox mAP on any multiset of a split's images, from one per-image matching.

COCO's protocol matches each image's detections to its ground truth (per category, best score
first, at ten IoU thresholds) and then accumulates precision over the whole data set. Matching
depends on one image only, so a bootstrap resample (images drawn with replacement) reuses it:
:func:`match` runs once per trial and keeps, per detection, its score, category and image and
whether it is a true positive (or ignored, matched to a crowd box) at each threshold;
:func:`resampled_map` then gives the mAP of every row of a ``[B, N]`` matrix of image
multiplicities. A row of ones gives faster-coco-eval's ``map`` of the whole split, and a row of
bootstrap counts the ``map`` of the data set that repeats each image that many times (the tests
check both against faster-coco-eval itself). One nuance: where two detections of one image and
category tie in score, COCO on a data set that repeats the image takes the copies one after
the other, a resample interleaves them; the mAP then differs in the fourth decimal at most,
inside any interval's width, and a row of ones is exact either way.

Speed: detections are sorted once per category. Precision's envelope only needs the points of
the curve where a true positive lands at some IoU threshold (recall rises only there, and
precision falls between them), so detections ranked after a category's last true positive are
dropped once. The detections ranked up to each point are per-image counts (a sparse matrix,
made once) times the resamples' weights, one product shared by the ten thresholds; recall
thresholds are looked up per whole count of true positives, and the 101 thresholds' mean is a
sum over the points. So a resample costs work in the number of true positives, not of
detections (a detector keeps hundreds of low-score boxes per image).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse

IOU_THRS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
REC_THRS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
MAX_DETS = 100


def box_iou(d: np.ndarray, g: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """COCO IoU of xywh boxes; a crowd box's IoU is the intersection over the detection's area."""
    if len(d) == 0 or len(g) == 0:
        return np.zeros((len(d), len(g)))
    dx1, dy1 = d[:, 0:1], d[:, 1:2]
    dx2, dy2 = dx1 + d[:, 2:3], dy1 + d[:, 3:4]
    gx1, gy1 = g[:, 0], g[:, 1]
    gx2, gy2 = gx1 + g[:, 2], gy1 + g[:, 3]
    iw = np.clip(np.minimum(dx2, gx2) - np.maximum(dx1, gx1), 0, None)
    ih = np.clip(np.minimum(dy2, gy2) - np.maximum(dy1, gy1), 0, None)
    inter = iw * ih
    da = (d[:, 2] * d[:, 3])[:, None]
    ga = (g[:, 2] * g[:, 3])[None, :]
    union = np.where(crowd[None, :], da, da + ga - inter)
    return np.where(union > 0, inter / np.maximum(union, 1e-300), 0.0)


def match_one(
    scores: np.ndarray, boxes: np.ndarray, gt_boxes: np.ndarray, crowd: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """COCO's matching of one (image, category): detections (xywh) sorted best score first
    (stable) and cut to :data:`MAX_DETS`; ground truth with ignored boxes (crowd, or an area
    outside COCO's "all" range, as a box with a negative side has) last. Returns the order of
    the kept detections, ``tp [D, T]``, ``ignored [D, T]`` and the number of ground-truth boxes
    that count."""
    gt_ignore = crowd | ~_in_range(gt_boxes)
    order_g = np.argsort(gt_ignore, kind="mergesort")
    gt_boxes, crowd, gt_ignore = gt_boxes[order_g], crowd[order_g], gt_ignore[order_g]
    order = np.argsort(-scores, kind="mergesort")[:MAX_DETS]
    ious = box_iou(boxes[order], gt_boxes, crowd)
    n_d, n_g, n_t = len(order), len(gt_boxes), len(IOU_THRS)
    tp = np.zeros((n_d, n_t), bool)
    # an unmatched detection outside the area range is ignored, not a false positive
    ig = np.repeat(~_in_range(boxes[order])[:, None], n_t, axis=1)
    # a detection overlapping no box by 0.5 matches nothing at any threshold
    candidates = [d for d in range(n_d) if n_g and ious[d].max() >= IOU_THRS[0]]
    for t, thr in enumerate(IOU_THRS):
        taken = np.zeros(n_g, bool)
        for d in candidates:
            best, m = min(thr, 1 - 1e-10), -1
            for g in range(n_g):
                if taken[g] and not crowd[g]:
                    continue
                if m > -1 and not gt_ignore[m] and gt_ignore[g]:
                    break
                if ious[d, g] < best:
                    continue
                best, m = ious[d, g], g
            if m > -1:
                ig[d, t], tp[d, t], taken[m] = gt_ignore[m], True, True
    return order, tp, ig, int((~gt_ignore).sum())


def _in_range(xywh: np.ndarray) -> np.ndarray:
    """Whether each box's area lies in COCO's "all" area range, [0, 1e10]."""
    area = xywh[:, 2] * xywh[:, 3]
    return (area >= 0) & (area <= 1e10)


def match(
    image_ids: Sequence[int],
    truth: Sequence[Mapping[str, Any]],
    detections: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    categories: Sequence[int],
) -> dict[str, np.ndarray]:
    """The per-image matching of a split: ``truth`` per image (``boxes`` xyxy, ``labels``
    category ids, optional ``iscrowd``), ``detections`` per image (xyxy boxes, scores,
    category ids), ``categories`` the ground truth's category ids. Returns the arrays
    :func:`resampled_map` reads: per detection kept by COCO (sorted by category, then in
    COCO's accumulation order) its image row, category index, score, ``tp`` and ``ignored``
    flags per IoU threshold; ``gt_count [N, K]`` of boxes that count."""
    cats = list(categories)
    cat_index = {c: k for k, c in enumerate(cats)}
    n, n_k = len(image_ids), len(cats)
    gt_count = np.zeros((n, n_k), np.int32)
    rows: list[tuple[int, int, np.ndarray, np.ndarray, np.ndarray]] = []
    # COCO accumulates images in the order of their ids
    for i in sorted(range(n), key=lambda r: image_ids[r]):
        t = truth[i]
        g_boxes, g_labels = np.asarray(t["boxes"], float).reshape(-1, 4), np.asarray(t["labels"])
        g_crowd = np.asarray(t.get("iscrowd") if t.get("iscrowd") is not None else [], bool)
        if len(g_crowd) != len(g_labels):
            g_crowd = np.zeros(len(g_labels), bool)
        d_boxes, d_scores, d_cats = (np.asarray(a) for a in detections[i])
        d_boxes = np.asarray(d_boxes, float).reshape(-1, 4)
        for c in cats:
            gs, ds = g_labels == c, np.asarray(d_cats) == c
            if not gs.any() and not ds.any():
                continue
            order, tp, ig, n_gt = match_one(
                np.asarray(d_scores, float)[ds], _xywh(d_boxes[ds]), _xywh(g_boxes[gs]), g_crowd[gs]
            )
            gt_count[i, cat_index[c]] = n_gt
            rows.append((cat_index[c], i, np.asarray(d_scores, float)[ds][order], tp, ig))
    return _sorted_arrays(rows, gt_count)


def _xywh(boxes: np.ndarray) -> np.ndarray:
    out = boxes.astype(float, copy=True)
    out[:, 2:] = boxes[:, 2:] - boxes[:, :2]
    return out


def _sorted_arrays(
    rows: list[tuple[int, int, np.ndarray, np.ndarray, np.ndarray]], gt_count: np.ndarray
) -> dict[str, np.ndarray]:
    """Detections of every category in COCO's accumulation order (score, best first; ties in
    image order, then in the image's own order), categories one after another."""
    n_t = len(IOU_THRS)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("image", "cat", "score", "tp", "ig")}
    for k in range(gt_count.shape[1]):
        mine = [r for r in rows if r[0] == k]
        if not mine:
            continue
        score = np.concatenate([r[2] for r in mine])
        order = np.argsort(-score, kind="mergesort")
        parts["image"].append(np.concatenate([np.full(len(r[2]), r[1]) for r in mine])[order])
        parts["cat"].append(np.full(len(score), k))
        parts["score"].append(score[order])
        parts["tp"].append(np.concatenate([r[3] for r in mine]).reshape(-1, n_t)[order])
        parts["ig"].append(np.concatenate([r[4] for r in mine]).reshape(-1, n_t)[order])

    def cat(name: str, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
        return np.concatenate(parts[name]).astype(dtype) if parts[name] else np.zeros(shape, dtype)

    return {
        "det_image": cat("image", np.int32, (0,)),
        "det_cat": cat("cat", np.int32, (0,)),
        "det_score": cat("score", np.float64, (0,)),
        "det_tp": cat("tp", bool, (0, n_t)),
        "det_ig": cat("ig", bool, (0, n_t)),
        "gt_count": gt_count,
    }


#: Resampled cells (resamples × detections kept) held at once.
CHUNK_CELLS = 4_000_000


def resampled_map(arrays: Mapping[str, np.ndarray], weights: np.ndarray) -> np.ndarray:
    """mAP@[.5:.95] (COCO, area all, 100 detections) for each row of ``weights`` ``[B, N]``
    (image multiplicities); NaN for a row whose images hold no box that counts."""
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    npig = w @ arrays["gt_count"].astype(np.float64)  # [B, K]
    bounds = np.searchsorted(arrays["det_cat"], np.arange(npig.shape[1] + 1))
    plans = [_plan(arrays, bounds[k], bounds[k + 1]) for k in range(npig.shape[1])]
    kept = sum(p.gaps.nnz for p in plans if p is not None)
    rows = max(1, CHUNK_CELLS // max(kept, 1))
    total, counted = np.zeros(len(w)), np.zeros(len(w))
    for lo in range(0, len(w), rows):
        part = slice(lo, lo + rows)
        by_image = np.ascontiguousarray(w[part].T)  # [N, b]
        counts = bool(np.all(by_image == np.floor(by_image)))
        for k, plan in enumerate(plans):
            valid = npig[part, k] > 0
            if not valid.any():
                continue
            if plan is not None:
                ap = category_ap(plan, by_image, npig[part, k], counts)
                total[part] += np.where(valid, ap, 0.0)
            counted[part] += valid
    with np.errstate(invalid="ignore"):
        return np.where(counted > 0, total / np.maximum(counted, 1), np.nan)


#: The recall thresholds with a sentinel, for counting the thresholds at or below a recall.
_THRS = np.append(REC_THRS, np.inf)


def thresholds_at_or_below(rc: np.ndarray) -> np.ndarray:
    """How many of :data:`REC_THRS` are <= each recall (``searchsorted(..., "right")``, exact,
    without a binary search: a guess from ``rc * 100`` corrected against the thresholds)."""
    k = np.clip(np.floor(rc * 100).astype(np.int64) - 1, 0, len(REC_THRS))
    for _ in range(3):
        k += _THRS[k] <= rc
    return k


@dataclass(frozen=True)
class _Plan:
    """What one category's AP needs of its detections, whatever the weights. ``points``: the
    ranks (in accumulation order) where a true positive lands at some IoU threshold, and
    ``gaps`` ``[points, N]`` (sparse): per point, each image's detections ranked after the
    previous point and up to this one. Per threshold, its true positives in *runs* (true
    positives with no false positive ranked between them: precision rises along a run, so its
    envelope is the run's last point's, and a run counts as its last point): ``ends`` the runs'
    last points (indices into ``points``), ``runs`` ``[runs, N]`` (sparse) each run's true
    positives per image, ``ignored`` the images of its ignored detections (ranked before the
    last point) and how many of them precede each run's end."""

    points: np.ndarray
    gaps: sparse.csr_matrix
    ends: tuple[np.ndarray, ...]
    runs: tuple[sparse.csr_matrix, ...]
    ignored: tuple[tuple[np.ndarray, np.ndarray], ...]


def _plan(arrays: Mapping[str, np.ndarray], lo: int, hi: int) -> _Plan | None:
    """One category's :class:`_Plan` (None where no detection is ever a true positive).
    Detections ranked after the category's last true positive change no point of the
    precision envelope, and are dropped here once."""
    img = arrays["det_image"][lo:hi].astype(np.int64)
    ig_all = arrays["det_ig"][lo:hi]
    hits = arrays["det_tp"][lo:hi] & ~ig_all  # [D, T]
    points = np.flatnonzero(hits.any(axis=1))
    if len(points) == 0:
        return None
    last = int(points[-1]) + 1
    n_img = int(img.max()) + 1
    ends, runs, ignored = [], [], []
    for t in range(hits.shape[1]):
        hit = np.flatnonzero(hits[:last, t])
        false_before = np.cumsum(~hits[:last, t] & ~ig_all[:last, t])[hit]
        is_end = np.append(false_before[1:] > false_before[:-1], True)[: len(hit)]
        run = np.cumsum(is_end) - is_end  # each true positive's run
        n_runs = int(is_end.sum())
        runs.append(_per_image(run, img[hit], n_runs, n_img))
        end = hit[is_end]
        ends.append(np.searchsorted(points, end))
        ig = np.flatnonzero(ig_all[:last, t])
        ignored.append((img[ig], np.searchsorted(ig, end)))
    # each detection up to the last point belongs to the first point at or after it
    gap = np.searchsorted(points, np.arange(last))
    return _Plan(
        points=points,
        gaps=_per_image(gap, img[:last], len(points), n_img),
        ends=tuple(ends),
        runs=tuple(runs),
        ignored=tuple(ignored),
    )


def _per_image(group: np.ndarray, image: np.ndarray, n_groups: int, n_img: int) -> Any:
    """``[groups, N]`` (sparse): how many of the items of each group belong to each image."""
    ones = np.ones(len(group))
    return sparse.csr_matrix((ones, (group, image)), shape=(n_groups, n_img))


def category_ap(
    plan: _Plan, by_image: np.ndarray, npig: np.ndarray, counts: bool = False
) -> np.ndarray:
    """One category's AP averaged over the IoU thresholds for each resample: ``by_image``
    ``[N, B]`` each image's multiplicity per resample, ``npig`` ``[B]`` the boxes that count;
    ``counts``: whether every multiplicity is a whole number (as a bootstrap draws them).

    Only the points where a true positive lands matter (recall rises there; precision falls
    between them), and of a run of true positives only its last. The detections ranked up to
    each point, weighted, are summed once for all thresholds (per point, its images' counts
    times their weights: true and false positives together, so precision is one division); per
    threshold, its runs' true positives the same way. COCO's precision at recall threshold
    ``r`` is the envelope at the first point whose recall reaches ``r``: a point is first for
    as many thresholds as its recall passes beyond the previous point's, so the 101
    thresholds' mean is a weighted sum over the points."""
    n_b = by_image.shape[1]
    out = np.zeros(n_b)
    denom = np.where(npig > 0, npig, 1.0)
    mine = by_image[: plan.gaps.shape[1]]
    ranked = np.asarray(plan.gaps @ mine)
    np.cumsum(ranked, axis=0, out=ranked)  # [P, B] the weighted detections ranked up to each point
    reached = _thresholds_per_count(denom) if counts else None
    for end, run, (ig_image, ig_before) in zip(plan.ends, plan.runs, plan.ignored, strict=True):
        if len(end) == 0:
            continue
        tps = np.asarray(run @ mine)
        np.cumsum(tps, axis=0, out=tps)  # [R, B] true positives up to each run's end
        seen = ranked[end]  # the true and false positives ranked up to each run's end
        if len(ig_image):
            ig_sums = np.concatenate([np.zeros((1, n_b)), np.cumsum(by_image[ig_image], axis=0)])
            seen -= ig_sums[ig_before]
        pr = tps / (seen + np.spacing(1))
        env = np.maximum.accumulate(pr[::-1], axis=0)[::-1]
        if reached is None:
            k = thresholds_at_or_below(tps / denom)
        else:  # the same divisions, made once per count of true positives
            flat = tps.astype(np.intp) * n_b + np.arange(n_b)
            k = np.take(reached, flat, mode="clip")
        firsts = np.diff(k, axis=0, prepend=0)  # thresholds each point is the first to reach
        out += np.einsum("pb,pb->b", env, firsts) / len(REC_THRS)
    return out / len(plan.ends)


def _thresholds_per_count(denom: np.ndarray) -> np.ndarray:
    """``[M + 1, B]``: :func:`thresholds_at_or_below` of recall ``m / denom`` for every whole
    ``m`` up to the largest ``denom`` (true positives never outnumber the boxes that count)."""
    m = np.arange(int(denom.max()) + 1, dtype=np.float64)[:, None]
    return thresholds_at_or_below(m / denom[None, :]).ravel()


def per_image_map(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    """Each image's own mAP (its detections and boxes alone); NaN where it has no box that
    counts."""
    n = len(arrays["gt_count"])
    by_image = np.argsort(arrays["det_image"], kind="stable")  # keeps category, score order
    starts = np.searchsorted(arrays["det_image"][by_image], np.arange(n + 1))
    out = np.full(n, np.nan)
    for i in range(n):
        if not arrays["gt_count"][i].any():
            continue
        mine = by_image[starts[i] : starts[i + 1]]
        sub = {
            "det_image": np.zeros(len(mine), np.int32),
            "det_cat": arrays["det_cat"][mine],
            "det_tp": arrays["det_tp"][mine],
            "det_ig": arrays["det_ig"][mine],
            "gt_count": arrays["gt_count"][i : i + 1],
        }
        out[i] = resampled_map(sub, np.ones((1, 1)))[0]
    return out
