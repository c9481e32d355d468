"""Ray task wrappers around :mod:`farm.worker`.

``max_retries=0``: the driver decides about retries (it knows which failures are the system's
and moves the task to another node). Evaluations run in a fresh worker process each time
(``max_calls=1``): no measurement shares a process with an earlier model's runtime.
"""

from __future__ import annotations

from typing import Any

import ray

from farm import worker


@ray.remote(max_retries=0)
def build_task(source: Any, steps: list[Any], data: Any, seed: int) -> list[Any]:
    return worker.build(source, steps, data, seed)


@ray.remote(max_retries=0, max_calls=1)
def evaluate_task(
    artifact: Any,
    target: str,
    options: Any,
    data: Any,
    reference: Any,
    contract: dict[str, Any],
    trial_key: str = "",
    faults: str = "",
    task: Any = None,
    evaluation: Any = None,
) -> worker.Evaluation:
    ev = worker.evaluate(
        artifact, target, options, data, reference, contract, trial_key, faults, task, evaluation
    )
    ev.node_id = ray.get_runtime_context().get_node_id()
    return ev


@ray.remote(max_retries=0, max_calls=1)
def measure_task(
    artifact: Any,
    target: str,
    options: Any,
    contract: dict[str, Any],
    inputs: Any,
    task: Any = None,
    infos: Any = None,
) -> worker.Evaluation:
    """Compile and measure only, in a fresh process: one measurement of ``farm gate``'s
    confirmation (:mod:`farm.confirm`)."""
    ev = worker.measure_artifact(artifact, target, options, contract, inputs, task, infos)
    ev.node_id = ray.get_runtime_context().get_node_id()
    return ev
