"""A tiny CNN (3×32×32 → 10 classes) exported every way the targets take, for fast real tests.

A plain helper: ``tests/conftest.py`` wraps :func:`build_tiny_models` in the session's
``tiny`` fixture.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

INPUT_SHAPE = (3, 32, 32)
NUM_CLASSES = 10


@dataclass(frozen=True)
class TinyModels:
    directory: Path
    #: ONNX with a dynamic batch dimension.
    onnx: Path
    #: ONNX with a static batch of 2 (for "this batch does not fit" errors).
    onnx_static2: Path
    #: ``torch.export`` ExportedProgram with a dynamic batch dimension.
    pt2: Path
    #: The eager module, for reference outputs.
    module: object

    def reference(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.module(torch.from_numpy(batch)).numpy()  # type: ignore[operator]


def tiny_cnn() -> object:
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, NUM_CLASSES),
    )
    bn = model[1]
    with torch.no_grad():  # non-trivial running statistics, so folding BN is really tested
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    return model.eval()


def build_tiny_models(directory: Path) -> TinyModels:
    with warnings.catch_warnings():
        # The TorchScript exporter (dynamo=False) is deprecated but is what the farm uses.
        warnings.simplefilter("ignore", DeprecationWarning)
        return _build(directory)


def _build(directory: Path) -> TinyModels:
    import torch

    module = tiny_cnn()
    example = torch.randn(2, *INPUT_SHAPE)
    onnx_path = directory / "model.onnx"
    torch.onnx.export(
        module,
        (example,),
        str(onnx_path),
        dynamo=False,
        opset_version=17,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
    )
    static_dir = directory / "static2"
    static_dir.mkdir(exist_ok=True)
    static_path = static_dir / "model.onnx"
    torch.onnx.export(
        module,
        (example,),
        str(static_path),
        dynamo=False,
        opset_version=17,
        input_names=["input"],
        output_names=["logits"],
    )
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
    pt2_path = directory / "model.pt2"
    torch.export.save(program, str(pt2_path))
    return TinyModels(directory, onnx_path, static_path, pt2_path, module)


def random_batch(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, *INPUT_SHAPE), dtype=np.float32)
