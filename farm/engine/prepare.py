"""Everything about a job that can fail on bad input, done before the store is written.

:func:`prepare_job` loads the workload, checks the spec against it and against the cluster (a
node serves every target, GPUs are priced, knobs exist, each study can start from its baseline),
computes the data, the fp32 model and its reference predictions, and returns them as one frozen
:class:`PreparedJob`: the run's inputs, which the runner, the studies and the recorder read and
never change. A job that fails here has stored nothing.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farm.errors import TrialError, UsageError
from farm.evidence.settings import EvidenceSettings
from farm.search.candidate import Candidate
from farm.search.objectives import OBJECTIVES, Objective, objectives_for
from farm.search.space import check_baseline, check_knobs, plan, target_space
from targets import get_target, runtime_class
from targets.base import RuntimeOptions
from workloads.tasks import higher_is_better

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

    from farm.artifact import Artifact
    from farm.engine.executor import Executor
    from farm.spec.constraints import MetricLimit
    from farm.spec.job import JobSpec
    from farm.store.artifacts import ArtifactCache
    from targets.base import Runtime, TargetSpec
    from workloads.base import Workload, WorkloadData, WorkloadTraits
    from workloads.kpis.spec import EvaluationSpec
    from workloads.tasks import Task


@dataclass(frozen=True, eq=False)
class PreparedJob:
    """A job's validated inputs: what every trial of it is built from and judged against."""

    spec: JobSpec
    workload: Workload
    traits: WorkloadTraits
    #: Each target's catalog entry and runtime class (handed to the workers with each trial).
    targets: Mapping[str, TargetSpec]
    runtimes: Mapping[str, type[Runtime]]
    #: Each target's search space (knob -> optuna distribution).
    spaces: Mapping[str, Mapping[str, BaseDistribution]]
    #: The workload's task with the job's ``[measurement] measure_postprocess`` applied.
    task: Task
    evaluation: EvaluationSpec
    data: WorkloadData
    #: The unoptimized model (also cached under :func:`source_build_key`).
    source: Artifact
    #: The task's primary metric for this data (the trials' ``quality``).
    quality_metric: str
    limits: tuple[MetricLimit, ...]
    #: The fp32 model's predictions on the eval split: what fidelity is measured against.
    reference: Any
    objectives: tuple[Objective, ...] = OBJECTIVES
    #: How candidates' paired intervals are computed (confidence, resamples, seed).
    evidence: EvidenceSettings = field(default_factory=EvidenceSettings)
    #: ``[constraints] quality_confidence``: the limits on the primary metric judge the worst
    #: end of a candidate's paired interval (None: its point estimate).
    quality_confidence: float | None = None
    #: How the calibration images were chosen and how many ("folder data/calib (64 images)").
    calibration: str = ""

    def objective(self, name: str) -> Objective:
        """The objective called ``name`` (``quality``: its direction is the primary metric's)."""
        return next(o for o in self.objectives if o.name == name)

    def plan(self, target: str, params: Mapping[str, Any]) -> Candidate:
        """The candidate a point of ``target``'s space stands for."""
        return plan(
            self.spec, target, dict(params), self.workload.recipe_hash, self.traits.torch_source
        )


