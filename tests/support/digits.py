"""Helpers around the digits model for the workload and optimizer tests (the fixtures that train
it once per session are in :mod:`support.workload_fixtures`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

if TYPE_CHECKING:
    from farm.artifact import Artifact

_CACHE: dict[str, Path] = {}


def digits_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache directory per test session, so digits trains once however many modules ask."""
    if "dir" not in _CACHE:
        _CACHE["dir"] = tmp_path_factory.mktemp("digits-cache")
    return _CACHE["dir"]


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
