"""What runs on a node: building a candidate's artifact, and evaluating it on a target.

These are plain functions; ``farm/engine.py`` wraps them as Ray tasks. The evaluate task runs in
a fresh worker process each time (``max_calls=1``), alone on its node, with the runtime's thread
count equal to the CPUs Ray granted it.
"""

from __future__ import annotations

import gc
import os
import platform
import resource
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from farm.errors import TrialError, WrongHardwareError
from targets import get_target, runtime_class

if TYPE_CHECKING:
    from farm.artifact import Artifact
    from farm.candidate import Step
    from targets.base import RuntimeOptions, Session, TargetSpec
    from workloads.base import WorkloadData


def build(source: Artifact, steps: list[Step], data: WorkloadData, seed: int) -> list[Artifact]:
    """Apply ``steps`` to ``source``; return the artifact after each step (for the cache).

    Each step sees the workload's data at its input artifact's input size (a ``resize_input``
    step changes it): quantizers calibrate and pruning fine-tunes at the resolution served."""
    import optimizers

    # Node-local cache for one-time analyses (quantization sensitivity rankings).
    cache_dir = Path(os.environ.get("FARM_NODE_CACHE", Path(tempfile.gettempdir()) / "farm-node"))
    out = []
    artifact = source
    resized: dict[Any, WorkloadData] = {}  # the data at each input size the chain goes through
    for name, config in steps:
        start = time.perf_counter()
        size = input_size(artifact)
        if size not in resized:
            resized[size] = data_for(artifact, data)
        ctx = optimizers.BuildContext(data=resized[size], seed=seed, cache_dir=cache_dir)
        try:
            artifact = optimizers.apply(name, dict(config), artifact, ctx)
        except TrialError:
            raise
        except Exception as exc:
            raise TrialError(f"{name} failed: {type(exc).__name__}: {exc}") from exc
        artifact.meta["build_s"] = time.perf_counter() - start
        out.append(artifact)
    return out


def input_size(artifact: Artifact) -> tuple[int, int] | None:
    """The (H, W) the artifact takes (``meta["input_shape"]``), None when it does not say."""
    shape = artifact.meta.get("input_shape")
    return (int(shape[1]), int(shape[2])) if shape else None


def data_for(artifact: Artifact, data: WorkloadData) -> WorkloadData:
    """``data`` resized to the artifact's input H×W when they differ."""
    size = input_size(artifact)
    if size is None or size == tuple(data.input_shape[1:]):
        return data
    from workloads import resize_data

    return resize_data(data, size)


def check_hardware(target: TargetSpec) -> None:
    """Refuse to measure a target this machine does not match (a mislabelled node)."""
    from farm.cluster import has_cuda_gpu

    arch = platform.machine()
    if arch != target.arch:
        raise WrongHardwareError(
            f"node {socket.gethostname()} advertises {target.resource} but is {arch}, "
            f"and {target.name} needs {target.arch}: refusing to measure"
        )
    if target.device == "cuda" and not has_cuda_gpu():
        raise WrongHardwareError(
            f"node {socket.gethostname()} advertises {target.resource} but has no CUDA GPU"
        )


def granted_cpus() -> int:
    """CPUs Ray granted this task (falls back to the affinity mask outside Ray)."""
    try:
        import ray

        if not ray.is_initialized():  # outside Ray: asking would start an instance
            raise LookupError("not in a Ray task")
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
        if cpus:
            return max(1, int(cpus))
    except Exception:
        pass
    return len(os.sched_getaffinity(0))


@dataclass
class Evaluation:
    metrics: dict[str, float]
    measurement: dict[str, Any]
    samples_ms: list[float]
    precision_actual: str
    compile_s: float
    measure_s: float
    peak_rss_mb: float
    env_id: str
    environment: dict[str, Any]
    node_id: str = ""
    host: str = field(default_factory=socket.gethostname)


def injected_fault(faults: str, trial_key: str) -> str | None:
    """Test hook for fault handling: ``$FARM_TEST_FAULTS`` on the driver is a comma-separated
    list of ``target:trial_number:attempt=kind`` (kind: ``crash`` kills the worker process,
    ``error`` raises, ``nan`` poisons the outputs). Empty in normal use."""
    for item in filter(None, (f.strip() for f in faults.split(","))):
        key, _, kind = item.partition("=")
        if key == trial_key:
            return kind
    return None


