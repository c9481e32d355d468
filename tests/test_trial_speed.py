"""Faster trials with the same numbers (issue 12, part 4).

- The trial-time breakdown: ``trial_s`` from ask to record, ``orchestration_s`` the rest
  (engine logic, with fakes) and what a real job stores.
- A study asks only when a node could start its trial (engine logic, with fakes; and on a real
  one-node job: no trial waits behind another).
- Calibration reused across quantizer builds gives byte-identical models (real ONNX Runtime).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from farm.cluster.lifecycle import Node, NodeLeases
from farm.engine.runner import JobRunner, orchestration_s
from farm.store.db import Store
from optimizers import BuildContext, apply

# -- the breakdown -------------------------------------------------------------------------------


def test_orchestration_is_the_trial_time_outside_its_parts() -> None:
    row = {
        "status": "completed",
        "trial_s": 10.0,
        "build_s": 4.0,
        "compile_s": 1.0,
        "eval_s": 2.0,
        "measure_s": 1.5,
    }
    assert orchestration_s(row) == pytest.approx(1.5)
    assert orchestration_s({**row, "build_s": None}) == pytest.approx(5.5)  # a cached artifact
    assert orchestration_s({**row, "status": "failed"}) is None  # unknown where it went


# -- asking only when a node is free ---------------------------------------------------------


def node(name: str, *targets: str) -> Node:
    return Node(node_id=name, host=name, cpus=2, targets=targets)


def runner(nodes: list[Node], busy: tuple[str, ...] = (), pending: tuple[Any, ...] = ()) -> Any:
    """A JobRunner with only what ``_node_free_for`` reads: nodes, leases, waiting trials."""
    r = JobRunner.__new__(JobRunner)
    r._nodes = nodes
    r.leases = NodeLeases()
    for n in nodes:
        if n.node_id in busy:
            r.leases.acquire([n], "a task")
    r.pending = list(pending)
    return r


def waiting(target: str, stage: str = "evaluate") -> Any:
    return SimpleNamespace(target=target, stage=stage)


def test_one_shared_node_takes_one_trial_at_a_time() -> None:
    shared = [node("a", "cpu-onnxruntime", "cpu-openvino")]
    assert runner(shared)._node_free_for("cpu-openvino")
    assert not runner(shared, busy=("a",))._node_free_for("cpu-openvino")
    # a trial of another target waits for the node: a new one would wait behind it
    pending = (waiting("cpu-onnxruntime"),)
    assert not runner(shared, pending=pending)._node_free_for("cpu-openvino")
    assert not runner(shared, pending=(waiting("x", "build"),))._node_free_for("cpu-openvino")


def test_a_waiting_trial_claims_only_nodes_it_can_use() -> None:
    fleet = [node("a", "cpu-onnxruntime"), node("b", "cpu-openvino")]
    pending = (waiting("cpu-onnxruntime"),)
    assert runner(fleet, pending=pending)._node_free_for("cpu-openvino")  # b is free for it
    assert not runner(fleet, pending=pending)._node_free_for("cpu-onnxruntime")
    two = [*fleet, node("c", "cpu-onnxruntime")]
    assert runner(two, pending=pending)._node_free_for("cpu-onnxruntime")  # a and c: one left
    assert not runner(fleet, busy=("b",))._node_free_for("cpu-openvino")


def test_a_real_job_stores_the_breakdown_and_no_trial_waits_in_a_queue(small_job: Any) -> None:
    trials = Store(small_job.db).trials(small_job.job_id)
    assert trials
    for t in trials:
        parts = sum(t[p] or 0.0 for p in ("build_s", "compile_s", "eval_s", "measure_s"))
        assert t["trial_s"] >= parts > 0
        assert t["orchestration_s"] == pytest.approx(t["trial_s"] - parts)
    # One local node serves both targets: each trial is asked when the node is free, so the
    # trials' ask-to-record intervals follow one another instead of overlapping in a queue.
    spans = sorted((t["started_at"], t["finished_at"]) for t in trials)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end
    targets = [t["target"] for t in sorted(trials, key=lambda t: t["started_at"])]
    assert targets[:2] != [targets[0]] * 2  # the targets take turns from the start


def test_farm_jobs_json_says_where_the_time_went(
    small_job: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from farm.cli import main

    assert main(["jobs", "--json", "--db", str(small_job.db)]) == 0
    jobs = json.loads(capsys.readouterr().out)
    times = next(j for j in jobs if j["job_id"] == small_job.job_id)["trial_time"]
    trials = Store(small_job.db).trials(small_job.job_id)
    assert times["trials"] == len(trials)
    assert times["total_s"]["trial_s"] == pytest.approx(sum(t["trial_s"] for t in trials))
    assert sum(times["share"].values()) == pytest.approx(1.0)
    assert 0 < times["median_trial_s"] <= max(t["trial_s"] for t in trials)


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
