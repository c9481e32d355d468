"""What runs on a node: building a candidate's artifact, and evaluating it on a target.

These are plain functions; ``farm/engine/runner.py`` wraps them as Ray tasks. The evaluate task
runs in
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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from farm.errors import NotFreshProcessError, StepError, TrialError, WrongHardwareError
from targets import get_target, runtime_class

if TYPE_CHECKING:
    from collections.abc import Callable

    from farm.artifact import Artifact
    from farm.measure import Contract, Measurement
    from farm.search.candidate import Step
    from targets.base import RuntimeOptions, Session, TargetSpec
    from workloads import Split, WorkloadData
    from workloads.kpis.spec import EvaluationSpec
    from workloads.tasks import Task


def build(
    source: Artifact, steps: list[Step], data: WorkloadData, seed: int, task: Task | None = None
) -> list[Artifact]:
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
        ctx = optimizers.BuildContext(resized[size], seed, cache_dir, task)
        with trial_step(build_step(name), name):
            artifact = optimizers.apply(name, dict(config), artifact, ctx)
        artifact.meta["build_s"] = time.perf_counter() - start
        out.append(artifact)
    return out


#: The step each transform is (the words a failed trial's error starts with).
BUILD_STEPS = {"export_onnx": "export", "export_torch": "export", "resize_input": "resize"}


def build_step(transform: str) -> str:
    if transform.startswith("quantize"):
        return "quantize"
    return BUILD_STEPS.get(transform, transform)


def explain(exc: BaseException) -> str:
    """The runtime's own message, whitespace collapsed (it names the node or operator when the
    runtime says one), after the exception's type."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@contextmanager
def trial_step(step: str, what: str) -> Iterator[None]:
    """Turn any failure inside into a :class:`StepError` naming ``step`` and ``what``."""
    try:
        yield
    except StepError:
        raise
    except TrialError as exc:
        raise StepError(step, what, str(exc)) from exc
    except Exception as exc:
        raise StepError(step, what, explain(exc)) from exc


def input_size(artifact: Artifact) -> tuple[int, int] | None:
    """The (H, W) the artifact takes (``meta["input_shape"]`` in its ``layout``), None when it
    does not say."""
    shape = artifact.meta.get("input_shape")
    if not shape:
        return None
    if artifact.meta.get("layout") == "NHWC":
        return int(shape[0]), int(shape[1])
    return int(shape[1]), int(shape[2])


def data_for(artifact: Artifact, data: WorkloadData) -> WorkloadData:
    """``data`` resized to the artifact's input H×W when they differ."""
    size = input_size(artifact)
    if size is None or size == data.image_size:
        return data
    from workloads import resize_data

    return resize_data(data, size)


def check_hardware(target: TargetSpec) -> None:
    """Refuse to measure a target this machine does not match (a mislabelled node)."""
    from farm.cluster.lifecycle import has_cuda_gpu

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
    #: Seconds spent running the eval split and computing the quality metrics.
    eval_s: float
    peak_rss_mb: float
    env_id: str
    environment: dict[str, Any]
    node_id: str = ""
    host: str = field(default_factory=socket.gethostname)
    #: CUDA targets: the GPU the trial ran on (``nvidia-smi``'s name; it prices the trial).
    gpu_model: str | None = None
    #: CUDA targets: the GPU's own time of the reported samples (CUDA events; docs/measurement.md).
    device_latency_p50_ms: float | None = None
    device_latency_p95_ms: float | None = None
    #: Peak device memory of the session (MiB), where the runtime reports it.
    device_memory_mib: float | None = None


def injected_fault(faults: str, trial_key: str) -> str | None:
    """Test hook for fault handling: ``$FARM_TEST_FAULTS`` on the driver is a comma-separated
    list of ``target:trial_number:attempt=kind`` (kind: ``crash`` kills the worker process,
    ``error`` raises, ``nan`` poisons the outputs, ``stale`` refuses the worker as not fresh).
    Empty in normal use."""
    for item in filter(None, (f.strip() for f in faults.split(","))):
        key, _, kind = item.partition("=")
        if key == trial_key:
            return kind
    return None


