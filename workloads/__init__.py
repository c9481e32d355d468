"""Workloads: the model source and data a job optimizes.

``load_workload(section, base_dir)`` turns a job file's ``[workload]`` table into a
:class:`Workload`. Three kinds of table are accepted::

    [workload]                 # the embedded default: sklearn digits + a small CNN
    name = "digits"

    [workload]                 # a torchvision architecture, with or without the user's weights
    model = "resnet18"
    weights = "resnet18-ft.pt" # a plain state_dict; omit for random weights (latency only)
    num_classes = 10           # optional: else from the weights, the data, or 1000
    [workload.data]            # optional: ImageFolder directories; omit for synthetic inputs
    eval = "data/val"
    calib = "data/calib"       # optional: else taken from the eval directory… see imagefolder
    train = "data/train"       # optional: needed for pruning's fine-tune
    resize = 256
    crop = 224
    mean = [0.485, 0.456, 0.406]
    std = [0.229, 0.224, 0.225]

    [workload]                 # a user ONNX file (torch transforms such as pruning are off)
    onnx = "model.onnx"

Importing this package does not import torch: validating a job file stays cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from farm.errors import UsageError
from workloads.base import (
    Split,
    Workload,
    WorkloadData,
    build_module,
    get_builder,
    register_builder,
    resize_data,
    resize_split,
    state_dict_bytes,
)
from workloads.datasets.config import DataConfig, parse_data_config
from workloads.demos.digits import DigitsWorkload
from workloads.metrics import quality_metrics
from workloads.tasks import TASK_FIELDS, task_name

#: The kinds of [workload] table and the keys each accepts (every kind but the embedded ones
#: also takes the task's fields, see workloads.tasks.TASK_FIELDS).
_KEYS = {
    "name": {"name", "data"},
    "model": {"model", "weights", "num_classes", "data", *TASK_FIELDS},
    "onnx": {"onnx", "data", "num_classes", "layout", *TASK_FIELDS},
}


#: The embedded workloads: the digits classifier and the shapes detection/segmentation demos.
EMBEDDED = ("digits", "shapes-detect", "shapes-segment")


def load_workload(
    section: dict[str, Any],
    base_dir: Path,
    results_dir: Path | None = None,
    *,
    source: str = "<memory>",
) -> Workload:
    """Build the workload described by a job file's ``[workload]`` table.

    Relative paths are resolved against ``base_dir`` (the job file's directory); the embedded
    shapes demos write their data set under ``results_dir`` (default ``results/``). Bad input
    raises :class:`UsageError` naming the field (``workload.model``) and what was expected.
    """
    if not isinstance(section, dict):
        raise UsageError(f"`workload`: expected a table, got {section!r}")
    kinds = [k for k in _KEYS if k in section]
    if len(kinds) != 1:
        raise UsageError(
            '`workload`: expected exactly one of `name` ("digits"), `model` (a torchvision '
            f"architecture) or `onnx` (a file), got keys {sorted(section) or '(none)'}"
        )
    kind = kinds[0]
    unknown = sorted(set(section) - _KEYS[kind])
    if unknown:
        raise UsageError(
            f"`workload.{unknown[0]}`: unknown field for a `{kind}` workload; "
            f"allowed fields: {', '.join(sorted(_KEYS[kind]))}"
        )
    base_dir = Path(base_dir)
    workload = _make(kind, section, base_dir, Path(results_dir or "results"))
    data = section.get("data")
    if isinstance(data, dict) and "slices" in data:
        workload.slices_file = parse_data_config({"slices": data["slices"]}, base_dir).slices
    return workload


def _make(kind: str, section: dict[str, Any], base_dir: Path, results_dir: Path) -> Workload:
    if kind == "name":
        if section["name"] not in EMBEDDED:
            raise UsageError(
                f"`workload.name`: expected one of the embedded workloads {list(EMBEDDED)}, "
                f"got {section['name']!r}; use `model` or `onnx` for your own model"
            )
        data = section.get("data", {})
        if not isinstance(data, dict):
            raise UsageError(f"`workload.data`: expected a table, got {data!r}")
        extra = sorted(set(data) - {"slices"})
        if extra:
            raise UsageError(
                f"`workload.data.{extra[0]}`: the embedded workload brings its own data; "
                "only `slices` may be given"
            )
        if section["name"] != "digits":
            from workloads.demos.shapes import ShapesWorkload

            return ShapesWorkload(section["name"], results_dir)
        return DigitsWorkload()
    if kind == "model":
        return _torchvision(section, base_dir)
    data = parse_data_config(section.get("data"), base_dir, task_name(section))
    from workloads.sources.onnx_file import OnnxWorkload

    onnx_path = _path_field(section, "onnx", base_dir)
    onnx_workload = OnnxWorkload(onnx_path, data, section)
    onnx_workload.task  # noqa: B018 - validates the task's fields now, before anything runs
    return onnx_workload


def _torchvision(section: dict[str, Any], base_dir: Path) -> Workload:
    """A torchvision classifier, detector or segmenter; the architecture decides the task."""
    from workloads.sources import torchvision_dense as dense
    from workloads.sources.torchvision import (
        ARCHITECTURES,
        TorchvisionWorkload,
        check_model_section,
    )

    known = (*ARCHITECTURES, *dense.DETECTORS, *dense.SEGMENTERS)
    arch, weights, num_classes = check_model_section(section, base_dir, known)
    if arch in ARCHITECTURES:
        extra = sorted(k for k in section if k in TASK_FIELDS and k != "task")
        if section.get("task", "classification") != "classification" or extra:
            field = extra[0] if extra else "task"
            raise UsageError(f"`workload.{field}`: {arch} is a classifier (task classification)")
        data = parse_data_config(section.get("data"), base_dir)
        return TorchvisionWorkload(arch, weights, num_classes, data)
    task = "detection" if arch in dense.DETECTORS else "segmentation"
    data = parse_data_config(section.get("data"), base_dir, task)
    workload = dense.TorchvisionDenseWorkload(arch, weights, num_classes, data, section)
    workload.task  # noqa: B018 - validates the task's fields now, before anything runs
    return workload


def _path_field(section: dict[str, Any], key: str, base_dir: Path) -> Path:
    value = section[key]
    if not isinstance(value, str) or not value:
        raise UsageError(f"`workload.{key}`: expected a file path (string), got {value!r}")
    path = (base_dir / value).resolve()
    if not path.is_file():
        raise UsageError(f"`workload.{key}`: file not found: {path}")
    return path


__all__ = [
    "DataConfig",
    "DigitsWorkload",
    "Split",
    "Workload",
    "WorkloadData",
    "build_module",
    "get_builder",
    "load_workload",
    "quality_metrics",
    "register_builder",
    "resize_data",
    "resize_split",
    "state_dict_bytes",
]
