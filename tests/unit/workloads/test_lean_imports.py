"""Validating a job file must not import torch or a runtime: the workload modules a job file's
check needs import numpy at most (torch, torchvision and the runtimes load when a model is built
or data is read)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
HEAVY = ("torch", "torchvision", "onnxruntime", "openvino", "nncf", "sklearn", "cv2")


@pytest.mark.parametrize(
    "module",
    [
        "workloads",
        "optimizers",
        "workloads.tasks",
        "workloads.sources.torchvision_dense",
        "workloads.sources.onnx_file",
        "workloads.demos.shapes_data",
        "workloads.kpis.spec",
    ],
)
def test_importing_loads_no_heavy_library(module: str) -> None:
    code = f"import sys, {module}; print([m for m in {HEAVY!r} if m in sys.modules])"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"


def test_loading_a_digits_job_loads_no_heavy_library() -> None:
    code = (
        "import sys; from pathlib import Path; from workloads import load_workload; "
        "load_workload({'name': 'digits'}, Path('.'), source='job.toml'); "
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"
