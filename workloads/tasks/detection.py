"""Detection: boxes judged by COCO mAP (faster-coco-eval), or by mAP against the fp32 model.

Two output conventions, declared by the job (``[workload] outputs``):

* ``"boxes_scores_labels"`` (torchvision style, after NMS, batch 1): ``boxes [N, 4]`` xyxy in
  input pixels, ``scores [N]``, ``labels [N]`` (a leading batch dimension of 1 is accepted).
* ``"yolo"`` (a raw head as Ultralytics exports it): one tensor ``[B, 4 + C, A]``; the first four
  rows are ``cx, cy, w, h`` in input pixels, then C class scores (already sigmoid-ed, no
  objectness). The farm keeps, per anchor, its best class above ``score_threshold``, then
  applies class-wise NMS at ``nms_iou`` and keeps the ``max_detections`` best.

Boxes are mapped back from input pixels to the original image (undoing the resize or letterbox
of preprocessing, from each image's ``info``) and clipped to it. Labels are the model's own:
``class_ids = "category_id"`` (the label is the COCO category id, torchvision's convention) or
``"index"`` (a 0-based index into the file's categories sorted by id, Ultralytics' convention).

Fidelity without ground truth (``map_vs_fp32``): the fp32 model's detections scoring at least
:data:`FIDELITY_SCORE` are taken as ground truth and the candidate's detections are scored
against them with the same COCO protocol (1.0 for a candidate that reproduces them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from workloads.evidence import Evidence, PerImage
from workloads.tasks import _coco_eval as coco
from workloads.tasks.base import Calibrated, ModelFacts, PostProcessing, Task

if TYPE_CHECKING:
    from farm._validate import Fields
    from workloads.data import Split, WorkloadData

OUTPUT_CONVENTIONS = ("boxes_scores_labels", "yolo")
CLASS_IDS = ("category_id", "index")
#: Score at which the fp32 model's detections become the ground truth of fidelity.
FIDELITY_SCORE = 0.3
#: Candidate boxes per image kept before NMS (Ultralytics' max_nms).
MAX_NMS = 30_000


@dataclass(frozen=True)
class Detections:
    """One image's detections: xyxy boxes in original image pixels, scores, model labels."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    def above(self, score: float) -> Detections:
        keep = self.scores >= score
        return Detections(self.boxes[keep], self.scores[keep], self.labels[keep])

    def with_area(self) -> Detections:
        """Only the boxes of positive width and height (clipping to the image can flatten a box
        to a line, which no box can overlap: not a detection anything could reproduce)."""
        b = self.boxes.reshape(-1, 4)
        keep = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
        return Detections(b[keep], self.scores[keep], self.labels[keep])


