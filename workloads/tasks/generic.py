"""Generic: any model with one image input, judged by how closely its outputs match fp32's.

For the models that are neither classifiers, detectors nor segmenters in the farm's sense: text
recognisers (CTC scores per column), detection backbones (feature maps), embedding models,
depth or keypoint heads. There is no ground truth to score them against; a candidate's quality
is its *fidelity*, every output compared with the fp32 model's on the same inputs:

* ``output_cosine`` (the primary metric, higher is better, 1 = identical direction): per
  output, the cosine similarity of each sample's flattened tensors, averaged over the samples;
  the worst output's value. Two all-zero tensors agree (1), a zero against a non-zero does not
  (0).
* ``output_rel_error`` (lower is better): per output, ``‖candidate − fp32‖ / ‖fp32‖`` of each
  sample (1 where fp32's tensor is zero and the candidate's is not), averaged; the worst
  output's value.
* ``max_abs_output_diff`` (lower is better): the largest element-wise difference.

Every output must have the batch as its first axis (checked on each batch): a ``[T, N, C]``
sequence output cannot be split into samples and is refused with its shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from workloads.evidence import Evidence, PerImage, weighted_mean
from workloads.tasks.base import Task

if TYPE_CHECKING:
    from workloads.data import Split, WorkloadData


@dataclass(frozen=True)
class Generic(PerImage, Task):
    name: ClassVar[str] = "generic"
    labelled_metrics: ClassVar[tuple[str, ...]] = ()
    fidelity_metrics: ClassVar[tuple[str, ...]] = (
        "output_cosine",
        "output_rel_error",
        "max_abs_output_diff",
    )
    lower_is_better: ClassVar[frozenset[str]] = frozenset(
        {"output_rel_error", "max_abs_output_diff"}
    )

    def primary_metric(self, has_labels: bool) -> str:
        return self.fidelity_metrics[0]  # no ground truth, whatever the data

    def metric_names(self, has_labels: bool = True) -> tuple[str, ...]:
        return self.fidelity_metrics

    def decode(
        self, outputs: Sequence[np.ndarray], infos: Sequence[dict[str, Any] | None]
    ) -> list[tuple[np.ndarray, ...]]:
        arrays = [np.asarray(o) for o in outputs]
        check_batch_first(arrays, len(infos))
        return [
            tuple(a[i].astype(np.float32, copy=False) for a in arrays) for i in range(len(infos))
        ]

    def collect(self, predictions: list[Any]) -> list[np.ndarray]:
        """One array per output, samples stacked on the first axis."""
        if not predictions:
            return []
        return [np.stack([p[k] for p in predictions]) for k in range(len(predictions[0]))]

    def select(self, predictions: Any, index: Any) -> Any:
        return [np.asarray(o)[index] for o in predictions]

    def check_output_dims(
        self, outputs: Mapping[str, tuple[int | str, ...]], batch: int | str
    ) -> None:
        """Every output is compared sample by sample along its first axis, the batch: refuse
        an output whose dims show the batch elsewhere (a ``[T, N, C]`` sequence output)."""
        for name, dims in outputs.items():
            elsewhere = isinstance(batch, str) and batch != "?" and batch in dims[1:]
            fixed = bool(dims) and isinstance(dims[0], int) and dims[0] != batch
            if not dims or elsewhere or fixed:
                raise ValueError(
                    '"generic" compares outputs sample by sample along their first axis, the '
                    f"batch; output {name!r} has dims {list(dims)} for an input batch of "
                    f"{batch!r}: export it batch-first"
                )

    def check_outputs(
        self, outputs: Sequence[np.ndarray], where: str, data: WorkloadData | None = None
    ) -> None:
        try:
            check_batch_first([np.asarray(o) for o in outputs], None)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None

    def quality(
        self, predictions: Any, split: Split, reference: Any, data: WorkloadData
    ) -> dict[str, float]:
        if reference is None:
            return {}
        return output_fidelity(predictions, reference)

    # -- per-image evidence ----------------------------------------------------------------------
    #: An image whose cosine to fp32's outputs falls by more than this counts as broken.
    flip_threshold: ClassVar[float] = 0.01

    def evidence(
        self, predictions: Any, split: Split, reference: Any, data: WorkloadData
    ) -> Evidence:
        """Per image: the cosine of its outputs to fp32's (the worst output's)."""
        cos, _, _ = per_sample_fidelity(predictions, reference)
        score = cos.min(axis=0) if len(cos) else np.ones(len(split))
        return Evidence(
            ids=split.image_ids(),
            score=score,
            predicted=tuple(f"cosine {v:.4f}" for v in score),
            confidence=np.full(len(score), np.nan),
            arrays={"cosine": cos},
        )

    def resampled_quality(self, evidence: Evidence, weights: np.ndarray) -> np.ndarray:
        """``output_cosine``: per output the resampled mean cosine, the worst output's."""
        cos = evidence.arrays["cosine"]
        if not len(cos):
            return np.ones(len(np.atleast_2d(weights)))
        return np.min([weighted_mean(c, weights) for c in cos], axis=0)


