"""What every part of the model-zoo sweep shares: the table's columns, the sweep's limits and
contract, and how an error is written in a cell.

Imported by ``model_zoo.py`` and its other helpers (``python benchmarks/model_zoo.py`` puts this
folder on the path; the Ray workers get it on their ``PYTHONPATH``).
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Models above this many parameters are skipped (``model_zoo.py``'s docstring says why)…
MAX_PARAMS = 50_000_000
#: …except the cheapest member of each family that has none below it.
REPRESENTATIVES = ("alexnet", "vgg11", "vit_b_32", "wide_resnet50_2")
#: Input sizes tried, smallest first; a model is swept at the first one its eager forward takes.
SIZES = (32, 64, 96, 128, 160, 192, 224, 256)
EXPORTERS = ("torchscript", "dynamo")
#: (target, precision) of each ONNX export's cells.
ONNX_CELLS = (
    ("cpu-onnxruntime", "fp32"),
    ("cpu-onnxruntime", "int8"),
    ("cpu-openvino", "fp32"),
    ("cpu-openvino", "bf16"),
    ("cpu-openvino", "int8"),
)
TORCH = "torch.export"
#: Every column of the table: (exporter, target, precision).
COLUMNS = [(e, t, p) for e in EXPORTERS for t, p in ONNX_CELLS] + [(TORCH, "cpu-torch", "fp32")]
#: Synthetic eval and calibration images per model (seeded standard-normal, as a job without
#: data gets them).
SAMPLES = 16
SEED = 0
#: Largest |Δ logit| an fp32 cell (and an export) may show against its reference, relative to
#: the reference's largest |logit|.
FP32_TOLERANCE = 1e-2
#: A short measurement: the sweep asks whether a model runs, not how fast.
CONTRACT = {
    "warmup_s": 0.0,
    "warmup_iters": 1,
    "min_duration_s": 0.0,
    "min_samples": 4,
    "max_duration_s": 2.0,
    "window_count": 1,
}
#: Seconds a single Ray task (one model's exports, one build, one evaluation) may take.
TASK_TIMEOUT_S = 1800.0
REASON_CHARS = 400


def cell_key(exporter: str, target: str, precision: str) -> str:
    return f"{exporter}/{target}/{precision}"


def one_line(exc: BaseException | str, limit: int = REASON_CHARS) -> str:
    """An error as one line (the farm's own wording for trial errors), cut to ``limit``."""
    if isinstance(exc, BaseException):
        from farm.errors import TrialError
        from farm.measure.bench import explain

        cause = getattr(exc, "cause", None)  # a RayTaskError: the task's own exception
        exc = cause if isinstance(cause, BaseException) else exc
        # a trial's own error already names its step; anything else gets its type
        text = " ".join(str(exc).split()) if isinstance(exc, TrialError) else explain(exc)
    else:
        text = " ".join(exc.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