@dataclass(frozen=True)
class Detection(PerImage, PostProcessing, Calibrated, Task):
    name: ClassVar[str] = "detection"
    fields: ClassVar[frozenset[str]] = frozenset(
        {"outputs", "letterbox", "nms_iou", "score_threshold", "max_detections", "class_ids"}
    )
    labelled_metrics: ClassVar[tuple[str, ...]] = (
        "map",
        "map50",
        "map75",
        "ar100",
        "map_small",
        "map_medium",
        "map_large",
    )
    fidelity_metrics: ClassVar[tuple[str, ...]] = ("map_vs_fp32", "map50_vs_fp32")
    per_class_prefixes: ClassVar[tuple[str, ...]] = ("ap/",)
    truth: ClassVar[tuple[str, ...]] = ("annotations",)
    class_count: ClassVar[str | None] = "data"
    #: Detectors take pixels scaled to [0, 1] (torchvision detectors normalise inside the
    #: model, Ultralytics models expect [0, 1]).
    normalization: ClassVar[tuple[tuple[float, float, float], tuple[float, float, float]]] = (
        (0.0, 0.0, 0.0),
        (1.0, 1.0, 1.0),
    )

    outputs: str = "boxes_scores_labels"
    nms_iou: float = 0.7
    score_threshold: float = 0.001
    max_detections: int = 100
    class_ids: str = "category_id"

    def __post_init__(self) -> None:
        if self.outputs not in OUTPUT_CONVENTIONS:
            raise ValueError(
                f"`outputs` must be one of {list(OUTPUT_CONVENTIONS)}, got {self.outputs!r}"
            )
        if self.class_ids not in CLASS_IDS:
            raise ValueError(
                f"`class_ids` must be one of {list(CLASS_IDS)}, got {self.class_ids!r}"
            )

    @classmethod
    def from_section(cls, section: Fields, *, facts: ModelFacts) -> Detection:
        """``outputs`` (required unless the model source fixes it), ``class_ids`` (default:
        ``index`` for a raw YOLO head, ``category_id`` otherwise), ``nms_iou``,
        ``score_threshold``, ``max_detections``."""
        expected = (
            f"one of {list(OUTPUT_CONVENTIONS)} (how the ONNX detector's outputs are laid out, "
            "see docs/workloads.md)"
        )
        given = section.string("outputs", None, choices=OUTPUT_CONVENTIONS, expected=expected)
        if facts.outputs is not None and given not in (None, facts.outputs):
            raise section.error("outputs", f"{facts.outputs!r}, this model's outputs", given)
        outputs = facts.outputs or given
        if outputs is None:
            raise section.error("outputs", expected + " (the field is required)")
        default_ids = "index" if outputs == "yolo" else "category_id"
        ids = facts.class_ids or section.string("class_ids", default_ids, choices=CLASS_IDS)
        return cls(
            outputs=outputs,
            nms_iou=section.fraction("nms_iou", 0.7, low_open=True),
            score_threshold=section.fraction("score_threshold", 0.001),
            max_detections=section.positive_int("max_detections", 100),
            class_ids=ids,
        )

    def check_output_dims(
        self, outputs: Mapping[str, tuple[int | str, ...]], batch: int | str
    ) -> None:
        if self.outputs == "boxes_scores_labels" and len(outputs) < 3:
            raise ValueError(
                '`outputs = "boxes_scores_labels"` needs three outputs (boxes, scores, labels), '
                f"got {len(outputs)}: {list(outputs)}"
            )

    @property
    def max_batch(self) -> int | None:
        return 1 if self.outputs == "boxes_scores_labels" else None

    @property
    def fixed_shape_outputs(self) -> bool:
        return self.outputs == "yolo"  # after NMS, the number of boxes varies

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {"score_threshold": self.score_threshold}
        if self.outputs == "yolo":
            out["nms_iou"] = self.nms_iou
        return out

    # -- decoding ----------------------------------------------------------------------------
    def decode(
        self, outputs: Sequence[np.ndarray], infos: Sequence[dict[str, Any] | None]
    ) -> list[Detections]:
        if self.outputs == "yolo":
            head = np.asarray(outputs[0])
            dets = [self._yolo_image(head[i]) for i in range(len(infos))]
        else:
            dets = [self._bsl_image(outputs)]
        return [to_original(d, info) for d, info in zip(dets, infos, strict=False)]

    def _bsl_image(self, outputs: Sequence[np.ndarray]) -> Detections:
        boxes, scores, labels = (np.asarray(o) for o in outputs[:3])
        if boxes.ndim == 3:  # a leading batch dimension of 1
            boxes, scores, labels = boxes[0], scores[0], labels[0]
        keep = scores >= self.score_threshold
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        order = np.argsort(-scores, kind="stable")[: self.max_detections]
        return Detections(
            boxes[order].astype(np.float32),
            scores[order].astype(np.float32),
            labels[order].astype(np.int64),
        )

    def _yolo_image(self, head: np.ndarray) -> Detections:
        """``head`` is ``[4 + C, A]`` for one image."""
        class_scores = head[4:]
        labels = class_scores.argmax(axis=0)
        scores = class_scores[labels, np.arange(head.shape[1])]
        keep = np.flatnonzero(scores > self.score_threshold)
        if keep.size > MAX_NMS:
            keep = keep[np.argsort(-scores[keep], kind="stable")[:MAX_NMS]]
        cx, cy, w, h = head[:4, keep]
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        scores, labels = scores[keep], labels[keep]
        picked = class_nms(boxes, scores, labels, self.nms_iou)[: self.max_detections]
        return Detections(
            boxes[picked].astype(np.float32),
            scores[picked].astype(np.float32),
            labels[picked].astype(np.int64),
        )

    def collect(self, predictions: list[Any]) -> list[Detections]:
        return list(predictions)

    def check_outputs(
        self, outputs: Sequence[np.ndarray], where: str, data: WorkloadData | None = None
    ) -> None:
        shapes = [tuple(np.asarray(o).shape) for o in outputs]
        if self.outputs == "yolo":
            head = np.asarray(outputs[0])
            if head.ndim != 3 or head.shape[1] < 5:
                raise ValueError(
                    f'{where}: `outputs = "yolo"` expects one output [B, 4 + C, A], got '
                    f"outputs of shapes {shapes}"
                )
            classes = head.shape[1] - 4
            if data is not None and self.class_ids == "index" and data.class_names:
                expected = len(data.class_names)
                if classes != expected:
                    raise ValueError(
                        f'{where}: `outputs = "yolo"`: the head has {classes} class rows but '
                        f"the annotations have {expected} categories (with "
                        '`class_ids = "index"` they must match)'
                    )
            return
        ok = len(outputs) >= 3
        if ok:
            boxes, scores, labels = (np.asarray(o) for o in outputs[:3])
            if boxes.ndim == 3 and boxes.shape[0] == 1:
                boxes, scores, labels = boxes[0], scores[0], labels[0]
            ok = (
                boxes.ndim == 2
                and boxes.shape[1] == 4
                and scores.shape == (boxes.shape[0],)
                and labels.shape == (boxes.shape[0],)
            )
        if not ok:
            raise ValueError(
                f'{where}: `outputs = "boxes_scores_labels"` expects three outputs boxes '
                f"[N, 4], scores [N], labels [N], got outputs of shapes {shapes}"
            )

    # -- metrics -----------------------------------------------------------------------------
    def quality(
        self, predictions: Any, split: Split, reference: Any, data: WorkloadData
    ) -> dict[str, float]:
        infos = split.info or tuple({"image_id": i} for i in range(len(split)))
        shapes = [_image_shape(info, split) for info in infos]
        ids = [int(info.get("image_id", i)) for i, info in enumerate(infos)]
        out: dict[str, float] = {}
        if split.truth is not None:
            names = dict(data.class_names) if isinstance(data.class_names, dict) else {}
            categories = names or {c: str(c) for t in split.truth for c in t["labels"]}
            gt = coco.ground_truth(
                [(i, h, w) for i, (h, w) in zip(ids, shapes, strict=True)],
                [t["boxes"] for t in split.truth],
                [t["labels"] for t in split.truth],
                categories,
                [t.get("iscrowd") for t in split.truth],
            )
            to_category = self._category_map(sorted(categories))
            dets = coco.detections(
                ids,
                [d.boxes for d in predictions],
                [d.scores for d in predictions],
                [to_category(d.labels) for d in predictions],
            )
            out.update(coco.evaluate_bbox(gt, dets))
        if reference is not None:
            out.update(fidelity(predictions, reference, ids, shapes))
        return out

    def calibration(self, predictions: Any, split: Split, data: WorkloadData) -> dict[str, float]:
        """Detection calibration (D-ECE): the detections scoring at least :data:`FIDELITY_SCORE`,
        each correct when it matches a ground-truth box of its category at IoU >= 0.5 (greedy,
        best score first, as COCO matches), binned by score like a classifier's ECE."""
        from workloads.kpis.calibration import adaptive_ece, ece

        if split.truth is None:
            return {}
        names = data.class_names if isinstance(data.class_names, dict) else {}
        to_category = self._category_map(sorted(names))
        scores, correct = [], []
        for det, truth in zip(predictions, split.truth, strict=True):
            det = det.above(FIDELITY_SCORE)
            scores.append(det.scores)
            correct.append(matched(det.boxes, to_category(det.labels), truth))
        s = np.concatenate(scores) if scores else np.zeros(0)
        c = np.concatenate(correct) if correct else np.zeros(0, dtype=bool)
        return {"ece": ece(s, c), "ece_adaptive": adaptive_ece(s, c)}

    # -- per-image evidence ----------------------------------------------------------------------
    #: An image whose own mAP falls (rises) by more than this counts as broken (fixed).
    flip_threshold: ClassVar[float] = 0.1
    #: COCO AP ranks detections: its interval sits around the estimate (see PerImage).
    interval_around_estimate: ClassVar[bool] = True

    def evidence(
        self, predictions: Any, split: Split, reference: Any, data: WorkloadData
    ) -> Evidence:
        """COCO's matching of every image (:mod:`workloads.tasks._coco_boot`), against the
        ground truth, else against fp32's confident detections (as ``map_vs_fp32``); an
        image's own score is its mAP (NaN for an image without a box that counts)."""
        from workloads.tasks import _coco_boot

        infos = split.info or tuple({"image_id": i} for i in range(len(split)))
        ids = [int(info.get("image_id", i)) for i, info in enumerate(infos)]
        if split.truth is not None:
            names = dict(data.class_names) if isinstance(data.class_names, dict) else {}
            categories = sorted(names or {c for t in split.truth for c in t["labels"]})
            truth: list[Any] = list(split.truth)
            to_category = self._category_map(categories)
            dets = [(d.boxes, d.scores, to_category(d.labels)) for d in predictions]
        elif reference is not None:
            confident = [r.above(FIDELITY_SCORE) for r in reference]
            truth = [{"boxes": r.boxes, "labels": r.labels} for r in confident]
            categories = sorted({int(c) for t in confident for c in t.labels} | {0})
            dets = [(d.boxes, d.scores, d.labels) for d in predictions]
        else:
            raise ValueError("evidence needs ground truth or the fp32 model's detections")
        arrays = _coco_boot.match(ids, truth, dets, categories)
        if not arrays["gt_count"].any():  # nothing to find (fidelity): agreement, as quality()
            agree = float(all(len(p.above(FIDELITY_SCORE)) == 0 for p in predictions))
            arrays["agree"] = np.array(agree)
        shown = [d.above(FIDELITY_SCORE) for d in predictions]
        arrays.update(_drawable(shown, infos))
        return Evidence(
            ids=split.image_ids(),
            score=_coco_boot.per_image_map(arrays),
            predicted=tuple(f"{len(d)} boxes" for d in shown),
            confidence=np.array([float(d.scores.max()) if len(d) else np.nan for d in shown]),
            arrays=arrays,
        )

    def draw(self, image: np.ndarray, evidence: Evidence, index: int) -> np.ndarray:
        """The image's confident detections (score >= :data:`FIDELITY_SCORE`), boxed."""
        from workloads.drawing import boxes

        a = evidence.arrays
        mine = a["draw_image"] == index
        text = f"{evidence.predicted[index]}, own mAP {evidence.score[index]:.2f}"
        return boxes(
            image, a["draw_boxes"][mine], a["draw_labels"][mine], a["draw_scores"][mine], text
        )

    def resampled_quality(self, evidence: Evidence, weights: np.ndarray) -> np.ndarray:
        """COCO mAP@[.5:.95] of the resampled images (:func:`_coco_boot.resampled_map`)."""
        from workloads.tasks import _coco_boot

        if "agree" in evidence.arrays:
            return np.full(len(np.atleast_2d(weights)), float(evidence.arrays["agree"]))
        return _coco_boot.resampled_map(evidence.arrays, weights)

    def _category_map(self, category_ids: list[int]) -> Any:
        if self.class_ids == "category_id":
            return lambda labels: labels
        table = np.asarray(category_ids, dtype=np.int64)

        def to_category(labels: np.ndarray) -> np.ndarray:
            ok = (labels >= 0) & (labels < len(table))
            return np.where(ok, table[np.clip(labels, 0, len(table) - 1)], -1)

        return to_category


