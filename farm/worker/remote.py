"""Ray task wrappers around :mod:`farm.worker.build` and :mod:`farm.worker.evaluate`.

``max_retries=0``: the driver decides about retries (it knows which failures are the system's
and moves the task to another node).

**Evaluations run in a fresh worker process each time**: no measurement shares a process with
a build or an earlier model's runtime. ``max_calls=1`` makes a worker exit after its one
evaluation, but Ray starts a task in any idle worker of its pool, and a build's worker (torch,
NNCF, a calibration session and their thread pools loaded, the build's peak memory in
``ru_maxrss``) would be one. So builds run in a pool of their own: Ray keeps a separate pool
per runtime environment, and :data:`BUILD_POOL` gives builds one (its workers stay, and a
second build reuses the first one's imports). The driver starts an evaluation's worker while
the build runs (:func:`start_worker`), so the evaluation does not wait a second for Python and
Ray to start; :func:`~farm.measure.node.check_fresh_process` refuses to measure anywhere else.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import ray

from farm.measure.node import POOL_VARIABLE, check_fresh_process
from farm.worker import build as builder
from farm.worker import evaluate as evaluator

if TYPE_CHECKING:
    from farm.artifact import Artifact
    from workloads.tasks import Task

#: The runtime environment of build tasks: their own pool of worker processes.
BUILD_POOL = {"env_vars": {POOL_VARIABLE: "build"}}

__all__ = ["BUILD_POOL", "build_task", "check_fresh_process", "evaluate_task", "start_worker"]


@ray.remote(max_retries=0, runtime_env=BUILD_POOL)
def build_task(
    source: Artifact, steps: Sequence[builder.BuildStep], data: Any, seed: int, task: Task
) -> list[Artifact]:
    return builder.build(source, steps, data, seed, task)


@ray.remote(num_cpus=0, max_retries=0)
def start_worker() -> int:
    """Nothing: a worker process started (and left idle in Ray's pool) for the next
    evaluation on the node; imports the farm's modules, no runtime."""
    return os.getpid()


@ray.remote(max_retries=0, max_calls=1)
def evaluate_task(
    request: evaluator.EvaluationRequest, artifact: Artifact, data: Any, reference: Any
) -> evaluator.Evaluation:
    check_fresh_process()
    ev = evaluator.evaluate(request, artifact, data, reference)
    return dataclasses.replace(ev, node_id=ray.get_runtime_context().get_node_id())
