"""The keypoints task's helpers: output-layout checks, the ground truth of fidelity, and the
per-image evidence whose resampled ``kp_map`` equals the task's ``kp_map`` for a row of ones
(COCO's matching per image from :mod:`workloads.tasks._oks_match`, kept as arrays).

Evidence arrays (one row per scored detection, images in COCO's order, ascending image id):
``det_image``, ``det_cat`` (index into ``categories``), ``det_score``, ``det_match`` and
``det_ignore`` (``[D, T]``, per OKS threshold), ``gt_count`` (``[N, C]``, counted ground truths
per image and category).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from workloads.evidence import Evidence
from workloads.tasks import _oks_eval as oks
from workloads.tasks import _oks_match as match

if TYPE_CHECKING:
    from workloads.data import Split

#: The keypoints task and its per-image poses (not imported: that module imports this one).
Keypoints = Any
Poses = Any


def check_layout(task: Keypoints, outputs: list[np.ndarray], where: str) -> int:
    """The model's keypoint count K, after checking the outputs follow ``task.outputs``."""
    shapes = [tuple(o.shape) for o in outputs]
    if task.outputs == "yolo":
        k, d = task.head_shape()
        head = outputs[0]
        if head.ndim != 3 or head.shape[1] < 4 + 1 + k * d:
            raise ValueError(
                f'{where}: `outputs = "yolo"` expects one output [B, 4 + C + {k}·{d}, A] (C >= 1 '
                f"classes, {k} keypoints: set `oks_sigmas` to the model's keypoint count), got "
                f"outputs of shapes {shapes}"
            )
        return k
    if task.outputs == "end2end":
        _, d = task.head_shape()
        table = outputs[0]
        if table.ndim != 3 or table.shape[2] <= 6 or (table.shape[2] - 6) % d:
            raise ValueError(
                f'{where}: `outputs = "end2end"` expects one output [B, N, 6 + K·{d}], got '
                f"outputs of shapes {shapes}"
            )
        return (table.shape[2] - 6) // d
    ok = len(outputs) >= 4
    if ok:
        boxes, scores, labels, kps = outputs[:4]
        if boxes.ndim == 3 and boxes.shape[0] == 1:
            boxes, scores, labels, kps = boxes[0], scores[0], labels[0], kps[0]
        n = boxes.shape[0] if boxes.ndim == 2 else -1
        ok = (
            boxes.ndim == 2
            and boxes.shape[1] == 4
            and scores.shape == (n,)
            and labels.shape == (n,)
            and kps.ndim == 3
            and kps.shape[0] == n
            and kps.shape[2] in (2, 3)
        )
    if not ok:
        raise ValueError(
            f'{where}: `outputs = "boxes_scores_labels_keypoints"` expects outputs boxes [N, 4], '
            f"scores [N], labels [N], keypoints [N, K, 3], got outputs of shapes {shapes}"
        )
    return int(kps.shape[1])


def image_table(split: Split) -> list[tuple[int, int, int]]:
    """(image id, height, width) of each image of ``split`` (original sizes)."""
    infos = split.info or tuple({"image_id": i} for i in range(len(split)))
    out = []
    for i, info in enumerate(infos):
        if "orig_hw" in info:
            h, w = (int(v) for v in info["orig_hw"])
        else:
            h, w = int(split.x.shape[2]), int(split.x.shape[3])
        out.append((int(info.get("image_id", i)), h, w))
    return out


def category_map(class_ids: str, category_ids: Sequence[int]) -> Callable[[Any], np.ndarray]:
    """Model labels → category ids (``index``: the i-th category by id; -1 when out of range)."""
    if class_ids == "category_id":
        return lambda labels: np.asarray(labels, dtype=np.int64)
    table = np.asarray(category_ids, dtype=np.int64)

    def to_category(labels: Any) -> np.ndarray:
        labels = np.asarray(labels, dtype=np.int64)
        if not len(table):
            return np.full(len(labels), -1, dtype=np.int64)
        ok = (labels >= 0) & (labels < len(table))
        return np.where(ok, table[np.clip(labels, 0, len(table) - 1)], -1)

    return to_category


def reference_truth(reference: list[Poses], score: float) -> list[dict[str, Any]]:
    """The fp32 model's poses scoring at least ``score`` as ground truth, every keypoint
    labelled, the area taken from the box (``use_area = false``)."""
    out = []
    for r in reference:
        r = r.above(score)
        kps = np.asarray(r.keypoints, dtype=np.float64).copy()
        kps[..., 2] = 2
        out.append({"boxes": r.boxes, "labels": r.labels, "keypoints": kps})
    return out


