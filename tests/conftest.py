"""Shared fixtures: one small real job (real Ray, real runtimes, real DuckDB) per test session.

Ray is started once in the test process and shut down at the end; tests that need their own
cluster (tests/test_fleet*.py) shut it down first and restart it themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.jobs import SMALL_JOB, SmallJob
from support.tiny_models import TinyModels, build_tiny_models

pytest_plugins = ["support.workload_fixtures"]


@pytest.fixture(scope="session")
def results_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results folder shared by the session: the digits model is trained into it once."""
    return tmp_path_factory.mktemp("results")


@pytest.fixture(scope="session")
def small_job(results_dir: Path) -> SmallJob:
    """A real job of 3 trials on each of two targets, run once per session."""
    import tomllib

    from farm.engine.runner import JobRunner
    from farm.spec.job import parse_job
    from farm.store.db import Store

    spec = parse_job(tomllib.loads(SMALL_JOB), source="small.toml")
    store = Store(results_dir / "farm.duckdb")
    runner = JobRunner(spec, store)
    assert runner.run() == "completed"
    return SmallJob(store.path, runner.job_id, results_dir)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    """The tiny CNN as a torch module, an ONNX file and a torch.export program (the target
    contract's models)."""
    return build_tiny_models(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture(scope="session", autouse=True)
def _shutdown_ray() -> Iterator[None]:
    yield
    import sys

    if "ray" in sys.modules:
        import ray

        ray.shutdown()
