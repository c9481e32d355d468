"""The GPU check's plan: the configurations it measures (every precision and knob value of the
cuda-torch space, the batch scaling, host I/O, the compile modes last; the other CUDA targets'
float precisions), what each is expected to cost, and why one cannot run on this machine.

Imported by ``gpu_check.py`` (its folder is on the path).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import Any

from targets import get_target, runtime_class
from targets.base import TargetSpec

#: Seconds a configuration is expected to take, by compile mode (eager: load, warm up, agree,
#: measure). A configuration whose estimate exceeds what is left of the budget is not run.
COST_S = {
    "off": 4.0,
    "default": 45.0,
    "reduce-overhead": 45.0,
    "max-autotune-no-cudagraphs": 150.0,
    "max-autotune": 150.0,
}


@dataclass(frozen=True)
class Config:
    """One point of a target's space: precision, batch, what is timed, runtime knobs."""

    target: str
    precision: str
    batch: int
    io: str = "device"
    knobs: tuple[tuple[str, Any], ...] = ()

    @property
    def extra(self) -> dict[str, Any]:
        return dict(self.knobs)

    @property
    def compile_mode(self) -> str:
        return str(self.extra.get("compile", "off"))

    @property
    def cost_s(self) -> float:
        if self.target == "cuda-tensorrt":
            return 60.0  # an engine build
        return COST_S[self.compile_mode]

    def describe(self) -> str:
        shown = [f"{k}={v}" for k, v in self.knobs if v not in (False, "off", "ieee", "cuda")]
        return " ".join([self.precision, f"b{self.batch}", f"io={self.io}", *shown])


def torch_config(precision: str, batch: int, io: str = "device", **knobs: Any) -> Config:
    return Config("cuda-torch", precision, batch, io, tuple(sorted(knobs.items())))


def torch_plan(large_batches: tuple[int, ...], reference_batch: int) -> list[Config]:
    """The cuda-torch configurations, in the order they run: the engine's baseline (fp32, batch
    1, no knobs, numpy in and out), the configurations the verdict compares with the bare loop,
    the whole knob grid at batch 1, the batch scaling, host I/O, then the compile modes
    (the most expensive: each compiles for minutes with autotuning)."""
    knobs = get_target("cuda-torch").knobs
    fast: dict[str, Any] = {"channels_last": True, "cuda_graphs": True}
    plan = [
        torch_config("fp32", 1, "host"),
        torch_config("fp16", 1, **fast),
        torch_config("fp16", reference_batch, **fast),
        *(torch_config("fp16", b, **fast) for b in large_batches if b != reference_batch),
    ]
    for precision in get_target("cuda-torch").precisions:
        for fp32_math in knobs["fp32_math"] if precision == "fp32" else ["ieee"]:
            for channels_last in knobs["channels_last"]:
                for graphs in knobs["cuda_graphs"]:
                    plan.append(
                        torch_config(
                            precision,
                            1,
                            channels_last=channels_last,
                            cuda_graphs=graphs,
                            fp32_math=fp32_math,
                        )
                    )
    top = max(large_batches)
    plan += [
        torch_config("fp32", reference_batch),
        torch_config("fp32", reference_batch, fp32_math="tf32", **fast),
        torch_config("bf16", reference_batch, **fast),
        torch_config("bf16", top, **fast),
        torch_config("fp16", 1, "host", **fast),
        torch_config("fp16", reference_batch, "host", **fast),
    ]
    for mode, batch, graphs in (
        ("default", 1, False),
        ("reduce-overhead", 1, False),
        ("max-autotune-no-cudagraphs", reference_batch, True),
        ("max-autotune", reference_batch, False),
        ("default", reference_batch, True),
    ):
        assert mode in knobs["compile"], mode
        plan.append(
            torch_config("fp16", batch, compile=mode, channels_last=True, cuda_graphs=graphs)
        )
    return list(dict.fromkeys(plan))  # the grid repeats a few of the first ones


def other_plan(target: TargetSpec, reference_batch: int) -> list[Config]:
    """The other CUDA targets, when they run here: each float precision at batch 1 and the
    reference batch (and, for ONNX Runtime, the TensorRT provider at fp16)."""
    plan = [
        Config(target.name, p, b) for p in target.float_precisions for b in (1, reference_batch)
    ]
    if "provider" in target.knobs:
        plan += [
            Config(target.name, "fp16", b, knobs=(("provider", "tensorrt"),))
            for b in (1, reference_batch)
        ]
    return plan


def skip_reason(target: TargetSpec, gpu: bool) -> str | None:
    """Why ``target`` cannot run here, or None."""
    if not gpu:
        return "dry run on the CPU" if target.name != "cuda-torch" else None
    return runtime_class(target.runtime).unavailable_reason()


def config_skip(config: Config, gpu: bool) -> str | None:
    """Why one configuration is not run on this machine, or None."""
    if not gpu and config.extra.get("cuda_graphs"):
        return "CUDA graphs need a GPU"
    if config.compile_mode != "off" and not any(shutil.which(c) for c in ("cc", "gcc", "clang")):
        return "torch.compile needs a C compiler (inductor builds with one) and none is on PATH"
    return None
