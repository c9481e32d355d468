"""The GPU proof script (``scripts/gpu_check.py``), on the CPU: its plan covers the cuda-torch
space, and its dry run exercises the measurement path without Ray or DuckDB."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from targets import get_target

ROOT = Path(__file__).resolve().parents[3]


def _gpu_check() -> Any:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    return gpu_check


def test_the_gpu_check_plan_covers_the_whole_cuda_torch_space() -> None:
    gpu_check = _gpu_check()
    plan = gpu_check.torch_plan((64, 128, 256), 64)
    target = get_target("cuda-torch")
    assert {c.precision for c in plan} == set(target.precisions)
    for knob, values in target.knobs.items():
        assert {c.extra.get(knob, values[0]) for c in plan} == set(values), knob
    assert {c.batch for c in plan} == {1, 64, 128, 256}
    assert {c.io for c in plan} == {"host", "device"}
    assert plan[0] == gpu_check.torch_config("fp32", 1, "host")  # the engine's baseline first
    assert len(plan) == len(set(plan))
    modes = [c.compile_mode for c in plan]
    assert set(modes[:-5]) == {"off"} and "off" not in modes[-5:]  # compile modes last


#: Run the dry run, then say which packages the GPU machine lacks it imported (none may be).
DRY_RUN = """
import runpy, sys
sys.argv = ["gpu_check.py", *sys.argv[1:]]
try:
    runpy.run_path("scripts/gpu_check.py", run_name="__main__")
except SystemExit as exit:
    code = exit.code
absent = {"ray", "duckdb", "optuna", "mlflow"}  # not on the project's GPU machine
print("IMPORTED:", sorted(absent & {m.split(".")[0] for m in sys.modules}))
sys.exit(code)
"""


@pytest.mark.slow
def test_the_gpu_check_dry_run_exercises_the_measurement_path_without_ray_or_duckdb() -> None:
    import os
    import subprocess

    args = ["--dry-run", "--budget-s", "150", "--min-duration-s", "0.05"]
    done = subprocess.run(
        [sys.executable, "-c", DRY_RUN, *args, "--max-duration-s", "0.3"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = done.stdout
    assert done.returncode == 0, done.stderr[-3000:] + out[-3000:]
    assert "IMPORTED: []" in out  # the GPU machine has no Ray, DuckDB or Optuna
    assert "bare PyTorch (dry run: fp32, channels_last, eager, on the CPU)" in out
    lines = [line for line in out.splitlines() if " cuda-torch " in f" {line} "]
    measured = [line for line in lines if "  measured  " in line]
    assert len(measured) >= 10
    assert all(" 1.000 " in line or " 0." in line for line in measured)  # top-1 agreement
    assert any("CUDA graphs need a GPU" in line for line in lines)
    assert "[dry run, not judged] farm best batch-1 p50" in out
    assert "[dry run, not judged] farm best throughput" in out
    assert "[dry run, not judged] top-1 agreement recorded for" in out
