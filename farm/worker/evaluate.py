"""Evaluating a candidate on a node: compile on the target's runtime, quality on the whole eval
split, then the latency measurement (:mod:`farm.measure.bench`, the path ``farm gate`` and
``farm measure`` take too).

Plain functions; :mod:`farm.worker.remote` runs :func:`evaluate` as a Ray task in a fresh worker
process each time, alone on its node, with the runtime's thread count equal to the CPUs Ray
granted it. What it needs besides the artifact and the data travels as one frozen
:class:`EvaluationRequest`, target spec and runtime class included, so that a target registered
in the driver's process evaluates on a worker that never saw the registration.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from farm.errors import TrialError
from farm.measure import bench
from farm.measure.node import prepare_process

if TYPE_CHECKING:
    from farm.artifact import Artifact
    from farm.measure import Contract
    from targets.base import Runtime, RuntimeOptions, Session, TargetSpec
    from workloads import Split, WorkloadData
    from workloads.evidence import Evidence
    from workloads.kpis.spec import EvaluationSpec
    from workloads.tasks import Task


@dataclass(frozen=True, eq=False)
class EvaluationRequest:
    """Everything an evaluation needs besides the artifact, the data and the reference."""

    target: TargetSpec
    runtime: type[Runtime]
    options: RuntimeOptions
    #: Decodes the outputs and computes the quality metrics.
    task: Task
    #: The job's measurement contract (``JobSpec.contract``, parsed once) or a
    #: ``[measurement]`` table as written; completed per target by ``bench.contract_for``.
    contract: Contract | Mapping[str, Any] = field(default_factory=dict)
    #: The job's ``[evaluation]`` KPIs (none when None).
    evaluation: EvaluationSpec | None = None


@dataclass(frozen=True)
class Evaluation(bench.Bench):
    """A candidate evaluated: its measurement (:class:`~farm.measure.bench.Bench`) and its
    quality metrics on the eval split."""

    metrics: dict[str, float] = field(default_factory=dict)
    #: Seconds spent running the eval split and computing the quality metrics.
    eval_s: float = 0.0
    #: What the trial did on each eval image (tasks with per-image evidence; else None).
    evidence: Evidence | None = None


def predict_split(session: Session, task: Task, split: Split, batch_size: int) -> Any:
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
        outputs = bench.run_outputs(session, task, np.ascontiguousarray(batch))
        check_finite(outputs, i, len(split))
        predictions.extend(task.decode(outputs, infos[i : i + n]))
    return task.collect(predictions)


def check_finite(outputs: Sequence[np.ndarray], start: int, total: int) -> None:
    for o in outputs:
        if o.dtype.kind == "f" and not np.all(np.isfinite(o)):
            raise TrialError(
                "the runtime produced NaN/inf outputs (in the batch starting at input "
                f"{start} of {total})"
            )


def evaluate(
    request: EvaluationRequest, artifact: Artifact, data: WorkloadData, reference: Any
) -> Evaluation:
    """Compile on the target runtime, compute quality on the whole eval split, then measure.

    The eval inputs are resized to the artifact's input size first
    (:func:`~farm.measure.bench.input_size`): quality is that of the model served at that
    resolution, and the fidelity metrics compare its predictions with ``reference``, the fp32
    model's at the workload's native resolution, i.e. how far the resized model agrees with the
    full-resolution one."""
    from workloads import resize_split
    from workloads.evidence import with_arrays
    from workloads.kpis import compute as kpis

    target, runtime, task = request.target, request.runtime, request.task
    options = prepare_process(target, request.options)
    size = bench.input_size(artifact)
    resized = size is not None and size != data.image_size

    def at_size(split: Split) -> Split:
        return resize_split(split, size) if resized and size is not None else split

    eval_split = at_size(data.eval)
    contract = bench.contract_for(request.contract, task, runtime)
    what = bench.runtime_label(target, runtime)
    with bench.compiled(artifact, target, runtime, options) as (session, compile_s):
        start = time.perf_counter()
        with bench.trial_step("evaluate", what):
            predictions = predict_split(session, task, eval_split, options.batch_size)
            metrics = task.quality(predictions, eval_split, reference, data)
            evidence = per_image(task, predictions, eval_split, reference, data)

            def predict(split: Split) -> Any:
                return predict_split(session, task, at_size(split), options.batch_size)

            metrics.update(
                kpis.compute(
                    task,
                    predictions,
                    eval_split,
                    data,
                    request.evaluation,
                    reference,
                    metrics,
                    predict,
                )
            )
            if evidence is not None:
                extra = kpis.evidence_arrays(task, predictions, eval_split, data, metrics)
                evidence = with_arrays(evidence, extra)
        eval_s = time.perf_counter() - start
        batch, infos = bench.query_batch(eval_split, options.batch_size)
        with bench.trial_step("measure", what):
            query = bench.timed_query(session, task, batch, infos, contract.io)
            timed = bench.measure_compiled(session, query, options.batch_size, contract)
        fields = bench.bench_of(session, target, timed, compile_s)
    return Evaluation(**fields, metrics=metrics, eval_s=eval_s, evidence=evidence)


def per_image(
    task: Task, predictions: Any, split: Split, reference: Any, data: WorkloadData
) -> Evidence | None:
    """The trial's per-image evidence, where the task keeps it and there is something to judge
    against (ground truth, or the fp32 model's predictions)."""
    from workloads.evidence import PerImage

    judged = split.y is not None or split.truth is not None or reference is not None
    if not isinstance(task, PerImage) or not judged:
        return None
    return task.evidence(predictions, split, reference, data)