def class_nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by class-wise NMS (a box is dropped when it overlaps a better-scoring box of
    its class with IoU > ``iou``), best score first. OpenCV's implementation: it imports in a
    fraction of a second in the fresh process of each trial (torchvision's takes seconds) and
    keeps the same boxes (checked against ``torchvision.ops.batched_nms`` in the tests)."""
    import cv2

    if len(scores) == 0:
        return np.zeros(0, dtype=np.int64)
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
    found = cv2.dnn.NMSBoxesBatched(
        xywh.astype(np.float64),  # type: ignore[arg-type]  # OpenCV takes arrays
        scores.astype(np.float32),  # type: ignore[arg-type]
        labels.astype(np.int32),  # type: ignore[arg-type]
        0.0,
        iou,
    )
    kept = np.asarray(found, dtype=np.int64).reshape(-1)
    return kept[np.argsort(-scores[kept], kind="stable")]


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` (n × 4, xyxy) with every box of ``b`` (m × 4)."""
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(br - tl, 0, None).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).clip(0).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).clip(0).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def matched(boxes: np.ndarray, categories: np.ndarray, truth: dict[str, Any]) -> np.ndarray:
    """Per detection (sorted best score first), whether it matches a not yet matched
    ground-truth box of its category at IoU >= 0.5."""
    hit = np.zeros(len(boxes), dtype=bool)
    gt_boxes, gt_labels = truth["boxes"], truth["labels"]
    if len(boxes) == 0 or len(gt_boxes) == 0:
        return hit
    iou = iou_matrix(boxes, gt_boxes)
    used = np.zeros(len(gt_boxes), dtype=bool)
    for i in range(len(boxes)):
        candidates = np.where((gt_labels == categories[i]) & ~used, iou[i], -1.0)
        j = int(candidates.argmax())
        if candidates[j] >= 0.5:
            hit[i], used[j] = True, True
    return hit