def check_batch_first(outputs: list[np.ndarray], samples: int | None) -> None:
    """Every output has the same first axis (the batch), at least ``samples`` long."""
    firsts = {o.shape[0] if o.ndim else -1 for o in outputs}
    if len(firsts) != 1 or min(firsts) < max(samples or 1, 1):
        shapes = [tuple(o.shape) for o in outputs]
        raise ValueError(
            "a generic task's outputs must all have the batch as their first axis, got shapes "
            f"{shapes}" + (f" for a batch of {samples}" if samples is not None else "")
        )


def output_fidelity(candidate: list[np.ndarray], reference: list[np.ndarray]) -> dict[str, float]:
    """The three fidelity metrics of the module docstring, over every output."""
    cos, rel, max_diff = per_sample_fidelity(candidate, reference)
    return {
        "output_cosine": float(min(c.mean() for c in cos)) if len(cos) else 1.0,
        "output_rel_error": float(max(r.mean() for r in rel)) if len(rel) else 0.0,
        "max_abs_output_diff": max_diff,
    }


def per_sample_fidelity(
    candidate: list[np.ndarray], reference: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, float]:
    """Per output and sample (``[outputs, N]``) the cosine similarity and the relative error
    of the candidate's tensor against fp32's, and the largest element-wise difference."""
    if len(candidate) != len(reference):
        raise ValueError(f"{len(candidate)} outputs, but the fp32 model has {len(reference)}")
    cosines, errors, max_diff = [], [], 0.0
    for k, (a, r) in enumerate(zip(candidate, reference, strict=True)):
        a = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
        r = np.asarray(r, dtype=np.float64).reshape(len(r), -1)
        if a.shape != r.shape:
            raise ValueError(f"output {k} has shape {a.shape}, the fp32 model's {r.shape}")
        na, nr = np.linalg.norm(a, axis=1), np.linalg.norm(r, axis=1)
        diff = np.linalg.norm(a - r, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            # an identical sample is 1 exactly (two zero tensors included), not 1 - 1e-16
            cos = np.where(
                diff == 0, 1.0, np.where(na * nr > 0, (a * r).sum(axis=1) / (na * nr), 0.0)
            )
            # relative to fp32's norm; to the candidate's where fp32's is zero (then 1 or 0)
            rel = np.where(nr > 0, diff / nr, np.where(na > 0, diff / na, 0.0))
        cosines.append(np.clip(cos, -1.0, 1.0))
        errors.append(rel)
        if a.size:
            max_diff = max(max_diff, float(np.abs(a - r).max()))
    n = len(candidate[0]) if candidate else 0
    return np.reshape(cosines, (-1, n)), np.reshape(errors, (-1, n)), max_diff
