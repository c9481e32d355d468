"""What the ONNX Runtime benchmarks share: ResNet-18 (random weights) in an ORT session.

Imported by the scripts next to it (``python benchmarks/<script>.py`` puts this folder on the path).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from farm.artifact import Artifact
from farm.measure.affinity import pin_to_cores
from targets import RuntimeOptions, runtime_class


def resnet18_onnx(directory: Path) -> Path:
    """torchvision ResNet-18, random weights, exported with the TorchScript exporter, opset 17."""
    import torch
    import torchvision

    model = torchvision.models.resnet18(weights=None).eval()
    path = directory / "model.onnx"
    torch.onnx.export(
        model,
        (torch.randn(1, 3, 224, 224),),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
    )
    return path


def ort_session(model: Path, workdir: Path, threads: int = 2, batch: int = 1) -> Any:
    options = RuntimeOptions(precision="fp32", threads=threads, batch_size=batch)
    return runtime_class("onnxruntime")().compile(
        Artifact.read_from("onnx", [model]), options, workdir
    )


@contextmanager
def resnet18_session(pin: bool, threads: int = 2) -> Iterator[tuple[Any, np.ndarray]]:
    """The farm's ORT session of ResNet-18 (``threads`` threads, batch 1) and a fixed input.

    With ``pin``, the process is pinned to ``threads`` cores before ORT creates its threads.
    Prints where it runs; closes the session on exit.
    """
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        model = resnet18_onnx(tmp_path)
        pinned = pin_to_cores(threads) if pin else None  # before ORT creates its threads
        print(f"pinned to CPUs {pinned}" if pinned else "not pinned")
        session = ort_session(model, tmp_path / "work", threads=threads)
        x = np.random.default_rng(0).standard_normal((1, 3, 224, 224), dtype=np.float32)
        try:
            yield session, x
        finally:
            session.close()


def query(session: Any, x: np.ndarray) -> Callable[[], None]:
    """One run of ``x`` through ``session``: the query the harness times."""
    run = session.run

    def run_once() -> None:
        run(x)

    return run_once
