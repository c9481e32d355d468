"""The task interface: what a model's outputs mean and how they are judged.

A :class:`Task` owns everything task-specific between a runtime session and the store: how raw
model outputs of one batch become per-image predictions (:meth:`Task.decode`: class scores,
boxes after NMS, label maps), the quality metrics of a split's predictions against its ground
truth and against the fp32 model's predictions (:meth:`Task.quality`), and the name of the
*primary* metric the engine optimises, stores in ``trials.accuracy`` and constrains. The engine,
the store, the fronts, recommend and the gate know nothing else about tasks.

Tasks are small frozen dataclasses (their configuration only) so they travel to Ray workers.
This module imports numpy only.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import numpy as np

    from workloads.base import Split, WorkloadData


@dataclass(frozen=True)
class Task(abc.ABC):
    """A task's configuration plus its decode and metric logic."""

    #: The name a job file gives in ``[workload] task``.
    name: ClassVar[str]
    #: Metric names the task records (besides per-class ones), labelled and fidelity.
    labelled_metrics: ClassVar[tuple[str, ...]]
    fidelity_metrics: ClassVar[tuple[str, ...]]
    #: Prefixes of per-class metrics (``ap/`` + a category name).
    per_class_prefixes: ClassVar[tuple[str, ...]] = ()
    #: Metrics where a lower value is better (the rest: higher is better).
    lower_is_better: ClassVar[frozenset[str]] = frozenset()

    # -- what the engine asks a task (declared, never inferred from its name) ------------------
    #: :meth:`decode` does work users ship (box decoding and NMS, a label map's argmax) that a
    #: latency sample may cover: ``[measurement] measure_postprocess`` applies, and the task
    #: implements :meth:`with_postprocess_timing`.
    has_postprocess: ClassVar[bool] = False
    #: Predictions carry confidences that calibration KPIs judge (:meth:`calibration`: ECE,
    #: Brier, a detector's D-ECE).
    has_calibration: ClassVar[bool] = False
    #: An operating point (``[evaluation] positive_classes``) is defined: the task implements
    #: :meth:`positive_scores`.
    supports_operating_point: ClassVar[bool] = False
    #: Transforms that fine-tune a torch model (pruning, an input-resolution change) may run:
    #: the task supplies the fine-tune's loss (:meth:`finetune_loss`).
    can_finetune: ClassVar[bool] = False

    def primary_metric(self, has_labels: bool) -> str:
        """The metric the job optimises: the labelled one with ground truth, else fidelity."""
        return self.labelled_metrics[0] if has_labels else self.fidelity_metrics[0]

    def metric_names(self, has_labels: bool = True) -> tuple[str, ...]:
        """Every metric name (per-class ones aside) a trial of this task records."""
        return (
            (*self.labelled_metrics, *self.fidelity_metrics)
            if has_labels
            else (self.fidelity_metrics)
        )

    @property
    def first_output_only(self) -> bool:
        """True when only the model's first output is needed (sessions then fetch only it)."""
        return False

    @property
    def times_postprocess(self) -> bool:
        """Whether a latency sample covers :meth:`decode` too (what users ship), not only the
        model. Stated in the measurement contract as ``measure_postprocess``."""
        return False

    @property
    def fixed_shape_outputs(self) -> bool:
        """True when the outputs' shapes do not depend on the input's content (logits, a raw
        detection head, score maps): a quantized model's outputs can then be compared with the
        float model's element by element (the quantizers' sensitivity ranking needs that)."""
        return True

    @property
    def max_batch(self) -> int | None:
        """The largest batch the model's output convention allows (None: no limit)."""
        return None

    def params(self) -> dict[str, Any]:
        """Task settings that change the quality numbers; recorded in every trial's params."""
        return {}

    def with_postprocess_timing(self, on: bool) -> Task:
        """This task with ``measure_postprocess`` set (tasks where :attr:`has_postprocess`)."""
        raise ValueError(f"{self.name} has no post-processing to time")

    def finetune_loss(self) -> Any:
        """The ``torch.nn`` loss a fine-tune trains with, given ``(outputs, targets)``
        (tasks where :attr:`can_finetune`)."""
        raise ValueError(f"no fine-tune is defined for {self.name} models")

    @abc.abstractmethod
    def decode(
        self, outputs: Sequence[np.ndarray], infos: Sequence[dict[str, Any] | None]
    ) -> list[Any]:
        """Per-image predictions from the raw outputs of one batch.

        ``infos`` has one entry per real image of the batch (a padded batch has more rows than
        ``infos``; the extra rows are ignored)."""

    @abc.abstractmethod
    def collect(self, predictions: list[Any]) -> Any:
        """The predictions of a whole split in the form :meth:`quality` takes."""

    def select(self, predictions: Any, index: Any) -> Any:
        """The predictions of the samples at ``index`` (an integer array)."""
        return [predictions[i] for i in index]

    def calibration(self, predictions: Any, split: Split, data: WorkloadData) -> dict[str, float]:
        """Calibration metrics of the model's confidence scores (none by default)."""
        return {}

    def positive_scores(self, predictions: Any, classes: tuple[int, ...]) -> np.ndarray:
        """Per sample, the score of "one of ``classes``" (an operating point's score)."""
        raise ValueError(f"an operating point (positive_classes) is not defined for {self.name}")

    @abc.abstractmethod
    def quality(
        self, predictions: Any, split: Split, reference: Any, data: WorkloadData
    ) -> dict[str, float]:
        """Quality metrics of ``predictions`` on ``split``: against its ground truth when it has
        one, and against ``reference`` (the fp32 model's predictions) when given."""

    def check_outputs(  # noqa: B027 - optional hook
        self, outputs: Sequence[np.ndarray], where: str, data: WorkloadData | None = None
    ) -> None:
        """Raise ``ValueError`` naming ``where`` when the raw outputs of one batch break the
        task's convention (checked on the fp32 model before a job starts)."""
