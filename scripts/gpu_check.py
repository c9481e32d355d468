"""Measure a torchvision ResNet-18 on every CUDA target of the catalog that runs on this machine.

Uses the farm's own runtimes (``targets/``) and timing harness (``farm.measure``) directly: no
Ray, no DuckDB, nothing installed from the network. For each CUDA target and precision it prints
p50/p95 latency, throughput, the precision the runtime reports, device memory, compile time and
how far the outputs are from torch fp32 on the CPU; for a target that cannot run here it prints
the reason. Exit 0 when every target that can run here measured; 1 when one of them failed.

    PYTHONPATH=. python3 scripts/gpu_check.py [--batch 1 8] [--max-duration-s 3]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from farm.artifact import Artifact
from farm.cluster import has_cuda_gpu
from farm.environment import fingerprint
from farm.measure import Contract, measure
from targets import RuntimeOptions, catalog, runtime_class
from targets.base import TargetSpec

INPUT_SHAPE = (3, 224, 224)


@dataclass
class Row:
    target: str
    precision: str
    batch: int
    status: str  # measured | skipped | failed
    detail: str = ""
    p50_ms: float | None = None
    p95_ms: float | None = None
    throughput_ips: float | None = None
    actual_precision: str = ""
    device_memory_mib: float | None = None
    compile_s: float | None = None
    max_abs_diff: float | None = None
    top1_agreement: float | None = None


def cuda_targets() -> list[TargetSpec]:
    return [t for t in catalog().values() if t.device == "cuda"]


def skip_reason(target: TargetSpec) -> str | None:
    """Why ``target`` cannot run here (no GPU first, then the runtime's own reason)."""
    try:
        cls = runtime_class(target.runtime)
    except ImportError as exc:
        return f"its runtime backend does not import: {exc}"
    reason = getattr(cls, "unavailable_reason", None)
    detail = reason() if reason is not None else (None if cls.available() else "not available")
    if not has_cuda_gpu():
        return "no CUDA GPU: skipped" + (f" (and {detail})" if detail else "")
    return detail


def build_artifacts(max_batch: int) -> tuple[dict[str, Artifact], Any]:
    """ResNet-18 (random weights) as a torch.export program and as ONNX, plus the model."""
    import torch
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    example = torch.zeros(2, *INPUT_SHAPE)
    batch = torch.export.Dim("batch", min=1, max=max(2, max_batch))
    program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    pt2 = io.BytesIO()
    torch.export.save(program, pt2)
    onnx_buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(
            model,
            (example[:1],),
            onnx_buf,
            dynamo=False,
            opset_version=17,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )
    return {
        "torch-export": Artifact("torch-export", {"model.pt2": pt2.getvalue()}),
        "onnx": Artifact("onnx", {"model.onnx": onnx_buf.getvalue()}),
    }, model


def measure_one(
    target: TargetSpec, artifact: Artifact, precision: str, batch: int, contract: Contract,
    reference: np.ndarray, x: np.ndarray,
) -> Row:  # fmt: skip
    runtime = runtime_class(target.runtime)()
    options = RuntimeOptions(precision=precision, threads=1, batch_size=batch)
    row = Row(target.name, precision, batch, "measured")
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        t0 = time.perf_counter()
        session = runtime.compile(artifact, options, Path(tmp))
        row.compile_s = time.perf_counter() - t0
        try:
            out = np.asarray(session.run(x))
            row.max_abs_diff = float(np.abs(out - reference).max())
            row.top1_agreement = float((out.argmax(1) == reference.argmax(1)).mean())
            m = measure(lambda: session.run(x), batch, contract)
            row.p50_ms, row.p95_ms, row.throughput_ips = m.p50_ms, m.p95_ms, m.throughput_ips
            row.actual_precision = session.actual_precision
            row.device_memory_mib = getattr(session, "device_memory_mib", None)
            if not m.stable:
                row.detail = f"unstable: {m.unstable_reason}"
        finally:
            session.close()
    return row


def run_checks(batches: list[int], contract: Contract) -> list[Row]:
    targets = cuda_targets()
    reasons = {t.name: skip_reason(t) for t in targets}
    rows = [
        Row(t.name, "/".join(t.float_precisions), 0, "skipped", reasons[t.name] or "")
        for t in targets
        if reasons[t.name]
    ]
    runnable = [t for t in targets if not reasons[t.name]]
    if not runnable:
        return rows
    import torch

    t0 = time.perf_counter()
    artifacts, model = build_artifacts(max(batches))
    print(f"built ResNet-18 artifacts in {time.perf_counter() - t0:.1f} s", flush=True)
    rng = np.random.default_rng(0)
    for batch in batches:
        x = rng.standard_normal((batch, *INPUT_SHAPE), dtype=np.float32)
        with torch.inference_mode():
            reference = model(torch.from_numpy(x)).numpy()
        for target in runnable:
            for precision in target.float_precisions:
                start = time.perf_counter()
                try:
                    row = measure_one(
                        target, artifacts[runtime_class(target.runtime).accepts[0]],
                        precision, batch, contract, reference, x,
                    )  # fmt: skip
                except Exception as exc:
                    traceback.print_exc()
                    error = f"{type(exc).__name__}: {exc}"
                    row = Row(target.name, precision, batch, "failed", error)
                rows.append(row)
                took = time.perf_counter() - start
                print(f"{target.name} {precision} batch {batch}: {row.status} ({took:.1f} s)")
    return rows


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def print_report(rows: list[Row]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(width=200)
    fp = fingerprint()
    gpus = ", ".join(f"{g['model']} ({g['memory']}, driver {g['driver']})" for g in fp["gpus"])
    pkgs = ", ".join(f"{k} {v}" for k, v in sorted(fp["packages"].items()))
    console.print(escape(f"GPU: {gpus or 'none'}\nCPU: {fp['cpu_model']} ({fp['arch']})\n{pkgs}"))
    table = Table(title="ResNet-18 (random weights, 224×224) on the CUDA targets")
    headers = ("target", "asked", "batch", "status", "p50 ms", "p95 ms", "img/s", "precision",
               "device MiB", "compile s", "max |Δ| vs CPU", "top-1 agree", "detail")  # fmt: skip
    for h in headers:
        table.add_column(h, overflow="fold")
    for r in rows:
        table.add_row(
            r.target, r.precision, str(r.batch or "—"), r.status,
            _fmt(r.p50_ms, ".3f"), _fmt(r.p95_ms, ".3f"), _fmt(r.throughput_ips, ",.0f"),
            r.actual_precision or "—", _fmt(r.device_memory_mib, ".0f"), _fmt(r.compile_s, ".1f"),
            _fmt(r.max_abs_diff, ".2e"), _fmt(r.top1_agreement, ".2f"), escape(r.detail),
        )  # fmt: skip
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="batch sizes")
    parser.add_argument("--min-duration-s", type=float, default=1.0)
    parser.add_argument("--max-duration-s", type=float, default=3.0)
    args = parser.parse_args(argv)
    if any(b < 1 for b in args.batch):
        parser.error(f"--batch: every batch size must be >= 1, got {args.batch}")
    contract = Contract(
        warmup_s=0.5, min_duration_s=args.min_duration_s, max_duration_s=args.max_duration_s
    )
    start = time.perf_counter()
    rows = run_checks(args.batch, contract)
    print_report(rows)
    print(f"gpu_check finished in {time.perf_counter() - start:.1f} s")
    return 1 if any(r.status == "failed" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
