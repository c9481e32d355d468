"""Faster trials with the same numbers.

- The trial-time breakdown: ``trial_s`` from ask to record, ``orchestration_s`` the rest, and
  what a real job stores.
- A study asks only when a node could start its trial: on a real one-node job no trial waits
  behind another (the scheduler's own logic: ``tests/unit/engine/test_scheduler.py``).
- Calibration reused across quantizer builds gives byte-identical models (real ONNX Runtime).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from farm.engine.recorder import orchestration_s
from farm.store.db import Store
from farm.store.records import TrialRecord
from optimizers import BuildContext, apply

# -- the breakdown -------------------------------------------------------------------------------


def test_orchestration_is_the_trial_time_outside_its_parts() -> None:
    record = TrialRecord(
        "job", "t", 1, False, "h", {}, "completed", trial_s=10.0, build_s=4.0, compile_s=1.0,
        eval_s=2.0, measure_s=1.5,
    )  # fmt: skip
    assert orchestration_s(record) == pytest.approx(1.5)
    assert orchestration_s(record.replace(build_s=None)) == pytest.approx(5.5)  # cached artifact
    assert orchestration_s(record.replace(status="failed")) is None  # unknown where it went


def test_a_real_job_stores_the_breakdown_and_no_trial_waits_in_a_queue(small_job: Any) -> None:
    records = Store(small_job.db).trials(small_job.job_id)
    assert records
    for t in records:
        parts = sum(getattr(t, p) or 0.0 for p in ("build_s", "compile_s", "eval_s", "measure_s"))
        assert t.trial_s is not None and t.trial_s >= parts > 0
        assert t.orchestration_s == pytest.approx(t.trial_s - parts)
    # One local node serves both targets: each trial is asked when the node is free, so the
    # trials' ask-to-record intervals follow one another instead of overlapping in a queue.
    spans = sorted((t.started_at, t.finished_at) for t in records)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start is not None and end is not None and start >= end
    targets = [t.target for t in sorted(records, key=lambda t: str(t.started_at))]
    assert targets[:2] != [targets[0]] * 2  # the targets take turns from the start


def test_farm_jobs_json_says_where_the_time_went(
    small_job: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from farm.cli import main

    assert main(["jobs", "--json", "--db", str(small_job.db)]) == 0
    jobs = json.loads(capsys.readouterr().out)
    times = next(j for j in jobs if j["job_id"] == small_job.job_id)["trial_time"]
    records = Store(small_job.db).trials(small_job.job_id)
    assert times["trials"] == len(records)
    assert times["total_s"]["trial_s"] == pytest.approx(sum(t.trial_s or 0 for t in records))
    assert sum(times["share"].values()) == pytest.approx(1.0)
    assert 0 < times["median_trial_s"] <= max(t.trial_s or 0 for t in records)


# -- calibration reused across builds ----------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The tiny CNN as an ONNX artifact (no training: quantization only needs a float model)."""
    from support.tiny_models import build_tiny_models

    from farm.artifact import Artifact

    tiny = build_tiny_models(tmp_path_factory.mktemp("tiny-calibration"))
    return Artifact.read_from("onnx", [tiny.onnx])


def calibration_data(n: int = 32, seed: int = 0) -> Any:
    """What a quantizer reads of a workload's data: its calibration split."""
    from support.tiny_models import random_batch

    from workloads import Split

    return SimpleNamespace(calib=Split(random_batch(n, seed)))


@pytest.mark.parametrize("method", ["MinMax", "Entropy", "Percentile"])
def test_reused_calibration_gives_byte_identical_models(
    tiny_onnx: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    """The first build of a method calibrates and keeps the ranges in the cache directory; a
    later build with another activation type and mixed precision starts from them, and every
    model equals the one built from scratch without any cache."""
    import importlib

    ort_quantize = importlib.import_module("onnxruntime.quantization.quantize")
    data = calibration_data()
    configs: list[dict[str, Any]] = [
        {"calibration_method": method, "activation_type": "U8"},
        {"calibration_method": method, "activation_type": "S8", "keep_float_layers": 1},
    ]
    scratch = [apply("quantize_ort", c, tiny_onnx, BuildContext(data)) for c in configs]

    cached = BuildContext(data, cache_dir=tmp_path)
    first = apply("quantize_ort", configs[0], tiny_onnx, cached)
    assert len(list((tmp_path / "ort-calibration").glob("*.json"))) == 1

    def no_calibration(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("calibrated again although the ranges are cached")

    monkeypatch.setattr(ort_quantize, "create_calibrator", no_calibration)
    second = apply("quantize_ort", configs[1], tiny_onnx, cached)
    assert first.files == scratch[0].files
    assert second.files == scratch[1].files
    assert second.meta["float_nodes"] == scratch[1].meta["float_nodes"]


def test_calibration_is_not_reused_on_other_data(tiny_onnx: Any, tmp_path: Path) -> None:
    apply("quantize_ort", {}, tiny_onnx, BuildContext(calibration_data(), cache_dir=tmp_path))
    other = BuildContext(calibration_data(seed=1), cache_dir=tmp_path)
    apply("quantize_ort", {}, tiny_onnx, other)
    assert len(list((tmp_path / "ort-calibration").glob("*.json"))) == 2
