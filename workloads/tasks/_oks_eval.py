"""COCO keypoint scoring (OKS mAP) with a maintained library: ground-truth and result documents
built from the farm's per-image poses, scored by faster-coco-eval (``iouType="keypoints"``, the
pycocotools protocol, same numbers: the tests check it against pycocotools itself).

The object keypoint similarity of a detection with a ground-truth object is COCO's::

    OKS = mean over the object's labelled keypoints (v > 0) of exp(-d² / (2σ)² / (area + ε) / 2)

with ``σ`` the keypoint's sigma (the user's, :data:`COCO_SIGMAS` for COCO's 17 person keypoints)
and ``area`` the object's ``area`` from the file or, with ``use_area = false`` (files without
``area``, such as CrowdPose), its box's ``w · h · 0.53`` as faster-coco-eval and Ultralytics take
it. A ground truth with no labelled keypoint (``num_keypoints == 0``) or ``iscrowd`` is ignored:
a detection matching it counts neither way. At most :data:`MAX_DETS` detections per image are
scored, by score. Results carry no ``bbox`` (pycocotools derives it from the keypoints).

Reading and checking a user's keypoints file is the data layer's job
(:mod:`workloads.datasets.coco_keypoints`); the per-image matching that per-image evidence and
the per-keypoint similarities come from is :mod:`workloads.tasks._oks_match`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: COCO's person keypoint sigmas (nose, eyes, ears, shoulders, elbows, wrists, hips, knees,
#: ankles), as pycocotools and faster-coco-eval define them.
COCO_SIGMAS: tuple[float, ...] = tuple(
    v / 10.0
    for v in (
        *(0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72),
        *(0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89),
    )
)
#: Detections per image COCO's keypoint evaluation scores (``maxDets = [20]``).
MAX_DETS = 20
#: A box's share that stands for an object's area when the file has none (``use_area = false``).
AREA_FACTOR = 0.53
#: OKS thresholds and recall points, exactly as the COCO evaluators build them.
OKS_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_POINTS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
#: COCO summary statistics kept, by their index in ``COCOeval.stats`` (keypoints).
STATS = {
    "kp_map": 0,
    "kp_map50": 1,
    "kp_map75": 2,
    "kp_map_medium": 3,
    "kp_map_large": 4,
    "kp_ar": 5,
}


def object_area(box_xywh: Any, area: float | None, use_area: bool) -> float:
    """The area OKS divides by: the file's ``area``, or the box's ``w · h · 0.53`` (the same
    expression faster-coco-eval evaluates for ``use_area=False``)."""
    if use_area and area is not None:
        return float(area)
    return float(box_xywh[3]) * float(box_xywh[2]) * AREA_FACTOR


def ground_truth(
    images: list[tuple[int, int, int]],
    truth: list[dict[str, Any]],
    categories: dict[int, str],
    use_area: bool,
) -> dict[str, Any]:
    """A COCO person-keypoints document: ``images`` as (id, height, width); per image its truth
    (``boxes`` xyxy, ``labels`` category ids, ``keypoints`` [n, K, 3], ``iscrowd``, ``area``
    (NaN where the file has none), ``num_keypoints``)."""
    doc_images = [{"id": i, "height": h, "width": w} for i, h, w in images]
    anns: list[dict[str, Any]] = []
    for (image_id, _, _), t in zip(images, truth, strict=True):
        areas = t.get("area")
        for k in range(len(t["labels"])):
            x1, y1, x2, y2 = (float(v) for v in t["boxes"][k])
            box = [x1, y1, x2 - x1, y2 - y1]
            given = None if areas is None or np.isnan(areas[k]) else float(areas[k])
            kp = np.asarray(t["keypoints"][k], dtype=np.float64)
            anns.append(
                {
                    "id": len(anns) + 1,  # never 0: the evaluators read a match id 0 as none
                    "image_id": image_id,
                    "category_id": int(t["labels"][k]),
                    "bbox": box,
                    "area": object_area(box, given, use_area),
                    "keypoints": [float(v) for v in kp.reshape(-1)],
                    "num_keypoints": int(np.count_nonzero(kp[:, 2] > 0)),
                    "iscrowd": int(t["iscrowd"][k]) if "iscrowd" in t else 0,
                }
            )
    cats = [{"id": c, "name": n} for c, n in sorted(categories.items())]
    return {"images": doc_images, "annotations": anns, "categories": cats}


def results(
    image_ids: list[int], keypoints: list[Any], scores: list[Any], categories: list[Any]
) -> list[dict[str, Any]]:
    """COCO keypoint result entries (``keypoints`` as ``[x, y, v] * K``, no ``bbox``)."""
    out = []
    for image_id, kps, s, cats in zip(image_ids, keypoints, scores, categories, strict=True):
        for k in range(len(s)):
            out.append(
                {
                    "image_id": int(image_id),
                    "category_id": int(cats[k]),
                    "keypoints": [float(v) for v in np.asarray(kps[k]).reshape(-1)],
                    "score": float(s[k]),
                }
            )
    return out


def evaluate_keypoints(
    gt: dict[str, Any], dets: list[dict[str, Any]], sigmas: tuple[float, ...]
) -> dict[str, float]:
    """COCO keypoint metrics: ``kp_map`` (OKS AP@[.5:.95]), ``kp_map50``, ``kp_map75``,
    ``kp_map_medium``, ``kp_map_large`` and ``kp_ar`` (AR@[.5:.95], 20 detections).

    A metric COCO cannot compute (no ground truth of that size) is left out, never reported as
    COCO's ``-1`` placeholder. No detections at all score 0.
    """
    from faster_coco_eval import COCO, COCOeval_faster

    if not dets:
        return {"kp_map": 0.0, "kp_map50": 0.0, "kp_map75": 0.0, "kp_ar": 0.0}
    coco_gt = COCO(gt)
    coco_dt = coco_gt.loadRes(dets)
    ev = COCOeval_faster(
        coco_gt,
        coco_dt,
        iouType="keypoints",
        kpt_oks_sigmas=list(sigmas),
        print_function=lambda *a: None,
    )
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    stats = [float(v) for v in ev.stats]
    return {name: stats[i] for name, i in STATS.items() if stats[i] >= 0}
