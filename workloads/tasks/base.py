"""The task interface: what a model's outputs mean and how they are judged.

A :class:`Task` owns everything task-specific between a runtime session and the store: which
``[workload]`` fields configure it (:meth:`Task.from_section`), how raw model outputs of one
batch become per-image predictions (:meth:`Task.decode`: class scores, boxes after NMS, label
maps), the quality metrics of a split's predictions against its ground truth and against the
fp32 model's predictions (:meth:`Task.quality`), and the name of the *primary* metric the engine
optimises, stores as the trial's ``quality`` and constrains. The engine, the store, the fronts,
recommend and the gate know nothing else about tasks: the engine asks the flags below, never a
task's name.

Optional abilities are mix-ins that set their flag, so a flag and its methods cannot disagree:

* :class:`PostProcessing` (``has_postprocess``): :meth:`Task.decode` does work users ship (box
  decoding and NMS, a label map's argmax) that a latency sample may cover;
* :class:`Calibrated` (``has_calibration``): predictions carry confidences that calibration KPIs
  judge;
* :class:`OperatingPoint` (``supports_operating_point``): a score per sample for "one of the
  positive classes", so a threshold can be chosen;
* :class:`FineTuning` (``can_finetune``): the loss, targets and protected head with which a
  transform may fine-tune or prune a torch model.

A new task is one module (a frozen dataclass subclassing :class:`Task` and the mix-ins it
supports) plus one line in :data:`workloads.tasks.TASKS`. Tasks are small frozen dataclasses
(their configuration only) so they travel to Ray workers. This module imports numpy only, and
task modules must stay as cheap: validating a job file imports every task.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

    from farm._validate import Fields
    from workloads.data import Split, WorkloadData

T = TypeVar("T", bound="Task")


@dataclass(frozen=True)
class ModelFacts:
    """What the model source knows about the outputs before any ``[workload]`` field is read:
    a source may fix a task's fields (a torchvision detector's outputs are always
    ``boxes_scores_labels`` with category ids) or supply what a task needs (a segmenter's class
    count from its output channels; an ONNX file's metadata, where exporters record class names
    or keypoint shapes)."""

    #: The output convention the source dictates (None: the job's ``outputs`` field decides).
    outputs: str | None = None
    #: How the model's labels name classes (None: the job's ``class_ids`` field decides).
    class_ids: str | None = None
    #: The number of classes the model predicts, when the source knows it.
    num_classes: int | None = None
    #: An ONNX file's ``metadata_props`` (empty for torch sources).
    metadata: Mapping[str, str] = field(default_factory=dict)
    #: Where relative paths of the task's own fields resolve (the job file's folder); None:
    #: the current directory.
    base_dir: Path | None = None


@dataclass(frozen=True)
class Task(abc.ABC):
    """A task's configuration plus its decode and metric logic."""

    #: The name a job file gives in ``[workload] task``.
    name: ClassVar[str]
    #: The ``[workload]`` fields this task reads (besides the ones every workload has: ``task``,
    #: ``input_size``, ``class_names``); another task's field is refused, naming its task.
    fields: ClassVar[frozenset[str]] = frozenset()
    #: Metric names the task records (besides per-class ones), labelled and fidelity.
    labelled_metrics: ClassVar[tuple[str, ...]]
    fidelity_metrics: ClassVar[tuple[str, ...]]
    #: Prefixes of per-class metrics (``ap/`` + a category name).
    per_class_prefixes: ClassVar[tuple[str, ...]] = ()
    #: Metrics where a lower value is better (the rest: higher is better).
    lower_is_better: ClassVar[frozenset[str]] = frozenset()
    #: The kinds of ground truth a user's data holds for this task (see
    #: :mod:`workloads.datasets.config`): ``classes`` (one image folder per class),
    #: ``annotations`` (a COCO file), ``masks`` (a folder of label maps); empty: images only,
    #: quality is fidelity. ``[workload.data]`` takes ``eval_<kind>`` / ``train_<kind>`` for the
    #: kinds that are files or folders of their own.
    truth: ClassVar[tuple[str, ...]] = ()
    #: Where a model source finds the number of classes: ``"scores"`` (the first output's last
    #: axis), ``"channels"`` (the first output's axis 1, a score map), ``"data"`` (the ground
    #: truth's categories), or None (no classes: ``[workload] num_classes`` is refused).
    class_count: ClassVar[str | None] = None
    #: The default ``[workload.data]`` (mean, std) of this task's models; None: ImageNet's.
    normalization: ClassVar[
        tuple[tuple[float, float, float], tuple[float, float, float]] | None
    ] = None

    # -- what the engine asks a task (declared, never inferred from its name; set by the
    #    mix-ins below) -----------------------------------------------------------------------
    #: See :class:`PostProcessing`.
    has_postprocess: ClassVar[bool] = False
    #: See :class:`Calibrated`.
    has_calibration: ClassVar[bool] = False
    #: See :class:`OperatingPoint`.
    supports_operating_point: ClassVar[bool] = False
    #: See :class:`FineTuning`.
    can_finetune: ClassVar[bool] = False
    #: See :class:`workloads.evidence.PerImage`: per-image evidence of every trial.
    has_evidence: ClassVar[bool] = False

    @classmethod
    def from_section(cls: type[T], section: Fields, *, facts: ModelFacts) -> T:
        """The task a ``[workload]`` table configures (its :attr:`fields`), checked: every
        error names the job file and the field. ``facts``: what the model source dictates."""
        return cls()

    def primary_metric(self, has_labels: bool) -> str:
        """The metric the job optimises: the labelled one with ground truth, else fidelity."""
        return self.labelled_metrics[0] if has_labels else self.fidelity_metrics[0]

    def metric_names(self, has_labels: bool = True) -> tuple[str, ...]:
        """Every metric name (per-class ones aside) a trial of this task records."""
        if has_labels:
            return (*self.labelled_metrics, *self.fidelity_metrics)
        return self.fidelity_metrics

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
        """The collected predictions of the samples at ``index`` (an integer array), in the
        form :meth:`quality` takes: how slices of the eval split are scored."""
        return [predictions[i] for i in index]

    @abc.abstractmethod
    def quality(
        self, predictions: Any, split: Split, reference: Any, data: WorkloadData
    ) -> dict[str, float]:
        """Quality metrics of ``predictions`` on ``split``: against its ground truth when it has
        one, and against ``reference`` (the fp32 model's predictions) when given."""

    def check_output_dims(  # noqa: B027 - optional hook
        self, outputs: Mapping[str, tuple[int | str, ...]], batch: int | str
    ) -> None:
        """Raise ``ValueError`` when a model's declared outputs (name -> static dims, symbolic
        ones as names) cannot follow the task's convention for an input batch ``batch``; an
        ONNX source checks this when the job is loaded, before any data is read."""

    def check_outputs(  # noqa: B027 - optional hook
        self, outputs: Sequence[np.ndarray], where: str, data: WorkloadData | None = None
    ) -> None:
        """Raise ``ValueError`` naming ``where`` when the raw outputs of one batch break the
        task's convention (checked on the fp32 model before a job starts)."""


