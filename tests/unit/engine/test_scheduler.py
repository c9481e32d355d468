"""Where and when a trial's task may run: free nodes, claims of waiting trials, capacity per GPU,
lost nodes (the scheduler alone, no executor)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from support.fake_executor import node

from farm.engine.scheduler import Scheduler
from targets import get_target

ORT, OV, CUDA = "cpu-onnxruntime", "cpu-openvino", "cuda-torch"


def scheduler(*nodes: Any, busy: tuple[str, ...] = (), **measurement: Any) -> Scheduler:
    targets = {t: get_target(t) for t in (ORT, OV, CUDA)}
    s = Scheduler(targets, measurement)
    s.refresh(nodes)
    for n in nodes:
        if n.node_id in busy:
            s.leases.acquire([n], "a task")
    return s


def waiting(target: str, stage: str = "evaluate") -> Any:
    return SimpleNamespace(target=target, stage=stage)


def test_one_shared_node_takes_one_trial_at_a_time() -> None:
    shared = node("a", ORT, OV)
    assert scheduler(shared).node_free_for(OV, [])
    assert not scheduler(shared, busy=("a",)).node_free_for(OV, [])
    # a trial of another target waits for the node: a new one would wait behind it
    assert not scheduler(shared).node_free_for(OV, [waiting(ORT)])
    assert not scheduler(shared).node_free_for(OV, [waiting("x", "build")])


def test_a_waiting_trial_claims_only_nodes_it_can_use() -> None:
    a, b, c = node("a", ORT), node("b", OV), node("c", ORT)
    assert scheduler(a, b).node_free_for(OV, [waiting(ORT)])  # b is free for it
    assert not scheduler(a, b).node_free_for(ORT, [waiting(ORT)])
    assert scheduler(a, b, c).node_free_for(ORT, [waiting(ORT)])  # a and c: one left
    assert not scheduler(a, b, busy=("b",)).node_free_for(OV, [])


def test_cuda_measurements_take_one_gpu_each_unless_the_job_wants_exclusive_nodes() -> None:
    two, one = node("a", CUDA, gpus=2), node("b", CUDA, gpus=1)
    assert scheduler(two, one).capacity(CUDA) == 3
    assert scheduler(two, one, exclusive_node=True).capacity(CUDA) == 2
    assert scheduler(two, one).capacity(ORT) == 0
    shared = scheduler(two)
    assert shared.lease_evaluation(CUDA, 1, "m1") is two
    assert shared.lease_evaluation(CUDA, 1, "m2") is two  # its second GPU
    assert shared.lease_evaluation(CUDA, 1, "m3") is None


def test_builds_prefer_nodes_that_serve_fewer_targets_and_evaluations_need_their_threads() -> None:
    both, spare = node("both", ORT, OV), node("spare", ORT, cpus=1)
    s = scheduler(both, spare)
    assert s.lease_build("build 1") is spare
    assert s.lease_evaluation(ORT, 2, "evaluate") is both  # spare has one CPU
    assert s.lease_evaluation(ORT, 1, "evaluate 2") is None  # spare builds, both measures


def test_a_lost_node_is_never_leased_again_even_when_the_cluster_lists_it() -> None:
    a, b = node("a", ORT), node("b", ORT)
    s = scheduler(a, b)
    s.exclude("a")
    s.refresh([a, b])  # Ray may list a lost node as alive a while longer
    assert [n.node_id for n in s.serving(ORT)] == ["b"]
    s.exclude("b")
    assert s.serving(ORT) == [] and s.most_cpus(ORT) == 0