def prepare_job(
    spec: JobSpec,
    executor: Executor,
    cache: ArtifactCache,
    models_dir: Path,
    objectives: tuple[Objective, ...] | None = None,
) -> PreparedJob:
    """Validate ``spec`` against its workload and the cluster ``executor`` reaches, and compute
    the job's inputs. Raises :class:`UsageError` (nothing stored) on bad input."""
    from workloads import load_workload
    from workloads.kpis.compute import with_kpi_data

    workload = load_workload(
        spec.workload, Path(spec.base_dir), models_dir.parent, source=spec.source
    )
    traits = workload.traits()
    check_transforms_and_targets(spec, workload.task, traits, workload.name)
    executor.connect()
    spaces = target_spaces(spec, executor, traits, workload.name)
    from farm.engine.pricing import check_gpu_prices

    check_gpu_prices(spec)  # a GPU with no price is refused before anything is stored
    check_knobs(spec, spaces)
    for t, space in spaces.items():
        check_baseline(spec, t, space, traits.torch_source)

    task = task_with_contract(workload.task, spec)
    evaluation = spec.kpis  # parsed once, with the spec
    if evaluation.operating_point and not task.supports_operating_point:
        raise UsageError(
            f"{spec.source}: field `evaluation.positive_classes`: an operating point "
            f"is defined for classifiers only, not for {task.name}"
        )
    data = with_kpi_data(
        workload.data(), evaluation, workload.slices_file, spec.search.seed, source=spec.source
    )
    source = workload.source_artifact(models_dir)
    quality_metric = task.primary_metric(data.has_labels)
    limits = job_limits(spec, task, data, quality_metric, evaluation)
    reference = reference_predictions(source, data, task, traits.fixed_batch)
    # The unoptimized model is cached like every built artifact, so that `farm gate` can
    # re-measure any trial's artifact by the build key the trial stores.
    cache.save(source_build_key(workload.recipe_hash), source)
    targets = {t: get_target(t) for t in spec.targets}
    return PreparedJob(
        spec=spec,
        workload=workload,
        traits=traits,
        targets=targets,
        runtimes={t: runtime_class(target.runtime) for t, target in targets.items()},
        spaces=spaces,
        task=task,
        evaluation=evaluation,
        data=data,
        source=source,
        quality_metric=quality_metric,
        limits=tuple(limits),
        reference=reference,
        objectives=objectives or objectives_for(quality_metric, higher_is_better(quality_metric)),
        evidence=evidence_settings(spec),
        quality_confidence=_confidence(spec),
        calibration=calibration_words(workload, data),
    )


def _confidence(spec: JobSpec) -> float | None:
    """``[constraints] quality_confidence`` (None: the limits judge point estimates)."""
    raw = spec.constraints.get("quality_confidence")
    return None if raw is None else float(raw)


def evidence_settings(spec: JobSpec) -> EvidenceSettings:
    """Paired intervals at ``quality_confidence`` (95 % when not written), 1000 resamples,
    seeded by the job's search seed."""
    return EvidenceSettings(confidence=_confidence(spec) or 0.95, seed=spec.search.seed)


def check_transforms_and_targets(
    spec: JobSpec, task: Task, traits: WorkloadTraits, model: str
) -> None:
    """Refuse optional transforms a task cannot fine-tune after, and targets whose runtime
    cannot take this model."""
    import optimizers

    if spec.search.transforms and not task.can_finetune:
        raise UsageError(
            f"{spec.source}: field `search.transforms`: {spec.search.transforms} "
            f"are offered for classifiers only: their fine-tunes train a classification "
            f"loss, which would not keep a {task.name} model sound; remove them"
        )
    for t in spec.targets:
        export = optimizers.get_transform(get_target(t).export)
        if export.needs_torch and not traits.torch_source and export.output != "onnx":
            # an ONNX file is already what an ONNX export makes; nothing else can be made of it
            raise UsageError(
                f"{spec.source}: field `targets`: {t} runs torch models, but the "
                f"workload is an ONNX file; remove {t} or give a torch model"
            )
        if export.output == "torch-export" and not traits.torch_exportable:
            raise UsageError(
                f"{spec.source}: field `targets`: {t} runs torch.export programs, and "
                f"{model} cannot be captured by torch.export (its NMS "
                f"depends on the data); remove {t}"
            )


def target_spaces(
    spec: JobSpec, executor: Executor, traits: WorkloadTraits, model: str
) -> dict[str, dict[str, BaseDistribution]]:
    """Each target's search space, with threads up to the CPUs of the largest node serving it;
    a target no node serves is refused, with what to do."""
    nodes = executor.nodes()
    spaces = {}
    for t in spec.targets:
        serving = [n for n in nodes if t in n.targets]
        if not serving:
            raise UsageError(
                f"{spec.source}: field `targets`: no node of the Ray cluster serves {t} "
                "(locally: its runtime is not installed or the CPU does not match; on a "
                f"fleet: start a node with --resources '{{\"target:{t}\": 1}}')"
            )
        max_threads = max(n.cpus for n in serving)
        spaces[t] = target_space(spec, t, max_threads, traits, model=model)
    return spaces


