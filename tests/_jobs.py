"""Job files and handles shared by tests (imported by conftest and test modules)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SMALL_JOB = """
name = "small"
targets = ["cpu-onnxruntime", "cpu-openvino"]
[workload]
name = "digits"
[search]
trials_per_target = 3
seed = 1
precision = ["fp32", "int8"]
batch_size = [1, 8]
threads = [1]
[constraints]
max_accuracy_drop = 0.02
[measurement]
min_duration_s = 0.2
max_duration_s = 0.6
min_samples = 32
"""


@dataclass(frozen=True)
class SmallJob:
    db: Path
    job_id: str
    results: Path
