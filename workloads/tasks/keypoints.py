"""Keypoints (pose): objects with K keypoints each, judged by COCO OKS mAP (faster-coco-eval).

Three output conventions, declared by the job (``[workload] outputs``):

* ``"boxes_scores_labels_keypoints"`` (torchvision's Keypoint R-CNN, after NMS, batch 1):
  ``boxes [N, 4]`` xyxy, ``scores [N]``, ``labels [N]``, ``keypoints [N, K, 3]`` (x, y and a
  visibility torchvision always sets to 1), optionally ``keypoints_scores [N, K]``; input pixels;
  a leading batch dimension of 1 is accepted.
* ``"yolo"`` (a raw Ultralytics pose head): one tensor ``[B, 4 + C + K·D, A]``: ``cx, cy, w,
  h``, C sigmoid class scores, then per keypoint ``x, y`` (and a sigmoid visibility when D = 3)
  in input pixels. K and D come from the ONNX metadata ``kpt_shape`` when present, else K is the
  number of ``oks_sigmas`` (17 without them) and D = 3; C is the rest. Per anchor the best class
  above ``score_threshold``, class-wise NMS at ``nms_iou``, the ``max_detections`` best.
* ``"end2end"`` (an export with NMS inside): ``[B, N, 6 + K·D]``: ``x1, y1, x2, y2, score,
  class`` then the keypoints.

Boxes and keypoints are mapped back from input pixels through the letterbox to the original
image and clipped to it. Labels are the model's own (``class_ids``, as for detection).

Sigmas are the user's (``oks_sigmas``, one per keypoint): COCO's 17 person sigmas by default for
a 17-keypoint model; any other K without ``oks_sigmas`` is refused naming the field (a uniform
default makes custom keypoint models look better than they are). ``use_area = false`` takes
``0.53 · w · h`` of the box for a file without ``area``.

Fidelity without ground truth (``kp_map_vs_fp32``): the fp32 model's poses scoring at least
:data:`FIDELITY_SCORE`, every keypoint labelled, are the ground truth the candidate is scored
against with the same protocol (1.0 for a candidate that reproduces them).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from workloads.evidence import Evidence, PerImage
from workloads.tasks import _keypoints_evidence as kev
from workloads.tasks import _oks_eval as oks
from workloads.tasks.base import ModelFacts, PostProcessing, Task
from workloads.tasks.detection import class_nms

if TYPE_CHECKING:
    from farm._validate import Fields
    from workloads.data import Split, WorkloadData

OUTPUT_CONVENTIONS = ("boxes_scores_labels_keypoints", "yolo", "end2end")
CLASS_IDS = ("category_id", "index")
#: Score at which the fp32 model's poses become the ground truth of fidelity.
FIDELITY_SCORE = 0.3
#: Candidate boxes per image kept before NMS (Ultralytics' max_nms).
MAX_NMS = 30_000
#: The keypoint count whose sigmas default to COCO's person sigmas.
COCO_KEYPOINTS = 17


@dataclass(frozen=True)
class Poses:
    """One image's detections: xyxy boxes and keypoints ``[n, K, 3]`` (x, y, visibility or
    score) in original image pixels, scores, model labels."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    keypoints: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    def above(self, score: float) -> Poses:
        keep = self.scores >= score
        return Poses(self.boxes[keep], self.scores[keep], self.labels[keep], self.keypoints[keep])


def _kpt_shape(metadata: Mapping[str, str]) -> tuple[int, int] | None:
    """``kpt_shape`` as Ultralytics writes it in the ONNX metadata (``[17, 3]``)."""
    raw = metadata.get("kpt_shape")
    if raw is None:
        return None
    try:
        k, d = json.loads(raw)
        return (int(k), int(d)) if int(k) > 0 and int(d) in (2, 3) else None
    except (ValueError, TypeError):
        return None


