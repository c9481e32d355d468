"""``farm measure``: measure one model on one target with the harness that jobs use.

MODEL is an ONNX file (``cpu-onnxruntime``, ``cpu-openvino``), an OpenVINO ``.xml`` with its
``.bin`` beside it (``cpu-openvino``) or a ``torch.export`` ExportedProgram saved as ``.pt2``
(``cpu-torch``). Inputs are random normal float32 of the model's input shape with the batch
dimension set to ``--batch``. Bad input (missing or corrupt file, unknown target, runtime not
installed, a batch the model's static shape cannot take) raises :class:`UsageError` (exit 2).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from farm.errors import RuntimeMissingError, TrialError, UsageError
from farm.measure import SCENARIOS, Contract
from farm.measure.affinity import pin_to_cores

#: File suffix -> artifact format.
SUFFIX_FORMATS = {".onnx": "onnx", ".pt2": "torch-export", ".xml": "openvino-ir"}


def _default_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="model file: .onnx, .pt2 (cpu-torch), .xml (IR)")
    parser.add_argument("--target", default="cpu-onnxruntime", help="catalog target name")
    parser.add_argument("--batch", type=int, default=1, help="images per query (default 1)")
    parser.add_argument(
        "--threads",
        type=int,
        default=_default_threads(),
        help="runtime threads (default: the CPUs this process may use)",
    )
    parser.add_argument("--precision", default="fp32", help="float precision: fp32, bf16, fp16")
    parser.add_argument("--scenario", default="single-stream", choices=SCENARIOS)
    parser.add_argument("--qps", type=float, default=None, help="server scenario: queries/s")
    defaults = Contract()
    parser.add_argument("--warmup-s", type=float, default=defaults.warmup_s)
    parser.add_argument("--min-duration-s", type=float, default=defaults.min_duration_s)
    parser.add_argument("--min-samples", type=int, default=defaults.min_samples)
    parser.add_argument("--max-duration-s", type=float, default=defaults.max_duration_s)
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="do not pin the measurement to --threads CPUs on distinct physical cores",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    from farm.measure import bench
    from farm.measure.environment import env_id, fingerprint

    contract = _contract(args)
    target, runtime = _runtime(args.target, args.precision)
    model_path: Path = args.model
    artifact_format = _artifact_format(model_path, target.name, runtime.accepts)
    if args.batch < 1:
        raise UsageError(f"--batch: `batch >= 1` must hold, but got {args.batch}")
    if args.threads < 1:
        raise UsageError(f"--threads: `threads >= 1` must hold, but got {args.threads}")
    declared_shape = _onnx_input_shape(model_path) if artifact_format == "onnx" else None
    if declared_shape is not None:
        _check_batch(model_path, declared_shape, args.batch)

    before = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    pinned = None if args.no_pin else pin_to_cores(args.threads)
    try:
        result = _compile_and_measure(
            args, target, runtime, artifact_format, declared_shape, contract
        )
    finally:
        if pinned is not None and before is not None:
            os.sched_setaffinity(0, before)
    fp = fingerprint()
    report: dict[str, Any] = {
        "model": str(model_path),
        "target": target.name,
        "runtime": target.runtime,
        "runtime_version": runtime.version(),
        "batch_size": args.batch,
        "threads": args.threads,
        "requested_precision": args.precision,
        "pinned_cpus": pinned,
        **result,
        "model_size_bytes": sum(p.stat().st_size for p in _model_files(model_path)),
        "peak_rss_mib": bench.peak_rss_mib(),
        "env_id": env_id(fp),
        "environment": fp,
    }
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        _print_table(report)
    return 0


def _contract(args: argparse.Namespace) -> Contract:
    if args.scenario == "server" and args.qps is None:
        raise UsageError("--scenario server needs --qps (the arrival rate in queries/s)")
    if args.scenario != "server" and args.qps is not None:
        raise UsageError(f"--qps applies only to --scenario server, not {args.scenario!r}")
    return Contract(
        scenario=args.scenario,
        warmup_s=args.warmup_s,
        min_duration_s=args.min_duration_s,
        min_samples=args.min_samples,
        max_duration_s=args.max_duration_s,
        qps=args.qps,
    )


def _runtime(target_name: str, precision: str) -> tuple[Any, Any]:
    from targets import get_target, runtime_class

    try:
        target = get_target(target_name)
    except KeyError as exc:
        raise UsageError(f"--target: {exc.args[0]}") from None
    if precision not in target.float_precisions:
        raise UsageError(
            f"--precision: target {target.name} runs {list(target.float_precisions)}, "
            f"got {precision!r}"
        )
    try:
        cls = runtime_class(target.runtime)
    except KeyError:
        raise UsageError(
            f"target {target.name}: runtime {target.runtime!r} has no backend"
        ) from None
    except ImportError as exc:
        raise RuntimeMissingError(
            f"target {target.name}: its runtime backend {target.runtime!r} does not import "
            f"here: {exc}"
        ) from exc
    if not cls.available():
        raise RuntimeMissingError(
            f"target {target.name}: runtime {target.runtime!r} is not installed on this machine"
        )
    return target, cls


def _artifact_format(path: Path, target_name: str, accepts: tuple[str, ...]) -> str:
    if not path.is_file():
        raise UsageError(f"{path}: model file not found")
    fmt = SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UsageError(
            f"{path}: unknown model file type {path.suffix!r}; expected one of "
            f"{sorted(SUFFIX_FORMATS)}"
        )
    if fmt not in accepts:
        wanted = [s for s, f in SUFFIX_FORMATS.items() if f in accepts]
        raise UsageError(f"{path}: target {target_name} takes {wanted} files, not {path.suffix!r}")
    if fmt == "openvino-ir" and not path.with_suffix(".bin").is_file():
        raise UsageError(f"{path}: the OpenVINO IR weights {path.with_suffix('.bin')} are missing")
    return fmt


def _model_files(path: Path) -> list[Path]:
    if path.suffix.lower() == ".xml":
        return [path, path.with_suffix(".bin")]
    return [path]


def _onnx_input_shape(path: Path) -> tuple[int | None, ...]:
    """The first input's declared shape (None for a symbolic dimension); checks the file."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise UsageError(f"{path}: corrupt ONNX model, onnx could not parse it: {exc}") from None
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if not inputs:
        raise UsageError(f"{path}: the ONNX graph has no input")
    if len(inputs) > 1:
        names = [i.name for i in inputs]
        raise UsageError(f"{path}: expected a model with one image input, got inputs {names}")
    tensor = inputs[0].type.tensor_type
    if tensor.elem_type != onnx.TensorProto.FLOAT:
        raise UsageError(
            f"{path}: input {inputs[0].name!r} must be float32, got "
            f"{onnx.TensorProto.DataType.Name(tensor.elem_type)}"
        )
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim)


