"""The GPU proof: the cuda-torch search space against bare PyTorch on this machine's GPU, one run.

For ResNet-18 (random weights, 224×224) it measures, with the farm's own code (the runtime in
``targets/cuda_torch_runtime.py`` compiled through ``farm.measure.bench.compiled``, the query of
``farm.measure.bench.timed_query``, the harness under the contract ``farm.measure.bench.
contract_for`` makes, and CUDA-event device time: ``farm.measure.bench.measure_compiled``):

- the configurations of the cuda-torch space the engine searches (every precision and every
  value of every ``[cuda-torch.knobs]`` knob of the catalog, batch sizes up to 256, ``io`` host
  and device), the cheap and telling ones first, as many as the time budget allows; the other
  CUDA targets when they run here, else why not;
- in the same run, bare PyTorch, no farm code: fp16, channels_last, a CUDA graph replayed with
  its input already on the GPU, at batch 1 and batch 64, measured before and after the farm's
  configurations (the better of the two runs is the reference; the drift between them is
  printed);

and prints one row per configuration: p50/p95 wall time, throughput, CUDA-event time, device
memory, compile time, its ratio to the bare reference, and its top-1 agreement with the CPU fp32
reference on 256 random images. Then the verdict (exit 0 when all hold, else 1):

1. the farm's best batch-1 p50 (``io = "device"``, like the bare loop) <= 1.10 × the bare p50;
2. the farm's best throughput >= 0.90 × the bare batch-64 throughput;
3. every measured configuration has its top-1 agreement recorded, and none failed (a batch that
   does not fit in memory, or a configuration left out by the time budget, is not a failure);
4. the GPU is priced as itself: a ``[gpu-prices]`` row of the catalog matches its name.

Installs nothing; needs torch (CUDA build) and numpy, no Ray, DuckDB or Optuna.
``--dry-run`` runs the same code on the CPU with a tiny CNN (no CUDA graphs, no events), for the
tests and to check the script before spending GPU time; the verdict is printed, not judged.

    PYTHONPATH=. python3 scripts/gpu_check.py [--budget-s 280] [--json rows.json]
    PYTHONPATH=. python3 scripts/gpu_check.py --dry-run [--with-compile]
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from farm.artifact import Artifact
from farm.engine.pricing import gpu_price
from farm.errors import TrialError
from farm.measure import bench
from farm.measure.environment import fingerprint
from farm.measure.node import prepare_process
from farm.worker import evaluate as worker
from targets import RuntimeOptions, catalog, get_target, runtime_class
from targets.base import TargetSpec

#: The contract of every measurement here (a job's ``[measurement]`` table): short windows, so
#: that the space fits the budget; ``--min-duration-s`` / ``--max-duration-s`` change them.
CONTRACT = {"warmup_s": 0.3, "min_duration_s": 0.6, "max_duration_s": 2.0, "exclusive_node": True}
#: Images the top-1 agreement is computed on.
AGREEMENT_IMAGES = 256
#: Pass criteria.
MAX_B1_RATIO = 1.10
MIN_THROUGHPUT_RATIO = 0.90
#: Seconds a configuration is expected to take, by compile mode (eager: load, warm up, agree,
#: measure). A configuration whose estimate exceeds what is left of the budget is not run.
COST_S = {
    "off": 4.0,
    "default": 45.0,
    "reduce-overhead": 45.0,
    "max-autotune-no-cudagraphs": 150.0,
    "max-autotune": 150.0,
}
#: Seconds kept for the closing bare reference and the report.
RESERVE_S = 12.0
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


@dataclass
class Row:
    config: Config
    status: str  # measured | skipped | failed | does not fit
    detail: str = ""
    p50_ms: float | None = None
    p95_ms: float | None = None
    throughput_ips: float | None = None
    device_p50_ms: float | None = None
    device_p95_ms: float | None = None
    memory_mib: float | None = None
    compile_s: float | None = None
    top1_agreement: float | None = None
    precision_actual: str = ""
    graphs: str | None = None
    stable: bool | None = None


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


# -- one configuration, the farm's way -----------------------------------------------------------
@contextmanager
def compile_config(
    config: Config, artifacts: dict[str, Artifact], workdir: Path, gpu: bool
) -> Iterator[tuple[Any, float]]:
    """A session for ``config``: on a GPU the farm's way (hardware check, then the target's
    runtime through the measurement's compile); on the CPU (dry run) through the same runtime
    code, on the CPU device."""
    target = get_target(config.target)
    runtime = runtime_class(target.runtime)
    options = RuntimeOptions(config.precision, 1, config.batch, config.extra)
    artifact = artifacts[runtime.accepts[0]]
    if gpu:
        options = prepare_process(target, options)
        with bench.compiled(artifact, target, runtime, options) as compiled:
            yield compiled
        return
    from targets.cuda_torch_runtime import build_session, load_program

    start = time.perf_counter()
    program = load_program(artifact, workdir, target.runtime)
    session = build_session(program, options, "cpu", target.runtime)
    try:
        yield session, time.perf_counter() - start
    finally:
        session.close()


def measure_config(
    config: Config,
    artifacts: dict[str, Artifact],
    images: np.ndarray,
    reference: np.ndarray,
    gpu: bool,
    table: dict[str, Any],
) -> Row:
    from workloads import Split
    from workloads.tasks import Classification

    task = Classification()
    runtime = runtime_class(get_target(config.target).runtime)
    row = Row(config, "measured")
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        try:
            with compile_config(config, artifacts, Path(tmp), gpu) as (session, compile_s):
                row.compile_s = compile_s
                logits = worker.predict_split(session, task, Split(images), config.batch)
                row.top1_agreement = float((logits.argmax(1) == reference.argmax(1)).mean())
                contract = bench.contract_for({**table, "io": config.io}, task, runtime)
                batch, infos = bench.query_batch(Split(images), config.batch)
                query = bench.timed_query(session, task, batch, infos, contract.io)
                timed = bench.measure_compiled(session, query, config.batch, contract)
                m, device = timed.result, timed.device
                row.p50_ms, row.p95_ms, row.throughput_ips = m.p50_ms, m.p95_ms, m.throughput_ips
                row.device_p50_ms = device.device_latency_p50_ms
                row.device_p95_ms = device.device_latency_p95_ms
                row.memory_mib = device.device_memory_mib
                row.precision_actual = session.actual_precision
                row.graphs = getattr(session, "graphs", None)
                row.stable = m.stable
                if not m.stable:
                    row.detail = f"unstable: {m.unstable_reason}"
        except TrialError as exc:
            if "does not fit" in str(exc):
                return Row(config, "does not fit", " ".join(str(exc).split()))
            raise
    return row


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


# -- the run -------------------------------------------------------------------------------------
def run(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    start = time.perf_counter()
    deadline = start + args.budget_s
    gpu = not args.dry_run
    model_spec = MODELS[args.model or ("tiny" if args.dry_run else "resnet18")]
    reference_batch, large = (64, (64, 128, 256)) if gpu else (8, (8,))
    if gpu:
        from targets._cuda import has_cuda_gpu

        if not has_cuda_gpu():
            out("no CUDA GPU here (nvidia-smi or /dev/nvidia0 missing): run with --dry-run")
            return 1
    fp = fingerprint()
    describe_environment(fp, out)
    prices = describe_prices(fp, out)

    import torch

    model = model_spec.build()
    cuda_targets = [t for t in catalog().values() if t.device == "cuda"]
    reasons = {t.name: skip_reason(t, gpu) for t in cuda_targets}
    t0 = time.perf_counter()
    artifacts = {
        "torch-export": Artifact(
            "torch-export",
            {"model.pt2": export_program(model, model_spec.input_shape, max(large))},
        )
    }
    if gpu and reasons.get("cuda-onnxruntime") is None:
        onnx_bytes = export_onnx(model, model_spec.input_shape)
        artifacts["onnx"] = Artifact("onnx", {"model.onnx": onnx_bytes})
    rng = np.random.default_rng(0)
    images = rng.standard_normal((AGREEMENT_IMAGES, *model_spec.input_shape), dtype=np.float32)
    reference = cpu_reference(model, images)
    out(f"{model_spec.name}: exported and CPU fp32 reference in {time.perf_counter() - t0:.1f} s")

    table = {
        **CONTRACT,
        "min_duration_s": args.min_duration_s,
        "max_duration_s": args.max_duration_s,
    }
    bare = {b: Bare(b) for b in (1, reference_batch)}

    def measure_bare() -> None:
        for b in bare.values():
            p50, ips = bare_loop(model, b.batch, model_spec.input_shape, gpu)
            b.p50_ms.append(p50)
            b.throughput_ips.append(ips)

    measure_bare()
    plan = torch_plan(large, reference_batch)
    tail = [c for c in plan if c.compile_mode != "off"]
    plan = [c for c in plan if c.compile_mode == "off"]
    for t in cuda_targets:
        if t.name != "cuda-torch" and reasons[t.name] is None:
            plan += other_plan(t, reference_batch)
    if gpu or args.with_compile:
        plan += tail
    rows = [
        Row(Config(name, "/".join(catalog()[name].float_precisions), 0), "skipped", why)
        for name, why in reasons.items()
        if why
    ]
    for config in plan:
        rows.append(run_config(config, deadline, artifacts, images, reference, gpu, table, out))
        if gpu:
            torch.cuda.empty_cache()
    measure_bare()  # again, after: the drift between the two runs is the noise to read ratios by

    print_table(rows, bare, reference_batch, gpu, out)
    ok = verdict(rows, bare, reference_batch, prices, gpu, out)
    out(f"gpu_check finished in {time.perf_counter() - start:.1f} s (budget {args.budget_s:g} s)")
    if args.json:
        dump(args.json, rows, bare, fp)
    if not gpu:  # a dry run checks the code paths, not the numbers
        return 1 if any(r.status == "failed" for r in rows) else 0
    return 0 if ok else 1


def describe_prices(fp: dict[str, Any], out: Callable[[str], None]) -> dict[str, Any]:
    """Each GPU of this machine and the catalog row that prices it."""
    prices = {m: gpu_price(m) for m in (str(g["model"]) for g in fp["gpus"])}
    for m, p in prices.items():
        priced = (
            f"${p.price_per_hour_usd:g}/h ({p.price_source}, {p.price_date})" if p else "NO PRICE"
        )
        out(f"{m} is priced as {p.name if p else '—'}: {priced}")
    return prices


def run_config(
    config: Config,
    deadline: float,
    artifacts: dict[str, Artifact],
    images: np.ndarray,
    reference: np.ndarray,
    gpu: bool,
    table: dict[str, Any],
    out: Callable[[str], None],
) -> Row:
    """One configuration measured, or skipped (with why) when it cannot run here or would not
    finish within the time budget."""
    left = deadline - time.perf_counter() - RESERVE_S
    why = config_skip(config, gpu)
    if why is None and config.cost_s > left:
        why = f"time budget: needs ~{config.cost_s:.0f} s, {max(left, 0):.0f} s left"
    if why is not None:
        return Row(config, "skipped", why)
    began = time.perf_counter()
    try:
        row = measure_config(config, artifacts, images, reference, gpu, table)
    except Exception as exc:
        traceback.print_exc()
        row = Row(config, "failed", " ".join(f"{type(exc).__name__}: {exc}".split())[:400])
    out(f"{config.target} {config.describe()}: {row.status} ({time.perf_counter() - began:.1f} s)")
    return row


def describe_environment(fp: dict[str, Any], out: Callable[[str], None]) -> None:
    gpus = ", ".join(f"{g['model']} ({g['memory']}, driver {g['driver']})" for g in fp["gpus"])
    pkgs = ", ".join(f"{k} {v}" for k, v in sorted(fp["packages"].items()))
    out(f"GPU: {gpus or 'none'}")
    out(f"CPU: {fp['cpu_model']} ({fp['arch']}, {fp['logical_cores']} logical cores)")
    out(f"packages: {pkgs}")


def _f(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def print_table(
    rows: list[Row],
    bare: dict[int, Bare],
    reference_batch: int,
    gpu: bool,
    out: Callable[[str], None],
) -> None:
    b1, bref = bare[1], bare[reference_batch]
    out("")
    out(
        f"bare PyTorch ({BARE[gpu]}): batch 1 p50 "
        f"{b1.best_p50:.4g} ms ({b1.drift()}); batch {reference_batch} "
        f"{bref.best_throughput:,.0f} img/s, p50 {bref.best_p50:.4g} ms ({bref.drift()})"
    )
    headers = ["#", "target", "configuration", "status", "p50 ms", "p95 ms", "img/s",
               "dev p50", "dev p95", "MiB", "compile s", "top-1", "p50/bare b1",
               "img/s/bare", "precision", "graphs", "detail"]  # fmt: skip
    table = [headers]
    for i, r in enumerate(rows):
        c = r.config
        b1_ratio = r.p50_ms / b1.best_p50 if r.p50_ms and c.batch == 1 else None
        tput_ratio = r.throughput_ips / bref.best_throughput if r.throughput_ips else None
        table.append(
            [
                str(i), c.target, c.describe() if c.batch else c.precision, r.status,
                _f(r.p50_ms, ".4g"), _f(r.p95_ms, ".4g"), _f(r.throughput_ips, ",.0f"),
                _f(r.device_p50_ms, ".4g"), _f(r.device_p95_ms, ".4g"), _f(r.memory_mib, ".0f"),
                _f(r.compile_s, ".1f"), _f(r.top1_agreement, ".3f"), _f(b1_ratio, ".2f"),
                _f(tput_ratio, ".2f"), r.precision_actual or "—", r.graphs or "—", r.detail,
            ]
        )  # fmt: skip
    widths = [max(len(row[i]) for row in table) for i in range(len(headers) - 1)]
    for row in table:
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=False)]
        out("  ".join([*cells, row[-1]]).rstrip())
    out("")


def verdict(
    rows: list[Row],
    bare: dict[int, Bare],
    reference_batch: int,
    prices: dict[str, Any],
    gpu: bool,
    out: Callable[[str], None],
) -> bool:
    """Print and judge the four criteria of the module's doc."""
    measured = [r for r in rows if r.status == "measured"]
    b1 = [r for r in measured if r.config.batch == 1 and r.config.io == "device" and r.p50_ms]
    checks: list[tuple[str, bool]] = []
    if b1:
        best = min(b1, key=lambda r: r.p50_ms or float("inf"))
        ratio = (best.p50_ms or 0) / bare[1].best_p50
        checks.append(
            (
                f"farm best batch-1 p50 {best.p50_ms:.4g} ms ({best.config.target} "
                f"{best.config.describe()}) = {ratio:.2f} × bare (must be <= {MAX_B1_RATIO:.2f})",
                ratio <= MAX_B1_RATIO,
            )
        )
    else:
        checks.append(("no batch-1 configuration with io=device was measured", False))
    if measured:
        best = max(measured, key=lambda r: r.throughput_ips or 0.0)
        ratio = (best.throughput_ips or 0) / bare[reference_batch].best_throughput
        checks.append(
            (
                f"farm best throughput {best.throughput_ips:,.0f} img/s ({best.config.target} "
                f"{best.config.describe()}) = {ratio:.2f} × bare batch {reference_batch} "
                f"(must be >= {MIN_THROUGHPUT_RATIO:.2f})",
                ratio >= MIN_THROUGHPUT_RATIO,
            )
        )
    failed = [r for r in rows if r.status == "failed"]
    agreed = [r for r in measured if r.top1_agreement is not None]
    checks.append(
        (
            f"top-1 agreement recorded for {len(agreed)} of {len(measured)} measured "
            f"configurations; {len(failed)} failed",
            bool(measured) and len(agreed) == len(measured) and not failed,
        )
    )
    if gpu:
        unpriced = [m for m, p in prices.items() if p is None]
        checks.append(
            (
                "every GPU here is priced as itself"
                + (f" (no price: {unpriced})" if unpriced else ""),
                bool(prices) and not unpriced,
            )
        )
    for text, ok in checks:
        judged = ("PASS" if ok else "FAIL") if gpu else "dry run, not judged"
        out(f"[{judged}] {text}")
    return all(ok for _, ok in checks)


