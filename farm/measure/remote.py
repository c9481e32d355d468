"""A measurement on a chosen node of the Ray cluster, in a fresh worker process: what ``farm
gate`` runs to re-measure a stored trial's artifact (:mod:`farm.gate.confirm`).

The task prepares its process like a trial's evaluation (fresh, on the target's hardware, the
CPUs Ray granted, pinned: :mod:`farm.measure.node`) and measures through the same path
(:func:`farm.measure.bench.measure_artifact`), alone on its node (the node's exclusivity unit).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import ray

from farm.cluster.leases import node_slot
from farm.errors import TrialError
from farm.measure import bench
from farm.measure.node import check_fresh_process, prepare_process

if TYPE_CHECKING:
    import numpy as np

    from farm.cluster.lifecycle import Node
    from targets.base import Runtime, RuntimeOptions, TargetSpec
    from workloads.tasks import Task


@ray.remote(max_retries=0, max_calls=1)
def measure_task(
    target: TargetSpec,
    runtime: type[Runtime],
    options: RuntimeOptions,
    contract: Mapping[str, Any],
    artifact: Any,
    inputs: np.ndarray,
    task: Task | None,
    infos: Sequence[Any] | None,
) -> bench.Bench:
    """Compile and measure only, in a fresh process (``max_calls=1``: it exits after)."""
    check_fresh_process()
    options = prepare_process(target, options)
    result = bench.measure_artifact(
        artifact, target, runtime, options, contract, inputs, task, infos
    )
    return dataclasses.replace(result, node_id=ray.get_runtime_context().get_node_id())


def measure_on_node(
    node: Node,
    artifact: Any,
    target: str,
    options: RuntimeOptions,
    contract: Mapping[str, Any],
    inputs: np.ndarray,
    task: Task | None,
    infos: Sequence[Any] | None = None,
) -> bench.Bench:
    """Measure ``artifact`` (an Artifact or its Ray object ref) on ``node``; waits for it.

    Raises :class:`TrialError` when the measurement fails or is lost (a killed worker, a lost
    node), with the cause."""
    from ray.exceptions import RayError, RayTaskError
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from targets import get_target, runtime_class

    spec = get_target(target)
    try:
        return ray.get(
            measure_task.options(
                num_cpus=options.threads,
                resources={spec.resource: 0.001, **node_slot(node)},
                scheduling_strategy=NodeAffinitySchedulingStrategy(node.node_id, soft=False),
            ).remote(
                spec, runtime_class(spec.runtime), options, contract, artifact, inputs, task, infos
            )
        )
    except RayTaskError as exc:
        cause = exc.cause if getattr(exc, "cause", None) is not None else exc
        raise TrialError(f"a measurement failed: {type(cause).__name__}: {cause}") from None
    except RayError as exc:
        raise TrialError(f"a measurement was lost: {type(exc).__name__}: {exc}") from None
