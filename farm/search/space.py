"""The search space of one (job, target) study, and how a point in it becomes a Candidate.

Knobs:
- ``precision``: the job's precisions that the target supports. ``int8`` appends the target's
  post-training quantizer (catalog ``int8_transform``) to the chain; float precisions are asked
  of the runtime.
- ``batch_size`` and ``threads`` (threads never above the CPUs a serving node has).
- Runtime options a target's catalog entry lists (``runtime.<knob>``: OpenVINO performance
  hint and streams, ONNX Runtime execution mode), when the job names them in ``[search.knobs]``.
- Knobs that transforms offer (``<transform>.<field>``, from ``optimizers.search_space``), for the
  transforms the chain can contain on this target; a job may restrict any knob in
  ``[search.knobs]``. The chain's order is fixed by ``optimizers.chain_order`` (input
  resolution, prune, export, quantize), not by the order the job lists its transforms in.
  A knob that does not apply to a point (e.g. a quantizer's knob at fp32) is left out of the
  candidate, so it changes neither the artifact nor the hash.
"""

from __future__ import annotations

from typing import Any

from optuna.distributions import BaseDistribution, CategoricalDistribution

import optimizers
from farm.errors import SpecError
from farm.search.candidate import Candidate, step
from farm.spec.job import JobSpec
from targets import TargetSpec, get_target
from targets.base import RuntimeOptions

BASE_KNOBS = ("precision", "batch_size", "threads")
#: Runtime options (catalog ``knobs``) are searched as ``runtime.<knob>``, on the job's request.
RUNTIME_PREFIX = "runtime."


def transforms_for(spec: JobSpec, target: TargetSpec, torch_source: bool) -> list[str]:
    """Transforms whose knobs this target's space offers, in chain order."""
    # e.g. resize_input, prune: torch models only
    names = optimizers.chain_order(t for t in spec.search.transforms if torch_source)
    if "int8" in spec.search.precision and target.int8_transform:
        names.append(target.int8_transform)
    return names


def target_space(
    spec: JobSpec,
    target_name: str,
    max_threads: int,
    torch_source: bool = True,
    workload: Any = None,
) -> dict[str, BaseDistribution]:
    """The distributions of one study. Raises SpecError when the space would be empty."""
    target = get_target(target_name)
    quantized = getattr(workload, "prequantized", 0)
    if quantized and "int8" in spec.search.precision:
        raise SpecError(
            spec.source,
            "search.precision",
            f"no int8: {workload.name} is already quantized ({quantized} quantization operators "
            "such as QuantizeLinear); it is measured as given (its trials record "
            "precision_actual int8+fp32), not quantized again",
            spec.search.precision,
        )
    precisions = [p for p in spec.search.precision if p in target.precisions]
    if "fp32" not in precisions:
        precisions.insert(0, "fp32")  # the baseline needs it
    batches = sorted({1, *spec.search.batch_size})
    fixed = getattr(workload, "fixed_batch", None)
    if fixed is not None:  # the model's input is fixed to one batch size: offer only that
        batches = [fixed]
    threads = sorted({t for t in spec.search.threads if t <= max_threads} or {max_threads})
    space: dict[str, BaseDistribution] = {
        "precision": CategoricalDistribution(precisions),
        "batch_size": CategoricalDistribution(batches),
        "threads": CategoricalDistribution(threads),
    }
    for name in transforms_for(spec, target, torch_source):
        space.update(optimizers.search_space(name, target, workload and workload.traits()))
    for knob, values in spec.search.knobs.items():
        if knob in BASE_KNOBS:
            raise SpecError(spec.source, f"search.knobs.{knob}", f"set `search.{knob}` instead")
        name = knob.removeprefix(RUNTIME_PREFIX)
        if knob.startswith(RUNTIME_PREFIX) and name in target.knobs:
            accepted = target.knobs[name]
            for v in values:
                if v not in accepted:
                    raise SpecError(
                        spec.source,
                        f"search.knobs.{knob}",
                        f"values {target_name} accepts {accepted}",
                        v,
                    )
            space[knob] = CategoricalDistribution(list(values))
        elif knob in space:
            space[knob] = CategoricalDistribution(list(values))
    return space


def check_baseline(
    spec: JobSpec, target_name: str, space: dict[str, BaseDistribution], torch_source: bool
) -> None:
    """The first trial must be the unoptimized model: a job that restricts a transform's knobs
    to values that all change the model (e.g. only non-zero pruning ratios) is refused."""
    baseline = plan(spec, target_name, baseline_params(space), "", torch_source)
    optional = set(spec.search.transforms)
    changed = [name for name, _ in baseline.chain if name in optional]
    if changed:
        knobs = sorted(k for k in spec.search.knobs if k.split(".")[0] in changed)
        raise SpecError(
            spec.source,
            f"search.knobs.{knobs[0]}" if knobs else "search.transforms",
            f"values that include the setting leaving the model unchanged ({', '.join(changed)}"
            " with e.g. a ratio or size of 0): every study starts from the unoptimized baseline",
        )


def check_knobs(spec: JobSpec, spaces: dict[str, dict[str, BaseDistribution]]) -> None:
    """Every knob the job restricts must exist on at least one of its targets."""
    offered = {k for s in spaces.values() for k in s}
    for knob in spec.search.knobs:
        if knob not in offered:
            raise SpecError(
                spec.source, f"search.knobs.{knob}", f"a knob the targets offer {sorted(offered)}"
            )