def to_original(dets: Detections, info: dict[str, Any] | None) -> Detections:
    """Boxes from input pixels back to the original image (undo scale and padding), clipped."""
    if not info or "scale" not in info:
        return dets
    sy, sx = info["scale"]
    py, px = info.get("pad", (0.0, 0.0))
    h, w = info["orig_hw"]
    boxes = dets.boxes.astype(np.float32, copy=True)
    boxes[:, [0, 2]] = np.clip((boxes[:, [0, 2]] - px) / sx, 0, w)
    boxes[:, [1, 3]] = np.clip((boxes[:, [1, 3]] - py) / sy, 0, h)
    return Detections(boxes, dets.scores, dets.labels)


def to_input_pixels(points: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    """Points ``[..., 2]`` (x, y) in original image pixels mapped into the model input's
    pixels (preprocessing's scale and padding, when ``info`` records them): the inverse of
    :func:`to_original`, for drawing on the image the model saw."""
    out = np.asarray(points, np.float32).copy()
    if "scale" in info:
        (sy, sx), (py, px) = info["scale"], info.get("pad", (0.0, 0.0))
        out[..., 0], out[..., 1] = out[..., 0] * sx + px, out[..., 1] * sy + py
    return out


def _drawable(shown: list[Detections], infos: Sequence[dict[str, Any]]) -> dict[str, np.ndarray]:
    """The confident detections of every image in the model input's pixels (preprocessing's
    scale and padding applied again), for the gallery."""
    rows, found, labels, scores = [], [], [], []
    for i, (d, info) in enumerate(zip(shown, infos, strict=True)):
        b = to_input_pixels(np.asarray(d.boxes).reshape(-1, 2, 2), info).reshape(-1, 4)
        rows.append(np.full(len(b), i, np.int32))
        found.append(b)
        labels.append(np.asarray(d.labels, np.int32))
        scores.append(np.asarray(d.scores, np.float32))
    return {
        "draw_image": np.concatenate(rows) if rows else np.zeros(0, np.int32),
        "draw_boxes": np.concatenate(found) if found else np.zeros((0, 4), np.float32),
        "draw_labels": np.concatenate(labels) if labels else np.zeros(0, np.int32),
        "draw_scores": np.concatenate(scores) if scores else np.zeros(0, np.float32),
    }


def _image_shape(info: dict[str, Any], split: Split) -> tuple[int, int]:
    if "orig_hw" in info:
        h, w = info["orig_hw"]
        return int(h), int(w)
    return int(split.x.shape[2]), int(split.x.shape[3])


def fidelity(
    predictions: list[Detections],
    reference: list[Detections],
    ids: list[int],
    shapes: list[tuple[int, int]],
) -> dict[str, float]:
    """mAP of ``predictions`` against the reference's confident detections as ground truth."""
    truth = [r.above(FIDELITY_SCORE).with_area() for r in reference]
    if sum(len(t) for t in truth) == 0:
        # Nothing to find: a candidate that finds nothing above the same score agrees fully.
        agree = float(all(len(p.above(FIDELITY_SCORE)) == 0 for p in predictions))
        return {"map_vs_fp32": agree, "map50_vs_fp32": agree}
    labels = sorted({int(c) for t in truth for c in t.labels} | {0})
    gt = coco.ground_truth(
        [(i, h, w) for i, (h, w) in zip(ids, shapes, strict=True)],
        [t.boxes for t in truth],
        [t.labels for t in truth],
        {c: str(c) for c in labels},
    )
    dets = coco.detections(
        ids,
        [p.boxes for p in predictions],
        [p.scores for p in predictions],
        [p.labels for p in predictions],
    )
    scores = coco.evaluate_bbox(gt, dets)
    return {"map_vs_fp32": scores["map"], "map50_vs_fp32": scores["map50"]}
