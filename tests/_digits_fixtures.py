"""Shared helpers for the workload and optimizer tests: the digits model, trained once per session.

Not a conftest: test modules import what they use from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

if TYPE_CHECKING:
    from farm.artifact import Artifact
    from optimizers import BuildContext
    from workloads import DigitsWorkload

_CACHE: dict[str, Path] = {}


def digits_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache directory per test session, so digits trains once however many modules ask."""
    if "dir" not in _CACHE:
        _CACHE["dir"] = tmp_path_factory.mktemp("digits-cache")
    return _CACHE["dir"]


@pytest.fixture(scope="session")
def digits() -> DigitsWorkload:
    from workloads import DigitsWorkload

    return DigitsWorkload()


@pytest.fixture(scope="session")
def digits_artifact(digits: DigitsWorkload, tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    return digits.source_artifact(digits_cache_dir(tmp_path_factory))


@pytest.fixture(scope="module")
def onnx_artifact(digits_artifact: Artifact, ctx: BuildContext) -> Artifact:
    """The digits model exported to ONNX, with the importing module's own ``ctx`` fixture."""
    from optimizers import apply

    return apply("export_onnx", {}, digits_artifact, ctx)


def accuracy(logits: np.ndarray, labels: np.ndarray | None) -> float:
    assert labels is not None
    return float((np.asarray(logits).argmax(1) == labels).mean())


def ort_logits(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    sess = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def torch_logits(artifact: Artifact, x: np.ndarray) -> np.ndarray:
    import torch

    from workloads import build_module

    with torch.no_grad():
        return build_module(artifact)(torch.from_numpy(x)).numpy()