def baseline_params(space: dict[str, BaseDistribution]) -> dict[str, Any]:
    """The unoptimized baseline: fp32, batch 1, all threads, each transform knob at its identity
    setting where it has one among its values (a pruning ratio of 0, the native input size 0),
    else at its first value."""
    params = {k: d.choices[0] for k, d in space.items() if isinstance(d, CategoricalDistribution)}
    names = set(optimizers.transform_names())
    for knob, value in list(params.items()):
        name, _, field = knob.partition(".")
        if name in names:
            choices = space[knob].choices  # type: ignore[attr-defined]
            identity = [c for c in choices if optimizers.is_identity(name, {field: c})]
            params[knob] = identity[0] if identity else value
    batches = space["batch_size"].choices  # type: ignore[attr-defined]
    params.update(
        precision="fp32",
        batch_size=1 if 1 in batches else min(batches),
        threads=max(space["threads"].choices),  # type: ignore[attr-defined]
    )
    return params


def screening_design(space: dict[str, BaseDistribution], target_name: str) -> list[dict[str, Any]]:
    """The points a study measures right after its baseline, before its sampler proposes any:
    every other value of each knob, one knob at a time (a one-factor-at-a-time screening).

    Why: knobs come in two kinds. The artifact's (precision, the quantizer's and other
    transforms' fields) decide quality and most of the latency; the runtime's (batch, threads,
    runtime options) decide latency and cost, not quality. With a few dozen trials a sampler
    that starts from random points rarely lands on the one combination that is fastest at batch
    1 within the quality limit; varying one knob at a time first measures every knob's effect,
    the artifact knobs at the baseline's runtime options (batch 1, all threads), so the sampler
    combines knowns instead of guessing. The quantizer's knobs are varied around the int8 point
    (at a float precision they do not exist). Order: precisions, batch sizes (throughput and
    cost, the fronts' other two axes, and no new build), the quantizer's knobs, the other
    transforms' knobs, then the rest of the runtime's. Picked by ``benchmarks/search_quality.py``
    (``--simulate`` compares it with the samplers alone on the measured grid).
    """
    base = baseline_params(space)
    int8 = get_target(target_name).int8_transform
    quantizer = [k for k in space if int8 and k.startswith(f"{int8}.")]
    runtime = ["threads", *(k for k in space if k.startswith(RUNTIME_PREFIX))]
    transforms = [k for k in space if k not in {"precision", "batch_size", *quantizer, *runtime}]
    points: list[dict[str, Any]] = []

    def vary(center: dict[str, Any], knobs: list[str]) -> None:
        for knob in knobs:
            for value in getattr(space[knob], "choices", ()):
                point = {**center, knob: value}
                if point != base and point not in points:
                    points.append(point)

    vary(base, ["precision", "batch_size"])
    if "int8" in getattr(space["precision"], "choices", ()):
        vary({**base, "precision": "int8"}, quantizer)
    vary(base, transforms + runtime)
    return points


def initial_points(
    space: dict[str, BaseDistribution], target_name: str, budget: int | None = None
) -> list[dict[str, Any]]:
    """What a study measures first, in order: the baseline, then the screening design, cut to
    half the study's ``budget`` (rounded up) so that its sampler always has the other half: a
    small study would otherwise spend every trial on one-knob variations (a 9-trial digits
    study never combined int8 with a large batch)."""
    points = [baseline_params(space), *screening_design(space, target_name)]
    return points if budget is None else points[: max(1, -(-budget // 2))]


def plan(
    spec: JobSpec,
    target_name: str,
    params: dict[str, Any],
    workload_hash: str,
    torch_source: bool = True,
) -> Candidate:
    """Turn a point of the space into a Candidate (transform chain + runtime options)."""
    target = get_target(target_name)
    precision = params["precision"]
    chain = []
    used = {
        "precision": precision,
        "batch_size": params["batch_size"],
        "threads": params["threads"],
    }

    def knobs_of(transform: str) -> dict[str, Any]:
        prefix = f"{transform}."
        cfg = {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}
        used.update({f"{prefix}{k}": v for k, v in cfg.items()})
        return cfg

    for name in optimizers.chain_order(spec.search.transforms):  # whatever order the job lists
        if torch_source:
            cfg = knobs_of(name)
            if not optimizers.is_identity(name, cfg):
                chain.append(step(name, cfg))
    if torch_source or target.export != "export_onnx":
        chain.append(step(target.export))
    if precision == "int8":
        if not target.int8_transform:
            raise SpecError(spec.source, "search.precision", f"a precision {target_name} supports")
        chain.append(step(target.int8_transform, knobs_of(target.int8_transform)))
    runtime_precision = "fp32" if precision == "int8" else precision
    options = RuntimeOptions(
        precision=runtime_precision,
        threads=int(params["threads"]),
        batch_size=int(params["batch_size"]),
        extra={k.split(".", 1)[1]: v for k, v in params.items() if k.startswith("runtime.")},
    )
    used.update({k: v for k, v in params.items() if k.startswith("runtime.")})
    return Candidate(
        workload_hash=workload_hash,
        target=target_name,
        chain=tuple(chain),
        options=options,
        params=tuple(sorted(used.items())),
    )
