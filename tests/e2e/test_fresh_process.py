"""Every measurement runs in a fresh worker process: never in one a build has used
(farm.worker.remote).

Ray starts a ``max_calls=1`` task in any idle worker of its pool; before builds got a pool of
their own, an evaluation often ran in the worker that had just built its artifact, with torch,
NNCF and the build's memory in it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import pytest
from support.digits import digits_cache_dir

from farm.errors import NotFreshProcessError

REPO = Path(__file__).resolve().parents[2]

#: One CPU: Ray's pool has one idle worker, the one a shared-pool build would leave behind.
BUILD_THEN_EVALUATE = """
import os, sys
from pathlib import Path

import ray

from farm.worker import remote as tasks
from farm.worker.build import resolve
from farm.cluster.lifecycle import start_or_connect
from workloads import DigitsWorkload

start_or_connect(None, num_cpus=1)
workload = DigitsWorkload()
source = workload.source_artifact(Path(sys.argv[1]))
steps = resolve([("export_onnx", ())])
built = ray.get(tasks.build_task.remote(source, steps, workload.data(), 0, workload.task))
ray.get(tasks.start_worker.remote())  # the engine warms a worker like this during builds


@ray.remote(max_calls=1)
def evaluation_worker() -> int:
    tasks.check_fresh_process()
    return os.getpid()


pids = [ray.get(evaluation_worker.remote()) for _ in range(3)]
print("built", len(built), "fresh workers", len(set(pids)))
ray.shutdown()
"""


def test_a_process_with_a_runtime_loaded_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from farm.measure.node import check_fresh_process, loaded_by_builds_and_runtimes

    monkeypatch.setattr(sys, "modules", {k: v for k, v in sys.modules.items()})
    for name in loaded_by_builds_and_runtimes():
        sys.modules.pop(name, None)
    monkeypatch.delenv("FARM_WORKER_POOL", raising=False)
    check_fresh_process()  # nothing loaded: fresh
    sys.modules["nncf"] = types.ModuleType("nncf")
    with pytest.raises(NotFreshProcessError, match="with nncf loaded"):
        check_fresh_process()
    del sys.modules["nncf"]
    monkeypatch.setenv("FARM_WORKER_POOL", "build")
    with pytest.raises(NotFreshProcessError, match="of the build pool"):
        check_fresh_process()


def test_what_a_fresh_process_must_not_have_loaded_is_what_runtimes_and_transforms_declare() -> (
    None
):
    from farm.measure.node import loaded_by_builds_and_runtimes

    modules = set(loaded_by_builds_and_runtimes())
    assert {"torch", "onnxruntime", "openvino", "nncf", "tensorrt", "torch_pruning"} <= modules


def test_the_farms_task_module_loads_no_runtime() -> None:
    """Importing the tasks, the evaluation's and the gate's (what a fresh worker does first),
    must leave it fresh."""
    code = (
        "import farm.measure.remote; from farm.worker.remote import check_fresh_process; "
        "check_fresh_process(); print('fresh')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "fresh"


@pytest.mark.slow
def test_an_evaluation_never_gets_the_worker_of_a_build(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    ray_tmp = tempfile.mkdtemp(prefix="ray-")  # short: Ray's socket paths must fit 107 bytes
    env = {**os.environ, "RAY_TMPDIR": ray_tmp}
    env.pop("RAY_ADDRESS", None)
    cache = digits_cache_dir(tmp_path_factory)
    out = subprocess.run(
        [sys.executable, "-c", BUILD_THEN_EVALUATE, str(cache)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    shutil.rmtree(ray_tmp, ignore_errors=True)
    assert out.returncode == 0, out.stderr[-3000:]
    # the build imported torch in its worker; each evaluation got a fresh one of its own
    assert "built 1 fresh workers 3" in out.stdout, out.stdout
