"""Tasks: what a model's outputs mean and how they are judged (see :mod:`workloads.tasks.base`).

``[workload] task = "classification" | "detection" | "segmentation" | "generic"`` in a job file
picks one (classification is the default; generic judges any outputs by their fidelity to the
fp32 model's, for ONNX models that are none of the others). The registry is a fixed table:
user input never chooses what gets imported. Importing this package imports numpy only.
"""

from __future__ import annotations

import math
from typing import Any

from farm.errors import UsageError
from workloads.tasks.base import Task
from workloads.tasks.classification import Classification

#: Task name -> ``module:class`` of its implementation, imported on first use.
TASKS: dict[str, str] = {
    "classification": "workloads.tasks.classification:Classification",
    "detection": "workloads.tasks.detection:Detection",
    "segmentation": "workloads.tasks.segmentation:Segmentation",
    "generic": "workloads.tasks.generic:Generic",
}
DEFAULT_TASK = "classification"


def task_class(name: str) -> type[Task]:
    """The class implementing task ``name`` (KeyError for an unknown name)."""
    import importlib

    module, _, cls = TASKS[name].partition(":")
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]


#: ``[workload]`` fields that configure the task, and the task each belongs to (None: any).
TASK_FIELDS: dict[str, str | None] = {
    "task": None,
    "input_size": None,
    "class_names": None,
    "outputs": "detection",
    "letterbox": "detection",
    "nms_iou": "detection",
    "score_threshold": "detection",
    "max_detections": "detection",
    "class_ids": "detection",
}


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
    for name in [task] if task in TASKS else list(TASKS):
        cls = task_class(str(name))
        names.update((*cls.labelled_metrics, *cls.fidelity_metrics))
        prefixes.update(cls.per_class_prefixes)
    return names, prefixes


def task_name(section: dict[str, Any]) -> str:
    """The ``[workload] task`` (classification when absent), checked."""
    name = section.get("task", DEFAULT_TASK)
    if name not in TASKS:
        raise UsageError(f"`workload.task`: expected one of {list(TASKS)}, got {name!r}")
    return str(name)


def make_task(
    section: dict[str, Any],
    *,
    outputs: str | None = None,
    num_classes: int | None = None,
    class_ids: str | None = None,
) -> Task:
    """The task a ``[workload]`` table describes. ``outputs``/``class_ids``: what the model
    source dictates (a torchvision detector is always ``boxes_scores_labels`` with category
    ids); ``num_classes``: a segmenter's number of classes."""
    name = task_name(section)
    for key, owner in TASK_FIELDS.items():
        if owner is not None and key in section and owner != name:
            raise UsageError(f'`workload.{key}`: only for `task = "{owner}"`, not {name!r}')
    if name == "classification":
        return Classification()
    if name == "generic":
        from workloads.tasks.generic import Generic

        return Generic()
    if name == "segmentation":
        from workloads.tasks.segmentation import Segmentation

        if num_classes is None:
            raise UsageError("`workload.num_classes`: required for a segmentation workload")
        return Segmentation(num_classes=num_classes)
    from workloads.tasks.detection import CLASS_IDS, OUTPUT_CONVENTIONS, Detection

    if outputs is not None and "outputs" in section and section["outputs"] != outputs:
        raise UsageError(
            f"`workload.outputs`: this model's outputs are {outputs!r}, got {section['outputs']!r}"
        )
    conv = outputs or section.get("outputs")
    if conv not in OUTPUT_CONVENTIONS:
        raise UsageError(
            f"`workload.outputs`: expected one of {list(OUTPUT_CONVENTIONS)} (how the ONNX "
            f"detector's outputs are laid out, see docs/workloads.md), got {conv!r}"
        )
    default_ids = "index" if conv == "yolo" else "category_id"
    ids = class_ids or section.get("class_ids", default_ids)
    if ids not in CLASS_IDS:
        raise UsageError(f"`workload.class_ids`: expected one of {list(CLASS_IDS)}, got {ids!r}")
    return Detection(
        outputs=conv,
        nms_iou=_fraction(section, "nms_iou", 0.7, low_open=True),
        score_threshold=_fraction(section, "score_threshold", 0.001),
        max_detections=_count(section, "max_detections", 100),
        class_ids=ids,
    )


def input_size(section: dict[str, Any]) -> tuple[int, int] | None:
    """``[workload] input_size``: ``[H, W]`` or one number for a square input; None if absent."""
    if "input_size" not in section:
        return None
    value = section["input_size"]
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 8 for v in value)
    ):
        raise UsageError(
            f"`workload.input_size`: expected [height, width] in pixels (integers >= 8) or one "
            f"integer for a square input, got {value!r}"
        )
    return int(value[0]), int(value[1])


def letterbox(section: dict[str, Any], default: bool = True) -> bool:
    value = section.get("letterbox", default)
    if not isinstance(value, bool):
        raise UsageError(f"`workload.letterbox`: expected true or false, got {value!r}")
    return value


def class_names(section: dict[str, Any], count: int | None = None) -> tuple[str, ...] | None:
    """``[workload] class_names`` (per-class metrics are named by them), checked."""
    if "class_names" not in section:
        return None
    names = section["class_names"]
    if (
        not isinstance(names, list)
        or not all(isinstance(n, str) and n for n in names)
        or len(set(names)) != len(names)
        or (count is not None and len(names) != count)
    ):
        expected = "a list of distinct non-empty names"
        if count is not None:
            expected += f", one per class ({count})"
        raise UsageError(f"`workload.class_names`: expected {expected}, got {names!r}")
    return tuple(names)


def _fraction(section: dict[str, Any], key: str, default: float, low_open: bool = False) -> float:
    value = section.get(key, default)
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (0 < value < 1) if low_open else (0 <= value < 1)
    if not ok:
        rule = "0 < x < 1" if low_open else "0 <= x < 1"
        raise UsageError(f"`workload.{key}`: expected a number with {rule}, got {value!r}")
    return float(value)


def _count(section: dict[str, Any], key: str, default: int) -> int:
    value = section.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UsageError(f"`workload.{key}`: expected a positive integer, got {value!r}")
    return value


__all__ = [
    "DEFAULT_TASK",
    "TASKS",
    "TASK_FIELDS",
    "Classification",
    "Task",
    "class_names",
    "input_size",
    "known_metrics",
    "letterbox",
    "make_task",
    "task_class",
    "task_name",
]