# -- evidence ----------------------------------------------------------------------------------


def evidence(task: Keypoints, predictions: list[Poses], split: Split, reference: Any) -> Evidence:
    """Per-image evidence of ``predictions`` on ``split`` (see the module doc)."""
    images = image_table(split)
    if split.truth is not None:
        truth = list(split.truth)
        k = int(np.asarray(truth[0]["keypoints"]).shape[1]) if truth else 0
        ids = _category_ids(truth)
        to_category = category_map(task.class_ids, ids)
        labels = [to_category(p.labels) for p in predictions]
        sigmas, use_area = task.sigmas(k) if k else (), task.use_area
    else:
        truth = reference_truth(reference, 0.3)
        labels = [np.asarray(p.labels, dtype=np.int64) for p in predictions]
        k = next((t["keypoints"].shape[1] for t in truth if len(t["labels"])), 0)
        sigmas, use_area = (task._fidelity_sigmas(k) if k else ()), False
    arrays = _matches(predictions, labels, truth, images, np.asarray(sigmas), use_area)
    n = len(images)
    confident = [p.above(0.3) for p in predictions]
    confidence = np.array([float(p.scores.max()) if len(p) else np.nan for p in predictions])
    ev = Evidence(
        ids=split.image_ids(),
        score=np.zeros(n),
        predicted=tuple(f"{len(p)} poses" for p in confident),
        confidence=confidence,
        arrays=arrays,
    )
    own = resampled_kp_map(ev, np.eye(n))
    no_truth = arrays["gt_count"].sum(axis=1) == 0
    own[no_truth] = [
        float(len(p) == 0) for p, empty in zip(confident, no_truth, strict=True) if empty
    ]
    arrays.update(drawable(confident, split.info or ({},) * n))
    return Evidence(ev.ids, own, ev.predicted, confidence, None, arrays)


def drawable(shown: list[Poses], infos: Sequence[dict[str, Any]]) -> dict[str, np.ndarray]:
    """The confident poses of every image in the model input's pixels (preprocessing's scale
    and padding applied again), for the gallery's drawing hook."""
    from workloads.tasks.detection import to_input_pixels

    rows, boxes, points = [], [], []
    for i, (p, info) in enumerate(zip(shown, infos, strict=True)):
        b = to_input_pixels(np.asarray(p.boxes).reshape(-1, 2, 2), info).reshape(-1, 4)
        kp = np.asarray(p.keypoints, np.float32).copy()
        if kp.size:
            kp[..., :2] = to_input_pixels(kp[..., :2], info)
        rows.append(np.full(len(b), i, np.int32))
        boxes.append(b)
        points.append(kp)
    k = next((pt.shape[1] for pt in points if pt.ndim == 3 and len(pt)), 0)
    return {
        "draw_image": np.concatenate(rows) if rows else np.zeros(0, np.int32),
        "draw_boxes": np.concatenate(boxes) if boxes else np.zeros((0, 4), np.float32),
        "draw_keypoints": (
            np.concatenate([pt.reshape(-1, k, 3) for pt in points])
            if k
            else np.zeros((0, 0, 3), np.float32)
        ),
    }


def _category_ids(truth: list[dict[str, Any]]) -> list[int]:
    """The data file's category ids (carried by each image's truth), else those in the truth."""
    for t in truth:
        if "category_ids" in t:
            return [int(c) for c in t["category_ids"]]
    return sorted({int(c) for t in truth for c in t["labels"]})