def _check_batch(path: Path, shape: tuple[int | None, ...], batch: int) -> None:
    if not shape:
        raise UsageError(f"{path}: the model's input has no declared shape")
    if shape[0] is not None and shape[0] != batch:
        raise UsageError(
            f"{path}: the model's input has a static batch of {shape[0]} "
            f"(shape {list(shape)}); it cannot take --batch {batch}"
        )
    if any(d is None for d in shape[1:]):
        raise UsageError(
            f"{path}: input dimensions other than the batch must be static to make inputs, "
            f"got shape {['?' if d is None else d for d in shape]}"
        )


def _compile_and_measure(
    args: argparse.Namespace,
    target: Any,
    runtime: Any,
    artifact_format: str,
    declared_shape: tuple[int | None, ...] | None,
    contract: Contract,
) -> dict[str, Any]:
    """The farm's one compile -> measure path (:mod:`farm.measure.bench`) on random inputs."""
    import numpy as np

    from farm.artifact import Artifact
    from farm.measure import bench
    from targets import RuntimeOptions

    path: Path = args.model
    artifact = Artifact.read_from(artifact_format, _model_files(path))
    options = RuntimeOptions(precision=args.precision, threads=args.threads, batch_size=args.batch)
    try:
        with bench.compiled(artifact, target, runtime, options, named=False) as compiled:
            session, compile_s = compiled
            shape = declared_shape or session.input_shape
            _check_batch(path, shape, args.batch)
            dims = (args.batch, *(int(d) for d in shape[1:] if d is not None))  # all static
            batch = np.random.default_rng(0).standard_normal(dims, dtype=np.float32)
            run_batch = session.run

            def run_once() -> None:
                run_batch(batch)

            timed = bench.measure_compiled(session, run_once, args.batch, contract)
            precision = session.actual_precision
    except TrialError as exc:
        raise UsageError(f"{path}: could not be compiled by {runtime.name}: {exc}") from None
    return {
        "actual_precision": precision,
        "compile_s": compile_s,
        "measurement": timed.result.to_dict(),
    }


_METHOD_NAMES = {"inverted_cdf": "nearest rank (numpy inverted_cdf)"}


def _print_table(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    m = report["measurement"]
    c = m["contract"]
    table = Table(title=f"{report['model']} on {report['target']}", show_header=False)
    table.add_column("metric", style="bold")
    table.add_column("value")
    stable = "yes" if m["stable"] else f"[red]no[/red]: {m['unstable_reason']}"
    rows = [
        ("runtime", f"{report['runtime']} {report['runtime_version']}"),
        ("batch / threads", f"{report['batch_size']} / {report['threads']}"),
        ("pinned CPUs", str(report["pinned_cpus"] or "not pinned")),
        ("scenario", c["scenario"] + (f" at {c['qps']:g} qps" if c["qps"] else "")),
        ("precision", f"{report['actual_precision']} (asked {report['requested_precision']})"),
        *(
            (f"{k} latency (ms/batch)", f"{m[f'{k}_ms']:.4f}")
            for k in ("p50", "p90", "p95", "p99", "mean")
        ),
        ("std (ms)", f"{m['std_ms']:.4f}"),
        ("cv", f"{m['cv']:.2%}"),
        ("throughput (images/s)", f"{m['throughput_ips']:.1f}"),
        ("samples", f"{m['n_samples']} (+{m['discarded_samples']} discarded)"),
        ("duration (s)", f"{m['duration_s']:.2f}"),
        ("stable", stable),
        ("cold latency (ms)", f"{m['cold_ms']:.3f}"),
        ("compile time (s)", f"{report['compile_s']:.3f}"),
        ("peak RSS (MiB)", f"{report['peak_rss_mib']:.0f}"),
        ("model size (MiB)", f"{report['model_size_bytes'] / 2**20:.2f}"),
        ("percentiles", _METHOD_NAMES.get(c["percentile_method"], c["percentile_method"])),
    ]
    env = report["environment"]
    rows += [
        ("environment", report["env_id"]),
        ("cpu", f"{env['cpu_model']} ({env['arch']}), {env['cpus_available']} CPUs"),
        ("cpu flags", " ".join(env["cpu_flags"])),
        ("commit", env["farm_commit"]),
    ]
    for k, v in rows:
        table.add_row(k, v)
    Console().print(table)