# -- optional abilities ----------------------------------------------------------------------


@dataclass(frozen=True)
class PostProcessing:
    """Mix-in of tasks whose :meth:`Task.decode` does work users ship (box decoding and NMS, a
    label map's argmax): ``[measurement] measure_postprocess`` decides whether a latency sample
    covers it (on by default: what is measured is what is served)."""

    has_postprocess: ClassVar[bool] = True

    #: A latency sample covers :meth:`Task.decode` (``[measurement] measure_postprocess``).
    measure_postprocess: bool = True

    @property
    def times_postprocess(self) -> bool:
        return self.measure_postprocess

    def with_postprocess_timing(self, on: bool) -> Any:
        return dataclasses.replace(self, measure_postprocess=on)  # type: ignore[type-var]


class Calibrated(abc.ABC):
    """Mix-in of tasks whose predictions carry confidences that calibration KPIs judge (ECE,
    Brier, a detector's D-ECE)."""

    has_calibration: ClassVar[bool] = True

    @abc.abstractmethod
    def calibration(self, predictions: Any, split: Split, data: WorkloadData) -> dict[str, float]:
        """Calibration metrics of the model's confidence scores on a labelled ``split``."""


class OperatingPoint(abc.ABC):
    """Mix-in of tasks with an operating point (``[evaluation] positive_classes``): a score per
    sample that a threshold, chosen on the calibration split, turns into a decision."""

    supports_operating_point: ClassVar[bool] = True

    @abc.abstractmethod
    def positive_scores(self, predictions: Any, classes: tuple[int, ...]) -> np.ndarray:
        """Per sample, the score of "one of ``classes``"."""


class FineTuning(abc.ABC):
    """Mix-in of tasks a transform may fine-tune a torch model for (pruning, an input-resolution
    change): the task supplies the loss, the training targets of a split and the layers pruning
    must keep whole (:mod:`workloads.training` runs the loop)."""

    can_finetune: ClassVar[bool] = True

    @abc.abstractmethod
    def finetune_loss(self) -> Any:
        """The ``torch.nn`` loss a fine-tune trains with, called as ``loss(outputs, targets)``."""

    @abc.abstractmethod
    def finetune_targets(self, split: Split) -> np.ndarray | None:
        """The training targets of ``split`` in the form :meth:`finetune_loss` takes; None when
        the split has no labels (no fine-tune is then possible)."""

    @abc.abstractmethod
    def protected_layers(self, model: nn.Module) -> list[nn.Module]:
        """The layers structured pruning must leave whole (the head whose outputs the task
        reads: a classifier's last Linear layer)."""