def _matches(
    predictions: list[Poses],
    labels: list[np.ndarray],
    truth: list[dict[str, Any]],
    images: list[tuple[int, int, int]],
    sigmas: np.ndarray,
    use_area: bool,
) -> dict[str, np.ndarray]:
    """Every image's COCO matches, per category, as flat arrays (images by ascending id)."""
    cats = sorted(
        {int(c) for t in truth for c in t["labels"]} | {int(c) for lab in labels for c in lab}
    )
    order = np.argsort([i for i, _, _ in images], kind="mergesort")
    n_t = len(oks.OKS_THRESHOLDS)
    keys = ("image", "cat", "score", "match", "ignore", "sim")
    rows: dict[str, list[Any]] = {k: [] for k in keys}
    gt_count = np.zeros((len(images), len(cats)), dtype=np.int64)
    for n in order:
        p, t, lab = predictions[n], truth[n], labels[n]
        gt = oks.ground_truth([images[n]], [t], {c: str(c) for c in cats}, use_area)["annotations"]
        for ci, c in enumerate(cats):
            g = [a for a in gt if a["category_id"] == c]
            d = np.flatnonzero(lab == c)
            if not g and not len(d):
                continue
            k = len(sigmas)
            kps = np.asarray([a["keypoints"] for a in g], dtype=np.float64).reshape(len(g), k, 3)
            xy = np.asarray(p.keypoints, dtype=np.float64)[d][:, :, :2].reshape(len(d), k, 2)
            areas = np.asarray([a["area"] for a in g], dtype=np.float64)
            ignore = np.asarray([a["num_keypoints"] == 0 or a["iscrowd"] for a in g], dtype=bool)
            m = match.match_image(
                np.asarray(p.scores, dtype=np.float64)[d],
                xy,
                kps,
                np.asarray([a["bbox"] for a in g], dtype=np.float64).reshape(-1, 4),
                areas,
                ignore,
                np.asarray([a["iscrowd"] for a in g], dtype=bool),
                sigmas,
            )
            rows["sim"].append(_matched_similarity(m, xy, kps, areas, ignore, sigmas))
            gt_count[n, ci] = m.gt_count
            rows["image"].append(np.full(len(m.scores), n))
            rows["cat"].append(np.full(len(m.scores), ci))
            rows["score"].append(m.scores)
            rows["match"].append(m.matched.T)
            rows["ignore"].append(m.ignored.T)
    cat = lambda key, shape: np.concatenate(rows[key]) if rows[key] else np.zeros(shape)  # noqa: E731
    return {
        "det_image": cat("image", 0).astype(np.int64),
        "det_cat": cat("cat", 0).astype(np.int64),
        "det_score": cat("score", 0).astype(np.float64),
        "det_match": cat("match", (0, n_t)).astype(bool),
        "det_ignore": cat("ignore", (0, n_t)).astype(bool),
        "gt_count": gt_count,
        "categories": np.asarray(cats, dtype=np.int64),
        "kp_similarity": cat("sim", (0, len(sigmas))).astype(np.float64),
    }


def _matched_similarity(
    m: match.ImageMatch,
    xy: np.ndarray,
    kps: np.ndarray,
    areas: np.ndarray,
    ignore: np.ndarray,
    sigmas: np.ndarray,
) -> np.ndarray:
    """``[n, K]``: per detection matched at OKS 0.5 with a counted ground truth, its keypoints'
    similarities to that ground truth's (NaN where not labelled)."""
    out = [
        match.keypoint_similarity(xy[m.order[j]], kps[g], float(areas[g]), sigmas)
        for j, g in enumerate(m.partner[0])
        if g >= 0 and not ignore[g]
    ]
    return np.asarray(out, dtype=np.float64).reshape(len(out), len(sigmas))


def per_keypoint(
    task: Keypoints, predictions: list[Poses], split: Split, names: Sequence[str]
) -> dict[str, float]:
    """``kp_oks/<keypoint name>``: the mean similarity of each keypoint over the detections
    matched at OKS 0.5 (1 = where the ground truth has it): which keypoints a candidate moves."""
    assert split.truth is not None
    truth = list(split.truth)
    k = int(np.asarray(truth[0]["keypoints"]).shape[1]) if truth else 0
    if not k:
        return {}
    labels = [category_map(task.class_ids, _category_ids(truth))(p.labels) for p in predictions]
    arrays = _matches(
        predictions, labels, truth, image_table(split), np.asarray(task.sigmas(k)), task.use_area
    )
    sims = arrays["kp_similarity"]
    counted = (~np.isnan(sims)).sum(axis=0)
    total = np.nansum(sims, axis=0)
    return {
        f"kp_oks/{names[j] if j < len(names) else f'kp{j}'}": float(total[j] / counted[j])
        for j in range(k)
        if counted[j]
    }


def resampled_kp_map(evidence: Evidence, weights: np.ndarray) -> np.ndarray:
    """``kp_map`` for each row of ``weights`` (``[B, N]`` image multiplicities)."""
    a = evidence.arrays
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    n_cat = a["gt_count"].shape[1]
    b, n_t, n_r = len(weights), len(oks.OKS_THRESHOLDS), len(oks.RECALL_POINTS)
    precision = -np.ones((max(n_cat, 1), b, n_t, n_r))
    recall = -np.ones((max(n_cat, 1), b, n_t))
    for ci in range(n_cat):
        sel = a["det_cat"] == ci
        precision[ci], recall[ci] = match.accumulate(
            a["det_score"][sel],
            a["det_match"][sel].T,
            a["det_ignore"][sel].T,
            a["det_image"][sel],
            a["gt_count"][:, ci],
            weights,
        )
    ap, _ = match.summary(precision, recall)
    return ap