def job_limits(
    spec: JobSpec,
    task: Task,
    data: WorkloadData,
    primary: str,
    evaluation: EvaluationSpec | None = None,
) -> list[MetricLimit]:
    """The job's ``[constraints]`` resolved for its task and data: a limit on a metric this job
    cannot record (``map`` without annotations, a class the data does not have) is refused."""
    from farm.spec.constraints import parse_limits
    from workloads.kpis.spec import kpi_names

    if "max_accuracy_drop" in spec.constraints and "accuracy" not in task.metric_names(True):
        raise UsageError(
            f"{spec.source}: field `constraints.max_accuracy_drop`: the classification spelling; "
            f"for this {task.name} workload write max_quality_drop (a drop of "
            f"{task.primary_metric(data.has_labels)})"
        )
    names = set(task.metric_names(data.has_labels))
    classes = data.class_names
    labels = classes.values() if isinstance(classes, dict) else (classes or ())
    if data.has_labels:
        names.update(f"{p}{c}" for p in task.per_class_prefixes for c in labels)
    if evaluation is not None:
        calibration = data.has_labels and task.has_calibration
        names.update(kpi_names(evaluation, calibration, bool(data.slices)))
    names.update(f"slice/{s}" for s in data.slices or {})
    try:
        limits = parse_limits(spec.source, "constraints", spec.constraints, names, ())
    except UsageError as exc:
        raise UsageError(
            f"{exc} (for this {task.name} workload"
            + ("" if data.has_labels else ", whose data has no labels: only fidelity is measured")
            + ")"
        ) from None
    return [c.resolved(primary, higher_is_better(primary)) for c in limits]


def calibration_words(workload: Workload, data: WorkloadData) -> str:
    """How the job's calibration images were chosen and how many, as the card prints it."""
    origin = workload.calib_origin
    size = len(data.calib)
    return origin.describe(size) if origin is not None else f"{size} images"


def task_with_contract(task: Task, spec: JobSpec) -> Task:
    """The workload's task with the job's ``[measurement] measure_postprocess`` applied."""
    value = spec.contract.measure_postprocess
    if value is None:
        return task
    if not task.has_postprocess:
        raise UsageError(
            f"{spec.source}: field `measurement.measure_postprocess`: only for tasks with "
            f"post-processing, such as detection and segmentation ({task.name} has no "
            "post-processing to time)"
        )
    return task.with_postprocess_timing(value)


def source_build_key(workload_hash: str) -> str:
    """The cache key of the unoptimized model (a candidate with an empty transform chain)."""
    return Candidate(workload_hash, "", (), RuntimeOptions()).build_key()


def reference_predictions(
    source: Artifact, data: WorkloadData, task: Task, fixed_batch: int | None = None
) -> Any:
    """The unoptimized model's predictions on the eval split, fp32: a torch model (a
    ``torch-state`` source) run eagerly as its builder makes it, anything else compiled by the
    runtime that declares itself the reference for its format (``Runtime.reference_for``). The
    reference every candidate's fidelity is measured against.

    Raises :class:`UsageError` when the model's outputs do not follow the task's convention
    (a user's ONNX detector whose outputs are not what the job declares)."""
    from farm.measure.bench import run_outputs
    from farm.worker.evaluate import predict_split
    from targets import reference_session

    module = None
    if source.format == "torch-state":
        from workloads import build_module

        module = build_module(source)
    batch = (task.max_batch or 64) if module is not None else (fixed_batch or 1)
    with tempfile.TemporaryDirectory(prefix="farm-reference-") as tmp:
        session = reference_session(source, Path(tmp), module)
        try:
            outputs = run_outputs(session, task, data.eval.x[:batch])
            task.check_outputs(outputs, source.meta.get("workload", "the model"), data)
            return predict_split(session, task, data.eval, batch)
        except (ValueError, TrialError) as exc:
            raise UsageError(str(exc)) from None
        finally:
            session.close()
