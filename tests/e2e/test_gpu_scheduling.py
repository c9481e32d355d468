"""Several GPUs per node: k measurements of CUDA targets at once on a node with k GPUs, each on its
own GPU, unless the job asks for exclusive nodes.

The driver's side (leases, capacity) is tested directly; Ray's side with Ray's own accounting, on
a ``ray.cluster_utils.Cluster`` whose nodes advertise fake GPUs: the tasks are submitted with the
very options the engine's executor computes (``farm.cluster.leases.measurement_resources``).
The evaluate task itself checks for a real GPU, so a fault-free fake measurement (it sleeps) stands
in for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from farm.cluster.leases import (
    NODE_SLOT,
    NodeLeases,
    measurement_resources,
    measurement_slots,
    shares_gpus,
)
from farm.cluster.lifecycle import Node

TARGET = "target:cuda-torch"
#: How long the fake measurement holds its GPU.
HOLD_S = 2.0


def node(node_id: str, gpus: int, slotted: bool = True) -> Node:
    resources = {"GPU": float(gpus), "CPU": 4.0, TARGET: 1.0}
    return Node(node_id, node_id, 4, ("cuda-torch",), slotted, None, resources)


def test_cuda_measurements_share_nodes_per_gpu_unless_the_job_wants_exclusive_nodes() -> None:
    assert shares_gpus("cuda", {})
    assert not shares_gpus("cuda", {"exclusive_node": True})
    assert not shares_gpus("cpu", {})
    two = node("a", 2)
    assert measurement_slots(two, per_gpu=True) == 2
    assert measurement_slots(two, per_gpu=False) == 1
    assert measurement_slots(node("none", 0), per_gpu=True) == 1  # the worker refuses it later


def test_ray_options_give_one_gpu_and_a_share_of_the_node() -> None:
    two, three = node("a", 2), node("b", 3)
    assert measurement_resources(two, cuda=True, per_gpu=True) == {
        "num_gpus": 1,
        "resources": {NODE_SLOT: 0.5},
    }
    shares = measurement_resources(three, cuda=True, per_gpu=True)["resources"][NODE_SLOT]
    assert 3 * shares <= 1.0 and shares == 0.3333
    assert measurement_resources(two, cuda=True, per_gpu=False)["resources"] == {NODE_SLOT: 1.0}
    assert measurement_resources(two, cuda=False, per_gpu=False)["num_gpus"] == 0
    unslotted = node("c", 2, slotted=False)
    assert measurement_resources(unslotted, cuda=True, per_gpu=True)["resources"] == {}


def test_a_node_leases_one_measurement_per_gpu_and_nothing_beside_them() -> None:
    leases = NodeLeases()
    a, b = node("a", 2), node("b", 1)
    assert leases.acquire([a, b], "m1", per_gpu=True) is a
    assert leases.acquire([a, b], "m2", per_gpu=True) is b  # a free node first
    assert not leases.busy("a")  # a has a free GPU
    assert leases.acquire([a, b], "m3", per_gpu=True) is a
    assert leases.busy("a") and leases.busy("b") and len(leases) == 3
    assert leases.acquire([a, b], "m4", per_gpu=True) is None
    leases.release("a", "m1")
    assert leases.acquire([a], "build", per_gpu=False) is None  # a build waits for the node
    leases.release("a", "m3")
    assert leases.acquire([a], "build", per_gpu=False) is a
    assert leases.acquire([a], "m5", per_gpu=True) is None  # nothing beside a build
    leases.release("a")
    leases.release("b")
    assert len(leases) == 0


# -- Ray's accounting on nodes with fake GPUs ------------------------------------------------------
@pytest.fixture(scope="module")
def gpu_cluster() -> Iterator[dict[str, Node]]:
    """Two nodes: one advertising 2 GPUs, one advertising 1 (Ray believes them)."""
    import ray
    from ray.cluster_utils import Cluster

    from farm.cluster.lifecycle import alive_nodes

    ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    for name, gpus in (("two", 2), ("one", 1)):
        cluster.add_node(
            num_cpus=2, num_gpus=gpus, resources={TARGET: 1, NODE_SLOT: 1, f"test:{name}": 1}
        )
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        yield {
            name: next(n for n in alive_nodes() if f"test:{name}" in n.resources)
            for name in ("two", "one")
        }
    finally:
        ray.shutdown()
        cluster.shutdown()


def fake_measurement() -> Any:
    """A Ray remote function that holds its GPU for a while and returns when it ran and which
    GPU Ray gave it (defined in here, so that Ray ships it by value: workers cannot import
    this test module)."""
    import ray

    hold = HOLD_S

    def measurement() -> tuple[float, float, str]:
        import os
        import time

        start = time.time()
        time.sleep(hold)
        return start, time.time(), os.environ.get("CUDA_VISIBLE_DEVICES", "")

    return ray.remote(max_retries=0, max_calls=1)(measurement)


def run_two(target: Node, per_gpu: bool) -> list[tuple[float, float, str]]:
    """Two measurements of a CUDA target on ``target``, submitted as the engine submits them
    (leases first, then Ray with the engine's options), started together; their outcomes."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    remote = fake_measurement()
    leases = NodeLeases()
    refs: list[Any] = []
    for i in range(2):
        leased = leases.acquire([target], f"evaluate cuda-torch/{i}", per_gpu=per_gpu)
        # the driver submits what its leases allow now, the rest once a lease is released
        if leased is None:
            ray.get(refs)
            leases.release(target.node_id)
            leased = leases.acquire([target], f"evaluate cuda-torch/{i}", per_gpu=per_gpu)
        assert leased is target
        placement = measurement_resources(target, cuda=True, per_gpu=per_gpu)
        refs.append(
            remote.options(
                num_cpus=1,
                num_gpus=placement["num_gpus"],
                resources={TARGET: 0.001, **placement["resources"]},
                scheduling_strategy=NodeAffinitySchedulingStrategy(target.node_id, soft=False),
            ).remote()
        )
    return ray.get(refs)


def overlap(runs: list[tuple[float, float, str]]) -> float:
    (s1, e1, _), (s2, e2, _) = runs
    return min(e1, e2) - max(s1, s2)


@pytest.mark.slow
def test_two_measurements_overlap_on_a_node_with_two_gpus_each_on_its_own(
    gpu_cluster: dict[str, Node],
) -> None:
    runs = run_two(gpu_cluster["two"], per_gpu=True)
    assert overlap(runs) > HOLD_S / 2
    assert sorted(gpu for _, _, gpu in runs) == ["0", "1"]


@pytest.mark.slow
def test_two_measurements_take_turns_on_a_node_with_one_gpu(
    gpu_cluster: dict[str, Node],
) -> None:
    runs = run_two(gpu_cluster["one"], per_gpu=True)
    assert overlap(runs) < 0
    assert [gpu for _, _, gpu in runs] == ["0", "0"]


@pytest.mark.slow
def test_exclusive_nodes_take_turns_even_with_two_gpus(gpu_cluster: dict[str, Node]) -> None:
    runs = run_two(gpu_cluster["two"], per_gpu=False)
    assert overlap(runs) < 0


@pytest.mark.slow
def test_ray_alone_keeps_one_measurement_per_gpu(gpu_cluster: dict[str, Node]) -> None:
    """Without the driver's leases (another job's driver), Ray's GPU accounting still never
    puts two measurements on one GPU: on the one-GPU node the second waits."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    target = gpu_cluster["one"]
    remote = fake_measurement()
    placement = measurement_resources(target, cuda=True, per_gpu=True)
    refs = [
        remote.options(
            num_cpus=1,
            num_gpus=placement["num_gpus"],
            resources={TARGET: 0.001, **placement["resources"]},
            scheduling_strategy=NodeAffinitySchedulingStrategy(target.node_id, soft=False),
        ).remote()
        for _ in range(2)
    ]
    assert overlap(ray.get(refs)) < 0