def dump(path: str, rows: list[Row], bare: dict[int, Bare], fp: dict[str, Any]) -> None:
    payload = {
        "environment": fp,
        "bare": {b: asdict(v) for b, v in bare.items()},
        "rows": [
            {**asdict(r), "config": {**asdict(r.config), "extra": r.config.extra}} for r in rows
        ],
    }
    Path(path).write_text(json.dumps(payload, indent=1, default=str))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="the CPU path, with a tiny CNN")
    parser.add_argument("--model", choices=sorted(MODELS), help="default: resnet18 (tiny dry)")
    parser.add_argument("--budget-s", type=float, help="seconds for the run (default 280; 90 dry)")
    parser.add_argument("--with-compile", action="store_true", help="dry run: torch.compile too")
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--min-duration-s", type=float, default=CONTRACT["min_duration_s"])
    parser.add_argument("--max-duration-s", type=float, default=CONTRACT["max_duration_s"])
    args = parser.parse_args(argv)
    if args.budget_s is None:
        args.budget_s = 90.0 if args.dry_run else 280.0
    if args.budget_s <= RESERVE_S:
        parser.error(f"--budget-s: must be more than {RESERVE_S:g}, got {args.budget_s:g}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run(args, lambda line: print(line, flush=True))


if __name__ == "__main__":
    sys.exit(main())
