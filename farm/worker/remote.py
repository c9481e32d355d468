"""Ray task wrappers around :mod:`farm.worker.evaluate`.

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
Ray to start; :func:`check_fresh_process` refuses to measure anywhere else.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import ray

from farm.errors import NotFreshProcessError
from farm.worker import evaluate as worker

#: The runtime environment of build tasks: their own pool of worker processes.
BUILD_POOL = {"env_vars": {"FARM_WORKER_POOL": "build"}}
#: What a fresh process must not have loaded when its evaluation starts: the frameworks and
#: runtimes that builds and evaluations load (an evaluation loads its own when it compiles).
RUNTIME_MODULES = ("torch", "onnxruntime", "openvino", "nncf", "tensorrt", "torch_pruning")


def check_fresh_process() -> None:
    """Raise unless this process is fresh: no runtime loaded, not a build worker."""
    loaded = [m for m in RUNTIME_MODULES if m in sys.modules]
    if loaded or os.environ.get("FARM_WORKER_POOL") == "build":
        what = f"with {', '.join(loaded)} loaded" if loaded else "of the build pool"
        raise NotFreshProcessError(f"refusing to measure in a worker process {what} (not fresh)")


@ray.remote(max_retries=0, runtime_env=BUILD_POOL)
def build_task(source: Any, steps: list[Any], data: Any, seed: int, task: Any = None) -> list[Any]:
    return worker.build(source, steps, data, seed, task)


@ray.remote(num_cpus=0, max_retries=0)
def start_worker() -> int:
    """Nothing: a worker process started (and left idle in Ray's pool) for the next
    evaluation on the node; imports the farm's modules, no runtime."""
    return os.getpid()


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
    check_fresh_process()
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
    confirmation (:mod:`farm.gate.confirm`)."""
    check_fresh_process()
    ev = worker.measure_artifact(artifact, target, options, contract, inputs, task, infos)
    ev.node_id = ray.get_runtime_context().get_node_id()
    return ev
