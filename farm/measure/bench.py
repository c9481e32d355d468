"""The one path from an artifact to a measurement: compile it on the target's runtime, time the
query the contract describes, and say what it ran on.

Three callers take it: a trial's evaluation (``farm.worker.evaluate``, which adds quality on the
eval split between the compile and the measurement), ``farm gate``'s re-measurement
(:func:`measure_artifact`, in a fresh process on a node, through :mod:`farm.measure.remote`) and
``farm measure`` (one model file on this machine). So a latency a job stored, a latency the gate
confirms and a latency a person measures by hand come from the same code.

Every failure inside a named step (compile, measure, and the worker's build and evaluate steps)
becomes a :class:`~farm.errors.StepError` naming the step, the transform or runtime, and the
runtime's own message (:func:`trial_step`).
"""

from __future__ import annotations

import gc
import resource
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from farm.errors import StepError, TrialError
from farm.measure.device import DeviceFigures, device_figures, start_device_timing, trial_gpu
from targets.base import DeviceSession

if TYPE_CHECKING:
    from farm.artifact import Artifact
    from farm.measure import Contract, Measurement
    from targets.base import Runtime, RuntimeOptions, Session, TargetSpec
    from workloads import Split
    from workloads.tasks import Task


@dataclass(frozen=True)
class Bench:
    """One compiled artifact measured: the measurement, its raw samples and its provenance."""

    #: ``Measurement.to_dict()``: percentiles, throughput, stability, and the contract.
    measurement: dict[str, Any]
    samples_ms: list[float]
    #: The float precision the runtime reported it used (read back).
    precision_actual: str
    compile_s: float
    measure_s: float
    #: Peak resident memory of the measuring process, MiB (KiB / 1024).
    peak_rss_mb: float
    env_id: str
    environment: dict[str, Any]
    host: str = field(default_factory=socket.gethostname)
    #: The Ray node that measured (set by the task that ran it).
    node_id: str = ""
    #: CUDA targets: the GPU the measurement ran on (``nvidia-smi``'s name; it prices a trial).
    gpu_model: str | None = None
    device_latency_p50_ms: float | None = None
    device_latency_p95_ms: float | None = None
    device_memory_mib: float | None = None


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


# -- naming the step a trial failed in ------------------------------------------------------------


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


def runtime_label(target: TargetSpec, runtime: type[Runtime]) -> str:
    """``"<runtime> <version> on <target>"``: what a failed step names."""
    try:
        version = runtime.version()
    except Exception:
        version = "unknown"
    return f"{target.runtime} {version} on {target.name}"


# -- what is timed ------------------------------------------------------------------------------


def input_size(artifact: Artifact) -> tuple[int, int] | None:
    """The (H, W) the artifact takes (``meta["input_shape"]`` in its ``layout``), None when it
    does not say."""
    shape = artifact.meta.get("input_shape")
    if not shape:
        return None
    if artifact.meta.get("layout") == "NHWC":
        return int(shape[0]), int(shape[1])
    return int(shape[1]), int(shape[2])


def query_batch(split: Split, batch_size: int) -> tuple[np.ndarray, tuple[Any, ...]]:
    """The batch a measurement sends: the first ``batch_size`` inputs of ``split`` (repeated
    when the split is smaller), with their preprocessing facts."""
    idx = np.resize(np.arange(len(split)), batch_size)
    infos = tuple((split.info or (None,) * len(split))[i] for i in idx)
    return np.ascontiguousarray(split.x[idx]), infos


def run_outputs(session: Session, task: Task, batch: np.ndarray) -> list[np.ndarray]:
    """The outputs of one batch that ``task`` needs (a classifier's first output only)."""
    if task.first_output_only:
        return [session.run(batch)]
    return session.run_all(batch)


def timed_query(
    session: Session,
    task: Task | None,
    batch: np.ndarray,
    infos: Sequence[Any],
    io: str | None = None,
) -> Callable[[], object]:
    """The work of one query as the measurement times it: the model alone, or model + decode
    (box decode, NMS, argmax) when the task times its post-processing (what users ship).
    Without a task (a model whose workload does not load here) every output is fetched.

    ``io = "device"`` (GPU targets): the input staged in device memory beforehand and the
    outputs left there, the model alone (the session's ``device_query``)."""
    if io == "device":
        if not isinstance(session, DeviceSession):
            raise TrialError("io = 'device': this runtime has no device-resident query")
        if task is not None and task.times_postprocess:
            raise TrialError(
                "io = 'device' times the model alone, but this job times post-processing, "
                "which needs the outputs on the host: set measure_postprocess = false or "
                "io = 'host'"
            )
        return session.device_query(batch)
    if task is None:
        return lambda: session.run_all(batch)
    if task.times_postprocess:
        return lambda: task.decode(run_outputs(session, task, batch), infos)
    return lambda: run_outputs(session, task, batch)


