"""``[workload]`` in a job file → a :class:`~workloads.base.Workload`, checked before anything runs.

Three kinds of table are accepted::

    [workload]                 # an embedded demo: the digits classifier, the shapes detector
    name = "digits"            # or segmenter ("shapes-detect", "shapes-segment")

    [workload]                 # a torchvision architecture, with or without the user's weights
    model = "resnet18"
    weights = "resnet18-ft.pt" # a plain state_dict; omit for random weights (latency only)
    [workload.data]            # optional: images and ground truth; omit for synthetic inputs
    eval = "data/val"

    [workload]                 # a user ONNX file (torch transforms such as pruning are off)
    onnx = "model.onnx"
    task = "detection"         # classification when absent (see workloads.tasks.task_name)

Every error is a :class:`~farm.errors.SpecError` naming the job file, the field path and what
was expected; the workload's own checks (:meth:`Workload.validate`) run here too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from farm._validate import Fields
from farm.errors import SpecError
from workloads.base import Workload
from workloads.datasets.config import parse_data_config
from workloads.tasks import Classification, task_fields, task_name

#: The embedded workloads: the digits classifier, the shapes detection, segmentation and
#: keypoints demos and the OCR demos (PP-OCR's recogniser and text detector on rendered text).
EMBEDDED = (
    "digits",
    "shapes-detect",
    "shapes-segment",
    "shapes-keypoints",
    "ocr-lines",
    "ocr-pages",
)
#: The key that says which kind of table it is.
KINDS = ("name", "model", "onnx")


def load_workload(
    section: Any,
    base_dir: Path,
    results_dir: Path | None = None,
    *,
    source: str | Path = "<memory>",
) -> Workload:
    """Build the workload a job file's ``[workload]`` table describes.

    Relative paths are resolved against ``base_dir`` (the job file's directory); the embedded
    shapes demos write their data set under ``results_dir`` (default ``results/``). ``source``
    is the job file, named by every error.
    """
    f = Fields(section, source, "workload")
    kinds = [k for k in KINDS if k in f]
    if len(kinds) != 1:
        raise SpecError(
            f.source,
            "workload",
            'exactly one of `name` ("digits"), `model` (a torchvision architecture) or `onnx` '
            "(a file)",
            sorted(f.table) or "(no keys)",
        )
    base_dir = Path(base_dir)
    kind = kinds[0]
    if kind == "name":
        workload = _embedded(f, Path(results_dir or "results"))
    elif kind == "model":
        workload = _torchvision(f, base_dir)
    else:
        workload = _onnx(f, base_dir)
    data = f.table_of("data")
    slices = data.path("slices", base_dir, None, kind="file")
    workload.slices_file = None if slices is None else slices.resolve()
    workload.validate()
    from workloads.calib_overlap import calibration_origin

    workload.calib_origin = calibration_origin(f, base_dir)  # refuses calib = eval images
    return workload


def _embedded(f: Fields, results_dir: Path) -> Workload:
    f.only({"name", "data"})
    name = f.string(
        "name",
        choices=EMBEDDED,
        expected=f"one of the embedded workloads {list(EMBEDDED)} (use `model` or `onnx` for "
        "your own model)",
    )
    data = f.table_of("data")
    for key in data.table:
        if key != "slices":
            raise data.error(key, "only `slices`: the embedded workload brings its own data")
    if name == "digits":
        from workloads.demos.digits import DigitsWorkload

        return DigitsWorkload()
    if name.startswith("ocr-"):
        from workloads.demos.ocr import OcrDemo

        return OcrDemo(name, results_dir)
    if name == "shapes-keypoints":
        from workloads.demos.shapes_keypoints import ShapesKeypointsWorkload

        return ShapesKeypointsWorkload(results_dir)
    from workloads.demos.shapes import ShapesWorkload

    return ShapesWorkload(name, results_dir)


def _torchvision(f: Fields, base_dir: Path) -> Workload:
    """A torchvision classifier, detector or segmenter; the architecture decides the task."""
    from workloads.sources import torchvision_dense as dense
    from workloads.sources.torchvision import (
        ARCHITECTURES,
        TorchvisionWorkload,
        check_model_section,
    )

    f.only(dense.FIELDS | task_fields())
    known = (*ARCHITECTURES, *dense.DETECTORS, *dense.SEGMENTERS, *dense.KEYPOINT_DETECTORS)
    arch, weights, num_classes = check_model_section(f, base_dir, known)
    data = f.table_of("data").table
    if arch in ARCHITECTURES:
        extra = sorted(k for k in f.table if k in task_fields() and k != "task")
        if f.string("task", Classification.name) != Classification.name or extra:
            field = extra[0] if extra else "task"
            raise f.error(field, f"no task fields: {arch} is a classifier (task classification)")
        cfg = parse_data_config(data or None, base_dir, Classification.name, source=f.source)
        return TorchvisionWorkload(arch, weights, num_classes, cfg, str(f.source))
    if arch in dense.KEYPOINT_DETECTORS:
        from workloads.sources.torchvision_keypoints import TorchvisionKeypointsWorkload

        cfg = parse_data_config(data or None, base_dir, "keypoints", source=f.source)
        return TorchvisionKeypointsWorkload(arch, weights, num_classes, cfg, f)
    task = "detection" if arch in dense.DETECTORS else "segmentation"
    cfg = parse_data_config(data or None, base_dir, task, source=f.source)
    return dense.TorchvisionDenseWorkload(arch, weights, num_classes, cfg, f)


def _onnx(f: Fields, base_dir: Path) -> Workload:
    from workloads.sources.onnx_file import FIELDS, OnnxWorkload

    f.only(FIELDS | task_fields())
    name = task_name(f)
    cfg = parse_data_config(f.table_of("data").table or None, base_dir, name, source=f.source)
    path = f.path("onnx", base_dir, kind="file").resolve()
    return OnnxWorkload(path, cfg, f, name, base_dir)