def run_split(session: Session, x: np.ndarray, batch_size: int, poison: bool = False) -> np.ndarray:
    """Logits of every input of ``x``, in batches of exactly ``batch_size`` (the last batch is
    padded by repeating its final input, and the padding's outputs are dropped)."""
    outputs = []
    for i in range(0, len(x), batch_size):
        batch = x[i : i + batch_size]
        n = len(batch)
        if n < batch_size:
            batch = np.concatenate([batch, np.repeat(batch[-1:], batch_size - n, axis=0)])
        outputs.append(np.asarray(session.run(np.ascontiguousarray(batch)))[:n])
    logits = np.concatenate(outputs).astype(np.float32, copy=False)
    if poison:
        logits[::7] = np.nan
    if not np.all(np.isfinite(logits)):
        bad = int((~np.isfinite(logits)).any(axis=1).sum())
        raise TrialError(f"the runtime produced NaN/inf outputs for {bad} of {len(x)} inputs")
    return logits


def evaluate(
    artifact: Artifact,
    target_name: str,
    options: RuntimeOptions,
    data: WorkloadData,
    reference_logits: np.ndarray | None,
    contract: dict[str, Any],
    trial_key: str = "",
    faults: str = "",
) -> Evaluation:
    """Compile on the target runtime, compute quality on the whole eval split, then measure.

    The eval inputs are resized to the artifact's input size first (:func:`input_size`): accuracy
    is that of the model served at that resolution, and the fidelity metrics compare its logits
    with ``reference_logits``, the fp32 model's at the workload's native resolution, i.e. how far
    the resized model agrees with the full-resolution one.

    ``trial_key`` is ``target:trial_number:attempt``; ``faults`` is the test hook (see
    :func:`injected_fault`)."""
    from dataclasses import replace

    from farm.environment import env_id, fingerprint
    from farm.measure import Contract, measure
    from farm.measure.affinity import pin_to_cores
    from workloads.metrics import quality_metrics

    target = get_target(target_name)
    check_hardware(target)
    cpus = granted_cpus()
    if options.threads != cpus:
        options = replace(options, threads=cpus)
    # This process is fresh (max_calls=1) and alone on its node: pin it to one CPU per physical
    # core before the runtime creates its threads (docs/measurement.md, isolation).
    pin_to_cores(options.threads)
    runtime_cls = runtime_class(target.runtime)
    if not runtime_cls.available():
        raise TrialError(f"{target.runtime} does not import on {socket.gethostname()}")
    if artifact.format not in runtime_cls.accepts:
        raise TrialError(f"{target.runtime} cannot compile a {artifact.format} artifact")
    eval_split = data.eval
    size = input_size(artifact)
    if size is not None and size != tuple(data.input_shape[1:]):
        from workloads import resize_split

        eval_split = resize_split(data.eval, size)

    with tempfile.TemporaryDirectory(prefix="farm-eval-") as tmp:
        start = time.perf_counter()
        try:
            session = runtime_cls().compile(artifact, options, Path(tmp))
        except TrialError:
            raise
        except Exception as exc:
            raise TrialError(
                f"compile on {target_name} failed: {type(exc).__name__}: {exc}"
            ) from exc
        compile_s = time.perf_counter() - start
        try:
            fault = injected_fault(faults, trial_key)
            if fault == "crash":
                os._exit(17)  # a worker process dying mid-trial, as an OOM kill would
            if fault == "error":
                raise TrialError(f"injected fault for {trial_key}")
            x = eval_split.x
            logits = run_split(session, x, options.batch_size, poison=fault == "nan")
            metrics = quality_metrics(logits, eval_split.y, reference_logits)
            batch = np.ascontiguousarray(np.resize(x, (options.batch_size, *x.shape[1:])))
            start = time.perf_counter()
            result = measure(
                lambda: session.run(batch), options.batch_size, Contract.from_dict(contract)
            )
            measure_s = time.perf_counter() - start
            precision_actual = session.actual_precision
        finally:
            session.close()
            gc.collect()
    fp = fingerprint()
    return Evaluation(
        metrics=metrics,
        measurement=result.to_dict(),
        samples_ms=[float(s) for s in result.samples_ms],
        precision_actual=precision_actual,
        compile_s=compile_s,
        measure_s=measure_s,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        env_id=env_id(fp),
        environment=fp,
    )
