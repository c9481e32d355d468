"""Run a workload's fp32 model on a split and decode its outputs with the task, without the
engine: ONNX Runtime for an ONNX artifact, PyTorch for a torch one."""

from __future__ import annotations

from typing import Any

import numpy as np

from farm.artifact import Artifact
from workloads.data import Split
from workloads.tasks import Task


def raw_outputs(artifact: Artifact, x: np.ndarray) -> list[np.ndarray]:
    """The model's outputs on one batch ``x``."""
    if artifact.format == "onnx":
        import onnxruntime as ort

        sess = ort.InferenceSession(
            artifact.files[artifact.main_file], providers=["CPUExecutionProvider"]
        )
        return list(sess.run(None, {sess.get_inputs()[0].name: x}))
    import torch

    from workloads import build_module

    with torch.inference_mode():
        out = build_module(artifact)(torch.from_numpy(x))
    out = out if isinstance(out, tuple | list) else (out,)
    return [o.numpy() for o in out]


def predictions(artifact: Artifact, split: Split, task: Task, batch: int = 1) -> Any:
    """The task's collected predictions of the model on ``split`` (batches of ``batch``), the
    raw outputs of each batch checked against the task's convention first."""
    decoded: list[Any] = []
    infos = split.info or tuple(None for _ in range(len(split)))
    for start in range(0, len(split), batch):
        outputs = raw_outputs(artifact, split.x[start : start + batch])
        task.check_outputs(outputs, "the model")
        decoded.extend(task.decode(outputs, list(infos[start : start + batch])))
    return task.collect(decoded)
