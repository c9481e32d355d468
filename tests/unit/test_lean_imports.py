"""Cheap things stay cheap: listing targets, validating a job file or running ``farm --help``
must not import torch, a runtime, Ray or DuckDB (STYLE: cheap config, heavy implementation).

Each case runs in a fresh interpreter and lists which heavy libraries it loaded.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FRAMEWORKS = ("torch", "torchvision", "sklearn", "cv2", "albumentations")
RUNTIMES = ("onnxruntime", "openvino", "nncf", "tensorrt", "torch_tensorrt")
ENGINE = ("ray", "duckdb", "optuna", "pandas", "plotly", "mlflow")
EVERYTHING = (*FRAMEWORKS, *RUNTIMES, *ENGINE)

#: case -> (code run in a fresh interpreter, libraries it must not load)
CASES = {
    "import farm": (
        "import farm, farm.errors; assert 'run' in dir(farm)",  # the API, imported on use
        (*EVERYTHING, "farm.api"),
    ),
    "farm --help": (
        "from farm.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass",
        EVERYTHING,
    ),
    "validate a job file": (
        "from farm.spec import load_job; load_job('farm/jobs/shapes_detect.toml')",
        EVERYTHING,
    ),
    "list targets and their runtimes": (
        "import targets\n"
        "for t in targets.catalog().values():\n"
        "    targets.runtime_class(t.runtime).available"
        "\n",
        (*FRAMEWORKS, *RUNTIMES, *ENGINE),
    ),
    "import the transforms": ("import optimizers", EVERYTHING),
    "import the workload layer": (
        "import workloads, workloads.tasks, workloads.kpis.spec, workloads.evidence, "
        "workloads.sources.torchvision_dense, workloads.sources.onnx_file, "
        "workloads.demos.shapes_data",
        EVERYTHING,
    ),
    "load the digits workload": (
        "from pathlib import Path; from workloads import load_workload; "
        "load_workload({'name': 'digits'}, Path('.'), source='job.toml')",
        EVERYTHING,
    ),
    "fingerprint the environment": (
        "from farm.measure.environment import fingerprint; fingerprint()",
        (*FRAMEWORKS, *RUNTIMES),
    ),
    "a fresh evaluation worker's imports": (
        "import farm.worker.remote, farm.measure.remote",
        (*FRAMEWORKS, *RUNTIMES),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_loads_no_heavy_library(case: str) -> None:
    code, forbidden = CASES[case]
    probe = f"{code}\nimport sys\nprint(sorted(m for m in {forbidden!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]", f"{case}: {out.stdout}"