def predict_split(
    session: Session,
    task: Task,
    split: Split,
    batch_size: int,
    poison: bool = False,
) -> Any:
    """The task's predictions for every input of ``split``, run in batches of exactly
    ``batch_size`` (the last batch is padded by repeating its final input; the padding's outputs
    are dropped). Raises :class:`TrialError` when the runtime returns NaN or infinite values."""
    infos = split.info or (None,) * len(split)
    predictions: list[Any] = []
    for i in range(0, len(split), batch_size):
        batch = split.x[i : i + batch_size]
        n = len(batch)
        if n < batch_size:
            batch = np.concatenate([batch, np.repeat(batch[-1:], batch_size - n, axis=0)])
        outputs = run_outputs(session, task, np.ascontiguousarray(batch))
        if poison:
            outputs = [np.full_like(o, np.nan) if o.dtype.kind == "f" else o for o in outputs]
        check_finite(outputs, i, len(split))
        predictions.extend(task.decode(outputs, infos[i : i + n]))
    return task.collect(predictions)


def run_outputs(session: Session, task: Task, batch: np.ndarray) -> list[np.ndarray]:
    """The outputs of one batch that ``task`` needs (a classifier's first output only)."""
    if task.first_output_only:
        return [session.run(batch)]
    return session.run_all(batch)


def check_finite(outputs: list[np.ndarray], start: int, total: int) -> None:
    for o in outputs:
        if o.dtype.kind == "f" and not np.all(np.isfinite(o)):
            raise TrialError(
                "the runtime produced NaN/inf outputs (in the batch starting at input "
                f"{start} of {total})"
            )


def timed_query(
    session: Session,
    task: Task,
    batch: np.ndarray,
    infos: tuple[Any, ...],
    io: str | None = None,
) -> Callable[[], object]:
    """The work of one query as the measurement times it: the model alone, or model + decode
    (box decode, NMS, argmax) when the task times its post-processing (what users ship).

    ``io = "device"`` (GPU targets): the input staged in device memory beforehand and the
    outputs left there, the model alone (the session's ``device_query``)."""
    if io == "device":
        device_query = getattr(session, "device_query", None)
        if device_query is None:
            raise TrialError("io = 'device': this runtime has no device-resident query")
        if task.times_postprocess:
            raise TrialError(
                "io = 'device' times the model alone, but this job times post-processing, "
                "which needs the outputs on the host: set measure_postprocess = false or "
                "io = 'host'"
            )
        query: Callable[[], object] = device_query(batch)
        return query
    if task.times_postprocess:
        return lambda: task.decode(run_outputs(session, task, batch), infos)
    return lambda: run_outputs(session, task, batch)


def query_batch(split: Split, batch_size: int) -> tuple[np.ndarray, tuple[Any, ...]]:
    """The batch a measurement sends: the first ``batch_size`` inputs of ``split`` (repeated
    when the split is smaller), with their preprocessing facts."""
    idx = np.resize(np.arange(len(split)), batch_size)
    infos = tuple((split.info or (None,) * len(split))[i] for i in idx)
    return np.ascontiguousarray(split.x[idx]), infos


def prepare_process(target: TargetSpec, options: RuntimeOptions) -> RuntimeOptions:
    """Check the hardware, then give the runtime the CPUs Ray granted this task and pin the
    (fresh) process to one CPU per physical core before the runtime creates its threads
    (docs/measurement.md, isolation)."""
    from dataclasses import replace

    from farm.measure.affinity import pin_to_cores

    check_hardware(target)
    cpus = granted_cpus()
    if options.threads != cpus:
        options = replace(options, threads=cpus)
    # Measurements on a node's other GPUs run beside this one: each takes the cores of its GPU.
    slot = gpu_slot() if target.device == "cuda" else 0
    pin_to_cores(options.threads, skip=slot * options.threads)
    return options


def gpu_slot() -> int:
    """The index of the GPU Ray gave this task (the first of ``CUDA_VISIBLE_DEVICES``), 0 when
    it names none."""
    first = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    return int(first) if first.isdigit() else 0


def start_device_timing(session: Session) -> bool:
    """Start the session's device timer (CUDA events), where it has one."""
    start = getattr(session, "start_device_timing", None)
    return bool(start()) if start is not None else False


