"""The GPU check's model and its references: the two models it measures (ResNet-18, or a tiny CNN
for the CPU dry run), the artifacts the farm's runtimes load (a dynamic-batch ExportedProgram, an
ONNX file), the CPU fp32 logits every configuration's top-1 is compared with, and the bare
PyTorch loop (no farm code) the farm's timings are judged against.

Imported by ``gpu_check.py`` (its folder is on the path); needs torch and numpy only.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: What the bare loop runs, on a GPU and in a dry run.
BARE = {
    True: "fp16, channels_last, CUDA graph replay, input on the GPU",
    False: "dry run: fp32, channels_last, eager, on the CPU",
}


@dataclass(frozen=True)
class Model:
    """What is measured: a builder and its input shape."""

    name: str
    input_shape: tuple[int, int, int]
    build: Callable[[], Any]


def resnet18() -> Any:
    import torch
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).eval()


def tiny_cnn() -> Any:
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 10),
    ).eval()


MODELS = {
    "resnet18": Model("ResNet-18 (random weights, 224×224)", (3, 224, 224), resnet18),
    "tiny": Model("a tiny CNN (3×32×32, CPU dry run)", (3, 32, 32), tiny_cnn),
}


@dataclass
class Bare:
    """The bare PyTorch reference at one batch size, measured once or twice."""

    batch: int
    p50_ms: list[float] = field(default_factory=list)
    throughput_ips: list[float] = field(default_factory=list)

    @property
    def best_p50(self) -> float:
        return min(self.p50_ms)

    @property
    def best_throughput(self) -> float:
        return max(self.throughput_ips)

    def drift(self) -> str:
        if len(self.p50_ms) < 2:
            return "measured once"
        a, b = self.p50_ms[:2]
        return f"runs {a:.4g} and {b:.4g} ms, drift {abs(b - a) / a:.1%}"


# -- the model, its artifacts and the reference --------------------------------------------------
def export_program(model: Any, input_shape: tuple[int, ...], max_batch: int) -> bytes:
    """The model as the farm's ``export_torch`` step makes it: a dynamic-batch ExportedProgram."""
    import torch

    example = torch.zeros(2, *input_shape)
    batch = torch.export.Dim("batch", min=1, max=max(2, max_batch))
    program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


def export_onnx(model: Any, input_shape: tuple[int, ...]) -> bytes:
    import torch

    buffer = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(
            model,
            (torch.zeros(1, *input_shape),),
            buffer,  # type: ignore[arg-type]
            dynamo=False,
            opset_version=17,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )
    return buffer.getvalue()


def cpu_reference(model: Any, images: np.ndarray) -> np.ndarray:
    """The CPU fp32 logits every configuration's top-1 is compared with."""
    import torch

    with torch.inference_mode():
        return np.concatenate([model(torch.from_numpy(c)).numpy() for c in np.split(images, 8)])


# -- the bare reference --------------------------------------------------------------------------
def bare_loop(
    model: Any, batch: int, input_shape: tuple[int, ...], gpu: bool
) -> tuple[float, float]:
    """Plain PyTorch, no farm code: (p50 ms, images/s) of a loop that replays a CUDA graph of the
    fp16 channels_last model with its input already on the GPU, synchronizing after each
    replay. On the CPU (dry run): the fp32 channels_last model, eager."""
    import copy

    import torch

    device = "cuda" if gpu else "cpu"
    dtype = torch.float16 if gpu else torch.float32
    net = copy.deepcopy(model).to(device).to(dtype).to(memory_format=torch.channels_last)
    x = torch.randn(batch, *input_shape, device=device, dtype=dtype)
    x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        if gpu:
            torch.backends.cudnn.benchmark = True
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(3):
                    net(x)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                net(x)
            step: Callable[[], Any] = graph.replay
            sync: Callable[[], Any] = torch.cuda.synchronize
        else:

            def step() -> Any:
                return net(x)

            def sync() -> None:
                return None

        for _ in range(20):
            step()
        sync()
        samples: list[float] = []
        start = time.perf_counter()
        while len(samples) < 200 or time.perf_counter() - start < 1.0:
            t0 = time.perf_counter()
            step()
            sync()
            samples.append(time.perf_counter() - t0)
            if time.perf_counter() - start > 3.0:
                break
        span = time.perf_counter() - start
    p50 = float(np.percentile(samples, 50, method="inverted_cdf")) * 1e3
    return p50, batch * len(samples) / span
