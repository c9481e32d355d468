"""The worker's build and evaluation called in this process, by transform and target names:
what tests of models and tasks run to see a candidate as a trial would (no Ray)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from farm.artifact import Artifact
from farm.worker.build import build, resolve
from farm.worker.evaluate import Evaluation, EvaluationRequest, evaluate
from targets import get_target, runtime_class
from targets.base import RuntimeOptions


def build_here(
    source: Artifact,
    chain: Sequence[tuple[str, Any]],
    data: Any,
    seed: int = 0,
    task: Any = None,
) -> list[Artifact]:
    """``source`` through ``chain`` (transform name, config pairs or dict), each step's
    artifact; ``task``: the workload's, which transforms that fine-tune need (None: a chain
    that does not fine-tune)."""
    steps = [(name, tuple(sorted(dict(config).items()))) for name, config in chain]
    return build(source, resolve(steps), data, seed, task)


def evaluate_here(
    artifact: Artifact,
    target: str,
    options: RuntimeOptions,
    data: Any,
    reference: Any,
    contract: Mapping[str, Any],
    task: Any,
) -> Evaluation:
    """``artifact`` evaluated on ``target`` as a trial's evaluation does it."""
    spec = get_target(target)
    request = EvaluationRequest(spec, runtime_class(spec.runtime), options, task, contract)
    return evaluate(request, artifact, data, reference)
