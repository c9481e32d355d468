"""The CUDA targets' measurement, with ``torch.cuda`` unavailable: the contract's ``io`` and node
sharing, device-time bookkeeping in the worker, and the GPU (cores, price) a task gets."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from support.tiny_models import TinyModels, random_batch

from farm.errors import TrialError, UsageError
from farm.measure.contract import Contract
from targets import DeviceSession, get_target, runtime_class


def test_io_is_optional_and_left_out_of_cpu_contracts() -> None:
    plain = Contract()
    assert plain.io is None and plain.exclusive_node is None
    assert "io" not in plain.to_dict() and "exclusive_node" not in plain.to_dict()
    gpu = Contract(io="device", exclusive_node=False)
    assert gpu.to_dict()["io"] == "device" and gpu.to_dict()["exclusive_node"] is False
    assert Contract.from_dict(gpu.to_dict()) == gpu
    with pytest.raises(UsageError, match=r"field `io`: expected one of \['host', 'device'\]"):
        Contract(io="gpu")
    with pytest.raises(UsageError, match="field `exclusive_node`: expected true or false"):
        Contract.from_dict({"exclusive_node": "yes"})


def test_the_measurement_states_io_and_node_sharing_for_device_runtimes_only() -> None:
    from farm.measure.bench import contract_for
    from workloads.tasks import Classification

    task, gpu, cpu_runtime = Classification(), runtime_class("cuda-torch"), runtime_class("torch")
    cuda = contract_for({"min_duration_s": 0.5}, task, gpu)
    assert (cuda.io, cuda.exclusive_node) == ("host", False)
    asked = contract_for({"io": "device", "exclusive_node": True}, task, gpu)
    assert (asked.io, asked.exclusive_node) == ("device", True)
    cpu = contract_for({"io": "device"}, task, cpu_runtime)
    assert cpu.to_dict() == Contract().to_dict()  # CPU contracts are what they were


class FakeGpuSession(DeviceSession):
    """What the measurement needs of a GPU session: a device query and a device timer."""

    actual_precision = "fp16"

    def __init__(self, timings: list[float]) -> None:
        self.timings = timings
        self.staged: Any = None

    @property
    def device_memory_mib(self) -> float | None:
        return 123.0

    def run_all(self, batch: np.ndarray) -> list[np.ndarray]:
        return [np.zeros((len(batch), 10), np.float32)]

    def device_query(self, batch: np.ndarray) -> Any:
        self.staged = batch
        return lambda: "device output"

    def start_device_timing(self) -> bool:
        return True

    def stop_device_timing(self) -> list[float]:
        return self.timings


def test_device_io_times_the_staged_query_and_host_io_the_numpy_run(tiny: TinyModels) -> None:
    from farm.measure.bench import timed_query
    from targets.torch_runtime import TorchSession
    from workloads.tasks import Classification

    session = FakeGpuSession([])
    batch = random_batch(2)
    device = timed_query(session, Classification(), batch, (None, None), "device")
    assert device() == "device output" and session.staged is batch
    host = timed_query(session, Classification(), batch, (None, None), "host")
    assert host()[0].shape == (2, 10)  # type: ignore[index]
    cpu_session = TorchSession(None, "fp32", ())  # a session that is not a device session
    with pytest.raises(TrialError, match="no device-resident query"):
        timed_query(cpu_session, Classification(), batch, (None,), "device")


def test_device_time_is_taken_from_the_calls_the_measurement_reported() -> None:
    from farm.measure import Contract, measure
    from farm.measure.device import device_figures

    contract = Contract(warmup_s=0.0, warmup_iters=3, min_duration_s=0.0, min_samples=6)
    m = measure(lambda: None, 1, contract)
    first = m.warmup_runs + m.discarded_samples
    # warm-up and discarded calls took 100 ms on the device; the reported ones 1..n ms
    timings = [100.0] * first + [float(i + 1) for i in range(m.n_samples)] + [100.0] * 5
    figures = device_figures(FakeGpuSession(timings), True, m)
    assert figures.device_latency_p50_ms == float(np.percentile(
        range(1, m.n_samples + 1), 50, method="inverted_cdf"))  # fmt: skip
    assert figures.device_latency_p95_ms is not None
    assert figures.device_latency_p95_ms <= m.n_samples
    assert figures.device_memory_mib == 123.0
    none = device_figures(FakeGpuSession([]), False, m)
    assert none.device_latency_p50_ms is None


def test_the_gpu_a_task_got_sets_its_cores_and_its_price(monkeypatch: pytest.MonkeyPatch) -> None:
    from farm.measure.device import trial_gpu
    from farm.measure.node import gpu_slot

    fp = {"gpus": [{"model": "NVIDIA H200"}, {"model": "NVIDIA H100 80GB HBM3"}]}
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert gpu_slot() == 1
    assert trial_gpu(get_target("cuda-torch"), fp) == "NVIDIA H100 80GB HBM3"
    assert trial_gpu(get_target("cpu-torch"), fp) is None
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert gpu_slot() == 0
