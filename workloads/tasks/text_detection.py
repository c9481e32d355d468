"""Text detection: text regions of a page, judged by the ICDAR 2015 protocol (``hmean``).

Two output conventions (``[workload] outputs``):

* ``"db"`` (default): a DB (Differentiable Binarization) text probability map ``[N, 1, H, W]``
  at the input's size, as PaddleOCR's detectors (PP-OCR) export it, turned into scored quads by
  DB post-processing (:mod:`workloads.tasks._db`: ``threshold`` 0.3, ``box_threshold`` 0.5,
  ``unclip_ratio`` 1.6, a 2×2 dilation (``dilation``), at most ``max_candidates`` regions; the
  defaults are RapidOCR's settings of PP-OCRv4's detector);
* ``"quads"``: the model gives the quads itself, ``[N, K, 9]`` rows ``x1, y1, …, x4, y4,
  score`` in input pixels; rows scored at or under ``box_threshold`` are dropped (padding).

Quads are mapped back from input pixels to the original image (undoing the resize or the
letterbox, ``[workload] letterbox``) and scored there against the label file's regions
(:mod:`workloads.tasks._icdar`: one-to-one matching at IoU > 0.5, ``###`` don't care,
micro-averaged ``precision``, ``recall`` and ``hmean``, the primary metric). Without ground
truth: ``hmean_vs_fp32``, the fp32 model's quads taken as the ground truth.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from workloads import fields
from workloads.evidence import Evidence, PerImage
from workloads.tasks import _icdar
from workloads.tasks.base import ModelFacts, PostProcessing, Task
from workloads.tasks.text_recognition import CHANNEL_ORDERS

if TYPE_CHECKING:
    from farm._validate import Fields
    from workloads.data import Split, WorkloadData

OUTPUT_CONVENTIONS = ("db", "quads")


@dataclass(frozen=True)
class Quads:
    """One image's detected text regions: quads ``[K, 4, 2]`` (original image pixels, clockwise
    from the top-left) and their scores ``[K]``."""

    quads: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.quads)


@dataclass(frozen=True)
class TextDetection(PostProcessing, PerImage, Task):
    name: ClassVar[str] = "text_detection"
    fields: ClassVar[frozenset[str]] = frozenset(
        {
            "outputs",
            "letterbox",
            "threshold",
            "box_threshold",
            "unclip_ratio",
            "max_candidates",
            "dilation",
            "channels",
        }
    )
    labelled_metrics: ClassVar[tuple[str, ...]] = ("hmean", "precision", "recall")
    fidelity_metrics: ClassVar[tuple[str, ...]] = ("hmean_vs_fp32",)
    truth: ClassVar[tuple[str, ...]] = ("labels",)
    #: PP-OCR's detectors normalise with mean = std = 0.5 (RapidOCR's settings).
    normalization: ClassVar[tuple[tuple[float, float, float], tuple[float, float, float]]] = (
        (0.5, 0.5, 0.5),
        (0.5, 0.5, 0.5),
    )
    #: What the label files hold for this task (``workloads.datasets.ocr``): text regions.
    label_kind: ClassVar[str] = "regions"
    #: An image counts as broken when its own hmean falls by more than this.
    flip_threshold: ClassVar[float] = 0.1

    outputs: str = "db"
    threshold: float = 0.3
    box_threshold: float = 0.5
    unclip_ratio: float = 1.6
    max_candidates: int = 1000
    dilation: bool = True
    #: The colour order the model takes (the data loader feeds it; recorded in params).
    channels: str = "rgb"

    def __post_init__(self) -> None:
        if self.outputs not in OUTPUT_CONVENTIONS:
            raise ValueError(f"`outputs` must be one of {list(OUTPUT_CONVENTIONS)}")

    @classmethod
    def from_section(cls, section: Fields, *, facts: ModelFacts) -> TextDetection:
        """``outputs``, ``threshold``, ``box_threshold``, ``unclip_ratio``, ``max_candidates``,
        ``dilation``, ``channels`` (``rgb``; ``bgr`` as PaddleOCR's tools feed images; read
        by the data loader, like ``letterbox``)."""
        fields.letterbox(section)  # checked here, used by the data loader
        return cls(
            outputs=section.string("outputs", "db", choices=OUTPUT_CONVENTIONS),
            threshold=section.number("threshold", 0.3, low=0, high=1, high_open=True),
            box_threshold=section.number("box_threshold", 0.5, low=0, high=1, high_open=True),
            unclip_ratio=section.number("unclip_ratio", 1.6, low=0),
            max_candidates=section.positive_int("max_candidates", 1000),
            dilation=section.flag("dilation", True),
            channels=section.string("channels", "rgb", choices=CHANNEL_ORDERS),
        )

    @property
    def first_output_only(self) -> bool:
        return True

    @property
    def fixed_shape_outputs(self) -> bool:
        return self.outputs == "db"

    def params(self) -> dict[str, Any]:
        """The post-processing settings that differ from the defaults."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name != "measure_postprocess" and getattr(self, f.name) != f.default
        }

    # -- decoding ------------------------------------------------------------------------------
    def decode(
        self, outputs: Sequence[np.ndarray], infos: Sequence[dict[str, Any] | None]
    ) -> list[Quads]:
        from workloads.tasks._db import db_quads

        first = np.asarray(outputs[0])
        out = []
        for i, info in enumerate(infos):
            if self.outputs == "db":
                quads, scores = db_quads(
                    first[i, 0],
                    self.threshold,
                    self.box_threshold,
                    self.unclip_ratio,
                    self.max_candidates,
                    self.dilation,
                )
            else:
                rows = first[i][first[i][:, 8] > self.box_threshold]
                quads, scores = rows[:, :8].reshape(-1, 4, 2), rows[:, 8]
            out.append(Quads(*to_original(quads.astype(np.float32), scores, info)))
        return out

    def collect(self, predictions: list[Any]) -> list[Quads]:
        return list(predictions)

    def check_output_dims(
        self, outputs: Mapping[str, tuple[int | str, ...]], batch: int | str
    ) -> None:
        dims = next(iter(outputs.values()), ())
        if self.outputs == "db" and (len(dims) != 4 or dims[1] not in (1, "?")):
            raise ValueError(
                f'`outputs = "db"` reads a probability map [N, 1, H, W], got dims {list(dims)}'
            )
        if self.outputs == "quads" and (len(dims) != 3 or dims[2] not in (9, "?")):
            raise ValueError(f'`outputs = "quads"` reads [N, K, 9], got dims {list(dims)}')

    def check_outputs(
        self, outputs: Sequence[np.ndarray], where: str, data: WorkloadData | None = None
    ) -> None:
        first = np.asarray(outputs[0])
        want = (4, 1) if self.outputs == "db" else (3, 9)
        axis = 1 if self.outputs == "db" else 2
        if first.ndim != want[0] or first.shape[axis] != want[1]:
            expected = "[N, 1, H, W] probabilities" if self.outputs == "db" else "[N, K, 9] quads"
            raise ValueError(
                f'{where}: `outputs = "{self.outputs}"` reads {expected}, got {first.shape}'
            )

    # -- metrics -------------------------------------------------------------------------------
    def counts(self, predictions: Sequence[Quads], truth: Sequence[Any]) -> np.ndarray:
        """Per image, ``(matched, gt_care, det_care)`` ([N, 3]); ``truth``: per image, text
        regions (``TextRegion``) or an fp32 model's :class:`Quads`."""
        rows = []
        for pred, gt in zip(predictions, truth, strict=True):
            if isinstance(gt, Quads):
                polys, ignore = list(gt.quads), [False] * len(gt)
            else:
                polys = [np.asarray(r.points, np.float64) for r in gt]
                ignore = [r.ignore for r in gt]
            c = _icdar.evaluate_image(polys, ignore, list(pred.quads))
            rows.append((c.matched, c.gt_care, c.det_care))
        return np.asarray(rows, dtype=np.int64).reshape(-1, 3)

    def quality(
        self, predictions: Any, split: Split, reference: Any, data: WorkloadData
    ) -> dict[str, float]:
        out: dict[str, float] = {}
        if split.truth is not None:
            m, g, d = self.counts(predictions, split.truth).sum(axis=0)
            p, r, h = _icdar.hmean(m, g, d)
            out.update(hmean=float(h), precision=float(p), recall=float(r))
        if reference is not None:
            m, g, d = self.counts(predictions, reference).sum(axis=0)
            out["hmean_vs_fp32"] = float(_icdar.hmean(m, g, d)[2])
        return out

    # -- per-image evidence --------------------------------------------------------------------
    def evidence(
        self, predictions: Any, split: Split, reference: Any, data: WorkloadData | None = None
    ) -> Evidence:
        """Per image its ICDAR counts (their sums give hmean on any resample), its own hmean as
        the score, the number of regions found and their mean score."""
        truth = split.truth if split.truth is not None else reference
        counts = self.counts(predictions, truth)
        ids = split.image_ids()
        return Evidence(
            ids=tuple(ids),
            score=np.asarray(
                [_icdar.image_hmean(_icdar.Counts(g, d, m)) for m, g, d in counts], np.float64
            ),
            predicted=tuple(f"{len(p)} regions" for p in predictions),
            confidence=np.asarray(
                [float(p.scores.mean()) if len(p) else np.nan for p in predictions], np.float64
            ),
            arrays={"matched": counts[:, 0], "gt_care": counts[:, 1], "det_care": counts[:, 2]},
        )

    def resampled_quality(self, evidence: Evidence, weights: np.ndarray) -> np.ndarray:
        w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
        a = evidence.arrays
        return _icdar.hmean(w @ a["matched"], w @ a["gt_care"], w @ a["det_care"])[2]


def to_original(
    quads: np.ndarray, scores: np.ndarray, info: dict[str, Any] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Quads from input pixels back to the original image (undo scale and padding), clipped."""
    if not info or "scale" not in info:
        return quads, scores
    sy, sx = info["scale"]
    py, px = info.get("pad", (0.0, 0.0))
    h, w = info["orig_hw"]
    out = quads.astype(np.float32, copy=True)
    out[..., 0] = np.clip((out[..., 0] - px) / sx, 0, w)
    out[..., 1] = np.clip((out[..., 1] - py) / sy, 0, h)
    return out, scores
