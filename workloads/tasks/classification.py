"""Classification: class scores (logits) → top-1, judged by accuracy or top-1 agreement.

With labels the primary metric is ``accuracy`` (plus ``acc/<class>``, the recall of each class);
without, fidelity to the fp32 model: ``top1_agreement`` (the fraction of samples whose top-1
class equals the fp32 model's) and the largest and mean absolute logit differences.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from farm.errors import UsageError
from workloads.evidence import Evidence, PerImage, weighted_mean
from workloads.tasks.base import Calibrated, FineTuning, OperatingPoint, Task

if TYPE_CHECKING:
    from torch import nn

    from workloads.data import Split, WorkloadData


@dataclass(frozen=True)
class Classification(PerImage, Calibrated, OperatingPoint, FineTuning, Task):
    name: ClassVar[str] = "classification"
    labelled_metrics: ClassVar[tuple[str, ...]] = ("accuracy",)
    fidelity_metrics: ClassVar[tuple[str, ...]] = (
        "top1_agreement",
        "max_abs_logit_diff",
        "mean_abs_logit_diff",
    )
    per_class_prefixes: ClassVar[tuple[str, ...]] = ("acc/",)
    truth: ClassVar[tuple[str, ...]] = ("classes",)
    class_count: ClassVar[str | None] = "scores"
    lower_is_better: ClassVar[frozenset[str]] = frozenset(
        {"max_abs_logit_diff", "mean_abs_logit_diff"}
    )

    @property
    def first_output_only(self) -> bool:
        return True

    def decode(
        self, outputs: Sequence[np.ndarray], infos: Sequence[dict[str, Any] | None]
    ) -> list[Any]:
        logits = class_scores(np.asarray(outputs[0], dtype=np.float32))
        return list(logits[: len(infos)])

    def collect(self, predictions: list[Any]) -> np.ndarray:
        return np.stack(predictions).astype(np.float32, copy=False)

    def select(self, predictions: Any, index: Any) -> Any:
        return np.asarray(predictions)[index]

    def quality(
        self, predictions: Any, split: Split, reference: Any, data: WorkloadData
    ) -> dict[str, float]:
        out = quality_metrics(predictions, split.y, reference)
        if split.y is not None:  # per-class accuracy (the recall of each class)
            names = class_labels(data)
            top1 = np.asarray(predictions).argmax(axis=1)
            for c in np.unique(split.y):
                of_class = split.y == c
                out[f"acc/{names(int(c))}"] = float((top1[of_class] == c).mean())
        return out

    def check_outputs(
        self, outputs: Sequence[np.ndarray], where: str, data: WorkloadData | None = None
    ) -> None:
        first = class_scores(np.asarray(outputs[0]))
        if first.ndim != 2:
            raise ValueError(
                f"{where}: a classifier's first output must be class scores (N, classes) (or "
                f"(N, classes, 1, 1)), got shape {np.asarray(outputs[0]).shape}; for a model "
                'whose outputs are not class scores (OCR, a backbone) set `task = "generic"` '
                "in [workload]"
            )

    # -- per-image evidence ----------------------------------------------------------------------
    def evidence(
        self, predictions: Any, split: Split, reference: Any, data: WorkloadData
    ) -> Evidence:
        """Per image: right or wrong (against the label, else against fp32's top-1 class), the
        predicted class and its softmax probability; with labels, its Brier and NLL terms."""
        from workloads.evidence import KPI_TERMS
        from workloads.kpis.calibration import per_image_terms, softmax

        logits = np.asarray(predictions, dtype=np.float32)
        probs = softmax(logits)
        # the calibration KPIs that are means over images, term by term
        labelled = {} if split.y is None else per_image_terms(probs, split.y)
        terms = {KPI_TERMS + name: values for name, values in labelled.items()}
        top1 = logits.argmax(axis=1)
        if split.y is not None:
            correct = top1 == np.asarray(split.y)
        elif reference is not None:
            correct = top1 == np.asarray(reference).argmax(axis=1)
        else:
            raise ValueError("evidence needs labels or the fp32 model's predictions")
        names = class_labels(data)
        return Evidence(
            ids=split.image_ids(),
            score=correct.astype(np.float64),
            predicted=tuple(names(int(c)) for c in top1),
            confidence=probs.max(axis=1).astype(np.float64),
            correct=correct,
            arrays={
                "correct": correct,
                "label": np.asarray(top1, dtype=np.int32),
                **({} if split.y is None else {"truth": np.asarray(split.y, dtype=np.int32)}),
                **terms,
            },
        )

    def resampled_quality(self, evidence: Evidence, weights: np.ndarray) -> np.ndarray:
        """Accuracy (or top-1 agreement): the mean of right/wrong over the resampled images."""
        return weighted_mean(evidence.arrays["correct"], weights)

    # -- KPIs ----------------------------------------------------------------------------------
    def calibration(self, predictions: Any, split: Split, data: WorkloadData) -> dict[str, float]:
        from workloads.kpis.calibration import classification_calibration

        if split.y is None:
            return {}
        return classification_calibration(np.asarray(predictions), split.y)

    def positive_scores(self, predictions: Any, classes: tuple[int, ...]) -> np.ndarray:
        """The softmax probability mass of the positive classes."""
        from workloads.kpis.calibration import softmax

        probs = softmax(np.asarray(predictions))
        return probs[:, list(classes)].sum(axis=1)

    # -- fine-tuning ---------------------------------------------------------------------------
    def finetune_loss(self) -> Any:
        import torch

        return torch.nn.CrossEntropyLoss()

    def finetune_targets(self, split: Split) -> np.ndarray | None:
        return split.y

    def protected_layers(self, model: nn.Module) -> list[nn.Module]:
        """The last Linear layer: its outputs are the classes."""
        from torch import nn

        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise UsageError(
                "a classifier's head (its last Linear layer) stays whole when it is pruned, "
                "and this model has no Linear layer"
            )
        return [linears[-1]]


def class_labels(data: WorkloadData) -> Callable[[int], str]:
    """Class index -> the name per-class metrics use (the data's class name, else the index)."""
    names = data.class_names if isinstance(data.class_names, tuple | list) else None
    return lambda c: str(names[c]) if names is not None and c < len(names) else str(c)


def class_scores(first_output: np.ndarray) -> np.ndarray:
    """A classifier's first output as (N, classes): trailing axes of length 1 (the
    ``(N, classes, 1, 1)`` of a convolutional head) dropped."""
    while first_output.ndim > 2 and first_output.shape[-1] == 1:
        first_output = first_output.reshape(first_output.shape[:-1])
    return first_output


def quality_metrics(
    logits: np.ndarray, labels: np.ndarray | None, reference_logits: np.ndarray | None
) -> dict[str, float]:
    """Accuracy (when there are labels) and fidelity to the fp32 reference (when given).

    ``top1_agreement`` is the fraction of samples whose top-1 class equals the reference's;
    ``max_abs_logit_diff`` / ``mean_abs_logit_diff`` compare the raw logits. Without labels
    (synthetic inputs) fidelity is the only quality there is.
    """
    logits = np.asarray(logits, dtype=np.float32)
    if logits.ndim != 2:
        raise ValueError(f"logits must be (N, classes), got shape {logits.shape}")
    out: dict[str, float] = {}
    if not np.all(np.isfinite(logits)):
        raise ValueError("logits contain NaN or infinite values")
    top1 = logits.argmax(axis=1)
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (len(logits),):
            raise ValueError(f"labels must be ({len(logits)},), got shape {labels.shape}")
        out["accuracy"] = float((top1 == labels).mean())
    if reference_logits is not None:
        ref = np.asarray(reference_logits, dtype=np.float32)
        if ref.shape != logits.shape:
            raise ValueError(f"reference logits {ref.shape} differ from logits {logits.shape}")
        diff = np.abs(logits - ref)
        out["top1_agreement"] = float((top1 == ref.argmax(axis=1)).mean())
        out["max_abs_logit_diff"] = float(diff.max())
        out["mean_abs_logit_diff"] = float(diff.mean())
    return out
