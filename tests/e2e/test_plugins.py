"""A target and a transform registered from the tests alone run a real job: real Ray (whose
workers never import the tests), real ONNX Runtime, real DuckDB. Nothing under ``farm/``,
``targets/`` or ``optimizers/`` names them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support import toy_plugins

from farm.engine.runner import JobRunner
from farm.spec.job import parse_job
from farm.store.db import Store

ROOT = Path(__file__).resolve().parents[2]
TOY_NAMES = ("cpu-toy", "toy-onnx", "toy_round_weights", "toy_plugins")


@pytest.fixture
def toy() -> Iterator[None]:
    """The toy plug-ins registered, and a local Ray instance started after it (so that this
    machine advertises the toy target); both undone afterwards."""
    import ray

    ray.shutdown()
    toy_plugins.register()
    try:
        yield
    finally:
        ray.shutdown()
        toy_plugins.unregister()


@pytest.mark.slow
def test_a_toy_target_and_transform_registered_from_the_tests_run_a_real_job(
    toy: None, results_dir: Path
) -> None:
    spec = parse_job(
        {
            "name": "toy",
            "targets": ["cpu-toy"],
            "workload": {"name": "digits"},
            "search": {
                "trials_per_target": 4,
                "seed": 2,
                "precision": ["fp32", "int8"],
                "batch_size": [1],
                "threads": [1],
                "knobs": {"runtime.spin": [False]},
            },
            "measurement": {"min_duration_s": 0.1, "max_duration_s": 0.3, "min_samples": 16},
        },
        source="toy.toml",
    )
    store = Store(results_dir / "toy.duckdb")
    runner = JobRunner(spec, store)
    assert runner.run() == "completed"
    records = store.trials(runner.job_id)
    # fp32, and int8 with the toy transform at 8 or 6 bits: 3 distinct candidates
    assert runner.studies["cpu-toy"].budget == 3
    assert len(records) == 3 and all(r.completed for r in records), [r.error for r in records]
    rounded = [r for r in records if r.precision == "int8"]
    assert rounded, "the screening design measures int8 (the toy transform) early"
    for r in rounded:
        assert r.params["toy_round_weights.bits"] in (8, 6)
        assert r.precision_actual == "toy-int8+fp32"  # read back from the toy session
        assert r.quality is not None and r.quality > 0.5
    assert records[0].precision_actual == "fp32" and records[0].node_host


def test_no_file_of_the_farm_names_the_toy_plugins() -> None:
    for package in ("farm", "targets", "optimizers"):
        for path in (ROOT / package).rglob("*"):
            if path.is_file() and path.suffix in (".py", ".toml"):
                text = path.read_text()
                assert not [n for n in TOY_NAMES if n in text], path
