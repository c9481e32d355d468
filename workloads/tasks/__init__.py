"""Tasks: what a model's outputs mean and how they are judged (see :mod:`workloads.tasks.base`).

``[workload] task = "classification" | "detection" | "segmentation" | "keypoints" | "generic" |
"text_recognition" | "text_detection"`` in a job file
picks one (generic judges any outputs by their fidelity to the fp32 model's, for ONNX models
that are none of the others). :data:`TASKS` is the registry, a fixed table (user input never
chooses what gets imported): adding a task is one module plus one line in it. :func:`make_task`
looks the class up and lets it parse its own fields (:meth:`Task.from_section`).

There is no default task in this package: a missing ``[workload] task`` means classification for
a user's model (``model`` or ``onnx``), as the job file format documents, and that default is
applied in one place, :func:`task_name`. Importing this package imports numpy only.
"""

from __future__ import annotations

from farm._validate import Fields
from workloads.tasks.base import (
    Calibrated,
    FineTuning,
    ModelFacts,
    OperatingPoint,
    PostProcessing,
    Task,
)
from workloads.tasks.classification import Classification
from workloads.tasks.detection import Detection
from workloads.tasks.generic import Generic
from workloads.tasks.keypoints import Keypoints
from workloads.tasks.segmentation import Segmentation
from workloads.tasks.text_detection import TextDetection
from workloads.tasks.text_recognition import TextRecognition

#: Task name -> its class: one line per task.
TASKS: dict[str, type[Task]] = {
    Classification.name: Classification,
    Detection.name: Detection,
    Segmentation.name: Segmentation,
    Generic.name: Generic,
    TextRecognition.name: TextRecognition,
    TextDetection.name: TextDetection,
    Keypoints.name: Keypoints,
}
#: ``[workload] task`` of a user's model (``model`` or ``onnx``) whose job file gives none.
DEFAULT_TASK = Classification.name

#: ``[workload]`` fields every task accepts (how images are fed, how classes are named).
COMMON_FIELDS = frozenset({"task", "input_size", "class_names"})


def task_fields() -> frozenset[str]:
    """Every ``[workload]`` field some task reads (the loader accepts these besides a source's
    own fields; :func:`make_task` refuses the ones of another task)."""
    return COMMON_FIELDS.union(*(cls.fields for cls in TASKS.values()))


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better (accuracy, mAP, mIoU, fidelity), False for
    the error rates a task declares in ``lower_is_better`` (CER, a logit difference). A metric
    no task declares is taken as higher-is-better."""
    return not any(metric in cls.lower_is_better for cls in TASKS.values())


def task_class(name: str) -> type[Task]:
    """The class implementing task ``name`` (KeyError for an unknown name)."""
    return TASKS[name]


def task_name(section: Fields) -> str:
    """``[workload] task``, checked; :data:`DEFAULT_TASK` when absent (the only place the
    default is applied)."""
    return str(section.string("task", DEFAULT_TASK, choices=TASKS))


def make_task(name: str, section: Fields, facts: ModelFacts | None = None) -> Task:
    """Task ``name`` as the ``[workload]`` table ``section`` configures it. ``facts``: what the
    model source dictates (a torchvision detector's output convention, a segmenter's classes).

    A field that belongs to another task is refused naming that task."""
    cls = TASKS[name]
    for key in section.table:
        if key in COMMON_FIELDS or key in cls.fields:
            continue
        owners = [other for other, c in TASKS.items() if key in c.fields]
        if owners:
            raise section.error(
                key,
                f'only with `task = "{owners[0]}"` (this workload\'s task is "{name}")',
                section.table[key],
            )
    return cls.from_section(section, facts=facts or ModelFacts())


def known_metrics(task: str | None = None) -> tuple[set[str], set[str]]:
    """(metric names, per-class prefixes) trials of ``task`` can record; every task's when
    ``task`` is None or unknown (the workload decides, checked again when the job starts)."""
    from workloads.kpis import spec as kpi

    names: set[str] = {
        *kpi.CALIBRATION_METRICS,
        *kpi.ROBUSTNESS_METRICS,
        *kpi.SLICE_METRICS,
        *kpi.OPERATING_METRICS,
    }
    prefixes: set[str] = set(kpi.KPI_PREFIXES)
    for cls in [TASKS[task]] if task in TASKS else list(TASKS.values()):
        names.update((*cls.labelled_metrics, *cls.fidelity_metrics))
        prefixes.update(cls.per_class_prefixes)
    return names, prefixes


__all__ = [
    "COMMON_FIELDS",
    "DEFAULT_TASK",
    "TASKS",
    "Calibrated",
    "Classification",
    "Detection",
    "FineTuning",
    "Generic",
    "Keypoints",
    "ModelFacts",
    "OperatingPoint",
    "PostProcessing",
    "Segmentation",
    "Task",
    "TextDetection",
    "TextRecognition",
    "higher_is_better",
    "known_metrics",
    "make_task",
    "task_class",
    "task_fields",
    "task_name",
]