@dataclass(frozen=True)
class Keypoints(PostProcessing, PerImage, Task):
    name: ClassVar[str] = "keypoints"
    fields: ClassVar[frozenset[str]] = frozenset(
        {
            "outputs",
            "letterbox",
            "nms_iou",
            "score_threshold",
            "max_detections",
            "class_ids",
            "oks_sigmas",
            "use_area",
        }
    )
    labelled_metrics: ClassVar[tuple[str, ...]] = (
        "kp_map",
        "kp_map50",
        "kp_map75",
        "kp_ar",
        "kp_map_medium",
        "kp_map_large",
    )
    fidelity_metrics: ClassVar[tuple[str, ...]] = ("kp_map_vs_fp32",)
    #: Per keypoint, its mean similarity in the detections matched at OKS 0.5.
    per_class_prefixes: ClassVar[tuple[str, ...]] = ("kp_oks/",)
    truth: ClassVar[tuple[str, ...]] = ("annotations", "keypoints")
    class_count: ClassVar[str | None] = "data"
    normalization: ClassVar[tuple[tuple[float, float, float], tuple[float, float, float]]] = (
        (0.0, 0.0, 0.0),
        (1.0, 1.0, 1.0),
    )
    #: An image's own OKS AP must change by this much to count as broken (fixed).
    flip_threshold: ClassVar[float] = 0.25
    #: COCO AP ranks detections: its interval sits around the estimate (see PerImage).
    interval_around_estimate: ClassVar[bool] = True

    outputs: str = "boxes_scores_labels_keypoints"
    nms_iou: float = 0.7
    score_threshold: float = 0.001
    max_detections: int = 100
    class_ids: str = "category_id"
    #: The user's sigmas, one per keypoint (None: COCO's, for a 17-keypoint model).
    oks_sigmas: tuple[float, ...] | None = None
    use_area: bool = True
    #: Keypoints per object and values per keypoint (2 or 3) of a raw head, when known.
    kpt_shape: tuple[int, int] | None = None

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
    def from_section(cls, section: Fields, *, facts: ModelFacts) -> Keypoints:
        """``outputs`` (required unless the model source fixes it), ``class_ids``,
        ``nms_iou``, ``score_threshold``, ``max_detections``, ``oks_sigmas`` (one per keypoint,
        each > 0; required unless the model has COCO's 17), ``use_area``."""
        expected = (
            f"one of {list(OUTPUT_CONVENTIONS)} (how the keypoint model's outputs are laid out, "
            "see docs/workloads.md)"
        )
        given = section.string("outputs", None, choices=OUTPUT_CONVENTIONS, expected=expected)
        if facts.outputs is not None and given not in (None, facts.outputs):
            raise section.error("outputs", f"{facts.outputs!r}, this model's outputs", given)
        outputs = facts.outputs or given
        if outputs is None:
            raise section.error("outputs", expected + " (the field is required)")
        sigmas = section.numbers(
            "oks_sigmas", None, expected="a list of positive numbers, one sigma per keypoint"
        )
        if sigmas is not None and min(sigmas) <= 0:
            raise section.error("oks_sigmas", "positive numbers, one per keypoint", list(sigmas))
        shape = _kpt_shape(facts.metadata)
        task = cls(
            outputs=outputs,
            nms_iou=section.fraction("nms_iou", 0.7, low_open=True),
            score_threshold=section.fraction("score_threshold", 0.001),
            max_detections=section.positive_int("max_detections", 100),
            class_ids=facts.class_ids
            or section.string(
                "class_ids",
                "category_id" if outputs == OUTPUT_CONVENTIONS[0] else "index",
                choices=CLASS_IDS,
            ),
            oks_sigmas=sigmas,
            use_area=bool(section.flag("use_area", True)),
            kpt_shape=shape,
        )
        if shape is not None:
            problem = task.sigma_problem(shape[0], "the model's `kpt_shape` metadata")
            if problem:
                raise section.error("oks_sigmas", problem, None if sigmas is None else list(sigmas))
        return task

    # -- sigmas --------------------------------------------------------------------------------
    def sigma_problem(self, k: int, whose: str) -> str | None:
        """What is wrong with the sigmas for ``k`` keypoints (``whose``: where ``k`` comes
        from), or None."""
        if self.oks_sigmas is None:
            if k == COCO_KEYPOINTS:
                return None
            return (
                f"a list of {k} sigmas, one per keypoint: required, {whose} has {k} keypoints "
                f"and only COCO's {COCO_KEYPOINTS} person keypoints have default sigmas"
            )
        if len(self.oks_sigmas) != k:
            return f"{k} sigmas, one per keypoint ({whose} has {k} keypoints)"
        return None

    def sigmas(self, k: int) -> tuple[float, ...]:
        """The sigmas of ``k`` keypoints (checked by :meth:`sigma_problem` beforehand)."""
        problem = self.sigma_problem(k, "the model")
        if problem:
            raise ValueError(f"`workload.oks_sigmas`: expected {problem}")
        return self.oks_sigmas or oks.COCO_SIGMAS

    def head_shape(self) -> tuple[int, int]:
        """(K, D) of a raw head: the metadata's ``kpt_shape``, else K from the sigmas (COCO's
        17 without them) and D = 3."""
        if self.kpt_shape is not None:
            return self.kpt_shape
        k = len(self.oks_sigmas) if self.oks_sigmas is not None else COCO_KEYPOINTS
        return k, 3

    # -- settings --------------------------------------------------------------------------------
    @property
    def max_batch(self) -> int | None:
        return 1 if self.outputs == OUTPUT_CONVENTIONS[0] else None

    @property
    def fixed_shape_outputs(self) -> bool:
        return self.outputs == "yolo"  # after NMS, the number of poses varies

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {"score_threshold": self.score_threshold}
        if self.outputs == "yolo":
            out["nms_iou"] = self.nms_iou
        if self.oks_sigmas is not None:
            out["oks_sigmas"] = list(self.oks_sigmas)
        if not self.use_area:
            out["use_area"] = False
        return out

    # -- decoding ------------------------------------------------------------------------------
    def decode(
        self, outputs: Sequence[np.ndarray], infos: Sequence[dict[str, Any] | None]
    ) -> list[Poses]:
        if self.outputs == "yolo":
            head = np.asarray(outputs[0])
            poses = [self._yolo_image(head[i]) for i in range(len(infos))]
        elif self.outputs == "end2end":
            table = np.asarray(outputs[0])
            poses = [self._end2end_image(table[i]) for i in range(len(infos))]
        else:
            poses = [self._torchvision_image(outputs)]
        return [to_original(p, info) for p, info in zip(poses, infos, strict=False)]

    def _keep(self, boxes: Any, scores: Any, labels: Any, kps: Any, order: Any) -> Poses:
        return Poses(
            np.asarray(boxes)[order].astype(np.float32),
            np.asarray(scores)[order].astype(np.float32),
            np.asarray(labels)[order].astype(np.int64),
            np.asarray(kps)[order].astype(np.float32),
        )

    def _torchvision_image(self, outputs: Sequence[np.ndarray]) -> Poses:
        boxes, scores, labels, kps = (np.asarray(o) for o in outputs[:4])
        if boxes.ndim == 3:  # a leading batch dimension of 1
            boxes, scores, labels, kps = boxes[0], scores[0], labels[0], kps[0]
        keep = np.flatnonzero(scores >= self.score_threshold)
        order = keep[np.argsort(-scores[keep], kind="stable")[: self.max_detections]]
        return self._keep(boxes, scores, labels, kps, order)

    def _points(self, values: np.ndarray, d: int) -> np.ndarray:
        """``[n, K·D]`` keypoint values → ``[n, K, 3]`` (visibility 1 when D = 2)."""
        pts = values.reshape(len(values), -1, d)
        if d == 3:
            return pts
        return np.concatenate([pts, np.ones((*pts.shape[:2], 1), dtype=pts.dtype)], axis=2)

    def _yolo_image(self, head: np.ndarray) -> Poses:
        """``head`` is ``[4 + C + K·D, A]`` for one image."""
        k, d = self.head_shape()
        c = head.shape[0] - 4 - k * d
        class_scores = head[4 : 4 + c]
        labels = class_scores.argmax(axis=0)
        scores = class_scores[labels, np.arange(head.shape[1])]
        keep = np.flatnonzero(scores > self.score_threshold)
        if keep.size > MAX_NMS:
            keep = keep[np.argsort(-scores[keep], kind="stable")[:MAX_NMS]]
        cx, cy, w, h = head[:4, keep]
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        kps = self._points(head[4 + c :, keep].T, d)
        picked = class_nms(boxes, scores[keep], labels[keep], self.nms_iou)[: self.max_detections]
        return self._keep(boxes, scores[keep], labels[keep], kps, picked)

    def _end2end_image(self, table: np.ndarray) -> Poses:
        """``table`` is ``[N, 6 + K·D]`` for one image."""
        _, d = self.head_shape()
        scores = table[:, 4]
        keep = np.flatnonzero(scores >= self.score_threshold)
        order = keep[np.argsort(-scores[keep], kind="stable")[: self.max_detections]]
        kps = self._points(table[:, 6:], d)
        return self._keep(table[:, :4], scores, table[:, 5].round(), kps, order)

    def collect(self, predictions: list[Any]) -> list[Poses]:
        return list(predictions)

    def check_output_dims(
        self, outputs: Mapping[str, tuple[int | str, ...]], batch: int | str
    ) -> None:
        if self.outputs == OUTPUT_CONVENTIONS[0] and len(outputs) < 4:
            raise ValueError(
                '`outputs = "boxes_scores_labels_keypoints"` needs four outputs (boxes, scores, '
                f"labels, keypoints), got {len(outputs)}: {list(outputs)}"
            )

    def check_outputs(
        self, outputs: Sequence[np.ndarray], where: str, data: WorkloadData | None = None
    ) -> None:
        """The outputs follow the convention, and the model's keypoint count is the data's and
        the sigmas' (the sigma error names ``workload.oks_sigmas``)."""
        k = kev.check_layout(self, [np.asarray(o) for o in outputs], where)
        truth = None if data is None else data.eval.truth
        if truth:
            k_data = int(np.asarray(truth[0]["keypoints"]).shape[1])
            if k_data != k:
                raise ValueError(
                    f"{where}: the model predicts {k} keypoints per object but the annotations "
                    f"have {k_data}"
                )
        problem = self.sigma_problem(k, where)
        if problem:
            raise ValueError(f"field `workload.oks_sigmas`: expected {problem}")

    # -- metrics -------------------------------------------------------------------------------
    def quality(
        self, predictions: Any, split: Split, reference: Any, data: WorkloadData
    ) -> dict[str, float]:
        images = kev.image_table(split)
        ids = [i for i, _, _ in images]
        out: dict[str, float] = {}
        if split.truth is not None:
            names = dict(data.class_names) if isinstance(data.class_names, dict) else {}
            categories = names or {c: str(c) for t in split.truth for c in t["labels"]}
            k = int(np.asarray(split.truth[0]["keypoints"]).shape[1]) if split.truth else 0
            gt = oks.ground_truth(images, list(split.truth), categories, self.use_area)
            to_category = kev.category_map(self.class_ids, sorted(categories))
            dets = oks.results(
                ids,
                [p.keypoints for p in predictions],
                [p.scores for p in predictions],
                [to_category(p.labels) for p in predictions],
            )
            out.update(oks.evaluate_keypoints(gt, dets, self.sigmas(k) if k else ()))
            kp_names = next((t["keypoint_names"] for t in split.truth if "keypoint_names" in t), ())
            out.update(kev.per_keypoint(self, predictions, split, kp_names))
        if reference is not None:
            out["kp_map_vs_fp32"] = self._fidelity(predictions, reference, images)
        return out

    def _fidelity(
        self, predictions: list[Poses], reference: list[Poses], images: list[Any]
    ) -> float:
        """kp_map of ``predictions`` against the reference's confident poses as ground truth."""
        truth = kev.reference_truth(reference, FIDELITY_SCORE)
        if sum(len(t["labels"]) for t in truth) == 0:
            return float(all(len(p.above(FIDELITY_SCORE)) == 0 for p in predictions))
        k = next(t["keypoints"].shape[1] for t in truth if len(t["labels"]))
        labels = sorted({int(c) for t in truth for c in t["labels"]} | {0})
        gt = oks.ground_truth(images, truth, {c: str(c) for c in labels}, False)
        dets = oks.results(
            [i for i, _, _ in images],
            [p.keypoints for p in predictions],
            [p.scores for p in predictions],
            [p.labels for p in predictions],
        )
        return oks.evaluate_keypoints(gt, dets, self._fidelity_sigmas(k))["kp_map"]

    def _fidelity_sigmas(self, k: int) -> tuple[float, ...]:
        if self.oks_sigmas is not None and len(self.oks_sigmas) == k:
            return self.oks_sigmas
        return self.sigmas(k)

    # -- per-image evidence --------------------------------------------------------------------
    def evidence(
        self, predictions: Any, split: Split, reference: Any, data: WorkloadData | None = None
    ) -> Evidence:
        return kev.evidence(self, predictions, split, reference)

    def resampled_quality(self, evidence: Evidence, weights: np.ndarray) -> np.ndarray:
        return kev.resampled_kp_map(evidence, weights)

    def draw(self, image: np.ndarray, evidence: Evidence, index: int) -> np.ndarray:
        """The image's confident poses (boxes outlined, keypoints as dots), enlarged, with its
        own kp_map below."""
        from workloads.drawing import caption
        from workloads.tasks._keypoints_draw import draw_poses

        a = evidence.arrays
        mine = a["draw_image"] == index
        kps = a["draw_keypoints"][mine] if a["draw_keypoints"].size else np.zeros((0, 0, 3))
        n = int(mine.sum())
        shown = Poses(a["draw_boxes"][mine], np.ones(n), np.zeros(n, np.int64), kps)
        scale = max(1, -(-160 // min(image.shape[:2])))
        picture = np.asarray(draw_poses(image, shown, scale=scale))
        return caption(
            picture, f"{evidence.predicted[index]}, own kp_map {evidence.score[index]:.2f}"
        )


def to_original(poses: Poses, info: dict[str, Any] | None) -> Poses:
    """Boxes and keypoints from input pixels back to the original image (undo scale and
    padding), clipped to it."""
    if not info or "scale" not in info:
        return poses
    sy, sx = info["scale"]
    py, px = info.get("pad", (0.0, 0.0))
    h, w = info["orig_hw"]
    boxes = poses.boxes.astype(np.float32, copy=True)
    boxes[:, [0, 2]] = np.clip((boxes[:, [0, 2]] - px) / sx, 0, w)
    boxes[:, [1, 3]] = np.clip((boxes[:, [1, 3]] - py) / sy, 0, h)
    kps = poses.keypoints.astype(np.float32, copy=True)
    kps[..., 0] = np.clip((kps[..., 0] - px) / sx, 0, w)
    kps[..., 1] = np.clip((kps[..., 1] - py) / sy, 0, h)
    return Poses(boxes, poses.scores, poses.labels, kps)