def contract_for(
    contract: Contract | Mapping[str, Any], task: Task | None, runtime: type[Runtime]
) -> Contract:
    """The job's contract (a job's parsed :attr:`~farm.spec.job.JobSpec.contract`, or a
    ``[measurement]`` table as written or stored), completed with what this task's measurement
    covers and, for a device runtime, what is timed (``io``, default ``host``) and whether the
    node was its alone (``exclusive_node``, default false). Other runtimes leave both out: their
    inputs and outputs are host memory either way, and their measurements always have the node
    to themselves."""
    from dataclasses import replace

    from farm.measure import Contract

    base = contract if isinstance(contract, Contract) else Contract.from_dict(dict(contract))
    changes: dict[str, Any] = {}
    if task is not None and task.has_postprocess:  # it states whether post-processing was timed
        changes["measure_postprocess"] = task.times_postprocess
    if runtime.is_device:
        changes["io"] = base.io or "host"
        changes["exclusive_node"] = bool(base.exclusive_node)
    else:
        changes["io"] = changes["exclusive_node"] = None
    return replace(base, **changes)


# -- compile, then measure ----------------------------------------------------------------------


@contextmanager
def compiled(
    artifact: Artifact,
    target: TargetSpec,
    runtime: type[Runtime],
    options: RuntimeOptions,
    named: bool = True,
) -> Iterator[tuple[Session, float]]:
    """``artifact`` compiled on ``runtime`` in a scratch directory, with the compile time (the
    runtime's import included: naming its version imports it); closed afterwards. ``named``:
    a failure is a :class:`StepError` of the ``compile`` step (a trial's), else the runtime's
    own error."""
    with tempfile.TemporaryDirectory(prefix="farm-bench-") as tmp:
        start = time.perf_counter()
        if named:
            what = runtime_label(target, runtime)
            problem = runtime.unavailable_reason()
            if problem is not None:
                raise StepError(
                    "compile",
                    what,
                    f"{target.runtime} does not run on {socket.gethostname()}: {problem}",
                )
            with trial_step("compile", what):
                session = runtime().compile(artifact, options, Path(tmp))
        else:
            session = runtime().compile(artifact, options, Path(tmp))
        try:
            yield session, time.perf_counter() - start
        finally:
            session.close()
            gc.collect()


@dataclass(frozen=True)
class Timed:
    """What :func:`measure_compiled` measured, and how long it took."""

    result: Measurement
    device: DeviceFigures
    measure_s: float


def measure_compiled(
    session: Session, query: Callable[[], object], batch_size: int, contract: Contract
) -> Timed:
    """Time ``query`` on ``session`` under ``contract`` (the harness), with the device's own
    time when the session is a device session."""
    from farm.measure import measure

    start = time.perf_counter()
    timing = start_device_timing(session)
    result = measure(query, batch_size, contract)
    device = device_figures(session, timing, result)
    return Timed(result, device, time.perf_counter() - start)


def bench_of(
    session: Session, target: TargetSpec, timed: Timed, compile_s: float, **extra: Any
) -> dict[str, Any]:
    """The fields of a :class:`Bench` (a dict, so that a richer record can add its own),
    fingerprinting this process's environment."""
    from farm.measure.environment import env_id, fingerprint

    fp = fingerprint()
    return {
        "measurement": timed.result.to_dict(),
        "samples_ms": [float(s) for s in timed.result.samples_ms],
        "precision_actual": session.actual_precision,
        "compile_s": compile_s,
        "measure_s": timed.measure_s,
        "peak_rss_mb": peak_rss_mib(),
        "env_id": env_id(fp),
        "environment": fp,
        "gpu_model": trial_gpu(target, fp),
        **asdict(timed.device),
        **extra,
    }


def measure_artifact(
    artifact: Artifact,
    target: TargetSpec,
    runtime: type[Runtime],
    options: RuntimeOptions,
    contract: Mapping[str, Any],
    inputs: np.ndarray,
    task: Task | None,
    infos: Sequence[Any] | None = None,
) -> Bench:
    """Compile and measure only (no quality): what ``farm gate`` runs to confirm a regression,
    in a process already prepared for it (:func:`farm.measure.node.prepare_process`).

    ``inputs`` is the query batch (its first dimension must equal ``options.batch_size``);
    ``infos`` the preprocessing facts of its images when the task decodes with them."""
    if inputs.shape[0] != options.batch_size:
        raise TrialError(
            f"measure_artifact: {inputs.shape[0]} inputs for a batch of {options.batch_size}"
        )
    batch = np.ascontiguousarray(inputs, dtype=np.float32)
    measured = contract_for(contract, task, runtime)
    with compiled(artifact, target, runtime, options) as (session, compile_s):
        with trial_step("measure", runtime_label(target, runtime)):
            query = timed_query(session, task, batch, infos or (None,) * len(batch), measured.io)
            timed = measure_compiled(session, query, options.batch_size, measured)
        fields = bench_of(session, target, timed, compile_s)
    return Bench(**fields)
