"""COCO scoring with a maintained library: ground-truth and result documents built from the
farm's per-image boxes, scored by faster-coco-eval (a C++ implementation of the pycocotools
protocol, same numbers; the tests check it against pycocotools itself).

Reading and checking a user's COCO file is the data layer's job (:mod:`workloads.datasets.coco`).
"""

from __future__ import annotations

from typing import Any


def ground_truth(
    images: list[tuple[int, int, int]],
    boxes: list[Any],
    labels: list[Any],
    categories: dict[int, str],
    crowd: list[Any] | None = None,
) -> dict[str, Any]:
    """A COCO ground-truth document: ``images`` as (id, height, width); per image its boxes
    (xyxy, pixels), category ids and optional iscrowd flags."""
    doc_images = [{"id": i, "height": h, "width": w} for i, h, w in images]
    anns: list[dict[str, Any]] = []
    for (image_id, _, _), b, lab, cr in zip(
        images, boxes, labels, crowd or [None] * len(images), strict=True
    ):
        for k in range(len(b)):
            x1, y1, x2, y2 = (float(v) for v in b[k])
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image_id,
                    "category_id": int(lab[k]),
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": int(cr[k]) if cr is not None else 0,
                }
            )
    cats = [{"id": c, "name": n} for c, n in sorted(categories.items())]
    return {"images": doc_images, "annotations": anns, "categories": cats}


def detections(
    image_ids: list[int], boxes: list[Any], scores: list[Any], labels: list[Any]
) -> list[dict[str, Any]]:
    """COCO result entries (bbox as x, y, w, h) for per-image xyxy boxes."""
    out = []
    for image_id, b, s, lab in zip(image_ids, boxes, scores, labels, strict=True):
        for k in range(len(b)):
            x1, y1, x2, y2 = (float(v) for v in b[k])
            out.append(
                {
                    "image_id": int(image_id),
                    "category_id": int(lab[k]),
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": float(s[k]),
                }
            )
    return out


#: COCO summary statistics kept, by their index in ``COCOeval.stats``.
STATS = {"map": 0, "map50": 1, "map75": 2, "map_small": 3, "map_medium": 4, "map_large": 5}
AR100 = 8


def evaluate_bbox(gt: dict[str, Any], dets: list[dict[str, Any]]) -> dict[str, float]:
    """COCO bbox metrics: ``map`` (AP@[.5:.95]), ``map50``, ``map75``, ``map_small/medium/large``,
    ``ar100`` and ``ap/<category name>`` (AP@[.5:.95] of each category with ground truth).

    A metric COCO cannot compute (no ground truth of that size) is left out, never reported as
    COCO's ``-1`` placeholder. No detections at all score 0.
    """
    import numpy as np
    from faster_coco_eval import COCO, COCOeval_faster

    names = {c["id"]: c["name"] for c in gt["categories"]}
    has_truth = {a["category_id"] for a in gt["annotations"] if not a.get("iscrowd")}
    if not dets:
        out = {"map": 0.0, "map50": 0.0, "map75": 0.0, "ar100": 0.0}
        out.update({f"ap/{names[c]}": 0.0 for c in sorted(has_truth)})
        return out
    coco_gt = COCO(gt)
    coco_dt = coco_gt.loadRes(dets)
    ev = COCOeval_faster(coco_gt, coco_dt, iouType="bbox", print_function=lambda *a: None)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    stats = [float(v) for v in ev.stats]
    out = {name: stats[i] for name, i in STATS.items() if stats[i] >= 0}
    if stats[AR100] >= 0:
        out["ar100"] = stats[AR100]
    # precision: [IoU thresholds, recall points, categories, area ranges, max dets]
    precision = np.asarray(ev.eval["precision"])
    cat_ids = list(ev.params.catIds)
    for k, cat in enumerate(cat_ids):
        if cat not in has_truth:
            continue
        p = precision[:, :, k, 0, -1]
        valid = p[p > -1]
        out[f"ap/{names[cat]}"] = float(valid.mean()) if valid.size else 0.0
    return out