def device_figures(session: Session, timing: bool, result: Measurement) -> dict[str, Any]:
    """The GPU's own time of the samples the measurement reported, and the session's peak device
    memory. The timer saw every call: the warm-up runs, the discarded samples, the reported ones
    (``Measurement.samples_ms`` are calls ``warmup_runs + discarded_samples`` onwards)."""
    from farm.measure import percentile

    timed = session.stop_device_timing() if timing else []  # type: ignore[attr-defined]
    first = result.warmup_runs + result.discarded_samples
    kept = timed[first : first + result.n_samples]
    method = result.contract.percentile_method
    ok = len(kept) == result.n_samples > 0
    memory = getattr(session, "device_memory_mib", None)
    return {
        "device_latency_p50_ms": percentile(kept, 50, method) if ok else None,
        "device_latency_p95_ms": percentile(kept, 95, method) if ok else None,
        "device_memory_mib": None if memory is None else float(memory),
    }


def trial_gpu(target: TargetSpec, environment: dict[str, Any]) -> str | None:
    """The model of the GPU this process ran a CUDA target on (None for CPU targets)."""
    from farm.engine.pricing import trial_gpu_model

    if target.device != "cuda":
        return None
    return trial_gpu_model(environment.get("gpus", []), os.environ.get("CUDA_VISIBLE_DEVICES"))


def compile_session(
    artifact: Artifact, target: TargetSpec, options: RuntimeOptions, workdir: Path
) -> tuple[Session, float]:
    """Compile ``artifact`` on the target's runtime; returns the session and the compile time
    (the runtime's import included: naming its version imports it)."""
    start = time.perf_counter()
    runtime_cls = runtime_class(target.runtime)
    what = runtime_label(target)
    if not runtime_cls.available():
        raise StepError(
            "compile", what, f"{target.runtime} does not import on {socket.gethostname()}"
        )
    if artifact.format not in runtime_cls.accepts:
        raise StepError(
            "compile", what, f"{target.runtime} cannot compile a {artifact.format} artifact"
        )
    with trial_step("compile", what):
        session = runtime_cls().compile(artifact, options, workdir)
    return session, time.perf_counter() - start


def runtime_label(target: TargetSpec) -> str:
    """``"<runtime> <version> on <target>"``: what a failed step names."""
    try:
        version = runtime_class(target.runtime).version()
    except Exception:
        version = "unknown"
    return f"{target.runtime} {version} on {target.name}"


def contract_for(
    contract: dict[str, Any], task: Task, target: TargetSpec | None = None
) -> Contract:
    """The job's contract, completed with what this task's measurement covers and, for a CUDA
    target, what is timed (``io``, default ``host``) and whether the node was its alone
    (``exclusive_node``, default false). CPU targets leave both out: their inputs and outputs
    are host memory either way, and their measurements always have the node to themselves."""
    from farm.measure import Contract

    table = dict(contract)
    if hasattr(task, "measure_postprocess"):  # a task with post-processing states it
        table["measure_postprocess"] = task.times_postprocess
    if target is not None and target.device == "cuda":
        table["io"] = table.get("io") or "host"
        table["exclusive_node"] = bool(table.get("exclusive_node", False))
    else:
        table.pop("io", None)
        table.pop("exclusive_node", None)
    return Contract.from_dict(table)


