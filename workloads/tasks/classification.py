"""Classification: class scores (logits) → top-1, judged by accuracy or top-1 agreement."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from workloads.metrics import quality_metrics
from workloads.tasks.base import Task


def class_labels(data: WorkloadData) -> Any:
    """Class index -> the name per-class metrics use (the data's class name, else the index)."""
    names = data.class_names if isinstance(data.class_names, tuple | list) else None
    return lambda c: str(names[c]) if names is not None and c < len(names) else str(c)


if TYPE_CHECKING:
    from workloads.base import Split, WorkloadData


@dataclass(frozen=True)
class Classification(Task):
    name: ClassVar[str] = "classification"
    labelled_metrics: ClassVar[tuple[str, ...]] = ("accuracy",)
    fidelity_metrics: ClassVar[tuple[str, ...]] = (
        "top1_agreement",
        "max_abs_logit_diff",
        "mean_abs_logit_diff",
    )
    per_class_prefixes: ClassVar[tuple[str, ...]] = ("acc/",)
    lower_is_better: ClassVar[frozenset[str]] = frozenset(
        {"max_abs_logit_diff", "mean_abs_logit_diff"}
    )
    has_calibration: ClassVar[bool] = True
    supports_operating_point: ClassVar[bool] = True
    can_finetune: ClassVar[bool] = True

    def finetune_loss(self) -> Any:
        import torch

        return torch.nn.CrossEntropyLoss()

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

    def select(self, predictions: Any, index: Any) -> Any:
        return np.asarray(predictions)[index]

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


def class_scores(first_output: np.ndarray) -> np.ndarray:
    """A classifier's first output as (N, classes): trailing axes of length 1 (the
    ``(N, classes, 1, 1)`` of a convolutional head) dropped."""
    while first_output.ndim > 2 and first_output.shape[-1] == 1:
        first_output = first_output.reshape(first_output.shape[:-1])
    return first_output
