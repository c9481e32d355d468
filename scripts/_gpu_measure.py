"""The GPU check's measurement of one configuration, the farm's way: the target's runtime compiled
through ``farm.measure.bench.compiled`` (on the CPU in a dry run), its top-1 agreement with the
CPU reference, then the harness under the contract ``bench.contract_for`` makes; skipped (with
why) when it cannot run here or would overrun the time budget.

Imported by ``gpu_check.py`` (its folder is on the path); no Ray, DuckDB or Optuna.
"""

from __future__ import annotations

import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from _gpu_plan import Config, config_skip

from farm.artifact import Artifact
from farm.errors import TrialError
from farm.measure import bench
from farm.measure.node import prepare_process
from farm.worker import evaluate as worker
from targets import RuntimeOptions, get_target, runtime_class

#: Seconds kept for the closing bare reference and the report.
RESERVE_S = 12.0


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