def evaluate(
    artifact: Artifact,
    target_name: str,
    options: RuntimeOptions,
    data: WorkloadData,
    reference: Any,
    contract: dict[str, Any],
    trial_key: str = "",
    faults: str = "",
    task: Task | None = None,
    evaluation: EvaluationSpec | None = None,
) -> Evaluation:
    """Compile on the target runtime, compute quality on the whole eval split, then measure.

    The eval inputs are resized to the artifact's input size first (:func:`input_size`): quality
    is that of the model served at that resolution, and the fidelity metrics compare its
    predictions with ``reference``, the fp32 model's at the workload's native resolution, i.e.
    how far the resized model agrees with the full-resolution one.

    ``task`` (default: classification) decodes the outputs and computes the metrics.
    ``trial_key`` is ``target:trial_number:attempt``; ``faults`` is the test hook (see
    :func:`injected_fault`)."""
    from farm.measure import measure
    from farm.measure.environment import env_id, fingerprint
    from workloads import resize_split
    from workloads.kpis import compute as kpis
    from workloads.tasks import Classification

    task = task or Classification()
    target = get_target(target_name)
    options = prepare_process(target, options)
    eval_split = data.eval
    size = input_size(artifact)
    if size is not None and size != data.image_size:
        eval_split = resize_split(data.eval, size)
    measured_contract = contract_for(contract, task, target)

    with tempfile.TemporaryDirectory(prefix="farm-eval-") as tmp:
        session, compile_s = compile_session(artifact, target, options, Path(tmp))
        try:
            fault = injected_fault(faults, trial_key)
            if fault == "crash":
                os._exit(17)  # a worker process dying mid-trial, as an OOM kill would
            if fault == "error":
                raise TrialError(f"injected fault for {trial_key}")
            if fault == "stale":
                raise NotFreshProcessError(f"injected stale worker for {trial_key} (not fresh)")
            start = time.perf_counter()
            what = runtime_label(target)
            with trial_step("evaluate", what):
                predictions = predict_split(
                    session, task, eval_split, options.batch_size, poison=fault == "nan"
                )
                metrics = task.quality(predictions, eval_split, reference, data)

                def predict(split: Split) -> Any:
                    if size is not None and size != data.image_size:
                        split = resize_split(split, size)
                    return predict_split(session, task, split, options.batch_size)

                metrics.update(
                    kpis.compute(
                        task, predictions, eval_split, data, evaluation, reference, metrics, predict
                    )
                )
            eval_s = time.perf_counter() - start
            batch, infos = query_batch(eval_split, options.batch_size)
            start = time.perf_counter()
            with trial_step("measure", what):
                query = timed_query(session, task, batch, infos, measured_contract.io)
                timing = start_device_timing(session)
                result = measure(query, options.batch_size, measured_contract)
                device = device_figures(session, timing, result)
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
        eval_s=eval_s,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        env_id=env_id(fp),
        environment=fp,
        gpu_model=trial_gpu(target, fp),
        **device,
    )


def measure_artifact(
    artifact: Artifact,
    target_name: str,
    options: RuntimeOptions,
    contract: dict[str, Any],
    inputs: np.ndarray,
    task: Task | None = None,
    infos: tuple[Any, ...] | None = None,
) -> Evaluation:
    """Compile and measure only (no quality): what ``farm gate`` runs to confirm a regression.

    ``inputs`` is the query batch (its first dimension must equal ``options.batch_size``);
    ``infos`` the preprocessing facts of its images when the task decodes with them. The
    returned :class:`Evaluation` has empty ``metrics``."""
    from farm.measure import measure
    from farm.measure.environment import env_id, fingerprint
    from workloads.tasks import Classification

    task = task or Classification()
    target = get_target(target_name)
    options = prepare_process(target, options)
    if inputs.shape[0] != options.batch_size:
        raise TrialError(
            f"measure_artifact: {inputs.shape[0]} inputs for a batch of {options.batch_size}"
        )
    batch = np.ascontiguousarray(inputs, dtype=np.float32)
    with tempfile.TemporaryDirectory(prefix="farm-measure-") as tmp:
        session, compile_s = compile_session(artifact, target, options, Path(tmp))
        try:
            measured_contract = contract_for(contract, task, target)
            infos = infos or (None,) * len(batch)
            start = time.perf_counter()
            with trial_step("measure", runtime_label(target)):
                query = timed_query(session, task, batch, infos, measured_contract.io)
                timing = start_device_timing(session)
                result = measure(query, options.batch_size, measured_contract)
                device = device_figures(session, timing, result)
            measure_s = time.perf_counter() - start
            precision_actual = session.actual_precision
        finally:
            session.close()
            gc.collect()
    fp = fingerprint()
    return Evaluation(
        metrics={},
        measurement=result.to_dict(),
        samples_ms=[float(s) for s in result.samples_ms],
        precision_actual=precision_actual,
        compile_s=compile_s,
        measure_s=measure_s,
        eval_s=0.0,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        env_id=env_id(fp),
        environment=fp,
        gpu_model=trial_gpu(target, fp),
        **device,
    )
