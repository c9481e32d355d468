"""The cuda-torch session's own code run on the CPU: precisions, the warm-up inside compile, the
device timer's bookkeeping, and what needs a GPU refused."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from support.tiny_models import TinyModels, random_batch

from farm.artifact import Artifact
from farm.errors import TrialError, UsageError
from targets import RuntimeOptions
from targets.cuda_torch_runtime import (
    WARMUP_CALLS,
    build_session,
    load_program,
)


def _program(tiny: TinyModels) -> Any:
    return load_program(Artifact.read_from("torch-export", [tiny.pt2]), tiny.directory, "test")


@pytest.mark.parametrize(
    ("precision", "extra", "reported", "atol"),
    [
        ("fp32", {}, "fp32", 1e-5),
        ("fp32", {"channels_last": True, "fp32_math": "tf32"}, "tf32", 1e-5),
        ("bf16", {"channels_last": True}, "bf16", 5e-2),
        ("fp16", {}, "fp16", 5e-2),
    ],
)
def test_the_session_runs_on_the_cpu_with_the_same_code(
    tiny: TinyModels,
    precision: str,
    extra: dict[str, Any],
    reported: str,
    atol: float,
) -> None:
    session = build_session(_program(tiny), RuntimeOptions(precision, 2, 4, extra), "cpu")
    with session:
        assert session.actual_precision == reported and session.threads == 2
        assert session.graphs is None and session.device_memory_mib is None
        x = random_batch(4, seed=9)
        out = session.run(x)
        assert out.dtype == np.float32 and out.shape == (4, 10)
        np.testing.assert_allclose(out, tiny.reference(x), atol=atol, rtol=atol)
        device_out: Any = session.device_query(x)()
        np.testing.assert_allclose(device_out.float().numpy(), out, atol=1e-6)
        assert not session.start_device_timing() and session.stop_device_timing() == []
    with pytest.raises(TrialError, match="after close"):
        session.run(x)


def test_compile_does_the_warm_up_so_latency_samples_never_do(tiny: TinyModels) -> None:
    calls: list[tuple[int, ...]] = []
    program = _program(tiny)

    class Counting:
        def module(self) -> Any:
            inner = program.module()
            original = inner.forward

            def forward(x: Any) -> Any:
                calls.append(tuple(x.shape))
                return original(x)

            inner.forward = forward
            return inner

        def __getattr__(self, name: str) -> Any:
            return getattr(program, name)

    with build_session(Counting(), RuntimeOptions(batch_size=3), "cpu"):
        assert calls == [(3, 3, 32, 32)] * WARMUP_CALLS


class FakeEvent:
    """A CUDA event on a fake clock that advances by one per record."""

    clock = 0.0

    def __init__(self, enable_timing: bool) -> None:
        assert enable_timing
        self.t = 0.0

    def record(self) -> None:
        FakeEvent.clock += 1.0
        self.t = FakeEvent.clock

    def elapsed_time(self, end: FakeEvent) -> float:
        return end.t - self.t


def test_the_device_timer_brackets_each_forward_and_grows_its_pool(
    tiny: TinyModels,
) -> None:
    from types import SimpleNamespace

    from targets.cuda_torch_runtime import DeviceTimer

    fake_torch = SimpleNamespace(cuda=SimpleNamespace(Event=FakeEvent, synchronize=lambda: None))
    timer = DeviceTimer(fake_torch)
    timer.POOL_STEP = 4  # type: ignore[misc]
    session = build_session(_program(tiny), RuntimeOptions(batch_size=2), "cpu")
    with session:
        session._timer = timer  # the session's CUDA timer, on a fake clock
        query = session.device_query(random_batch(2))
        query()  # not timed
        assert session.start_device_timing()
        for _ in range(5):  # 10 events: the pool of 4 grows twice
            query()
        times = session.stop_device_timing()
    assert times == [1.0] * 5  # one duration per forward: its own two events
    assert len(timer._events) == 12


def test_cuda_graphs_need_a_gpu(tiny: TinyModels) -> None:
    with pytest.raises(UsageError, match="CUDA graphs need a GPU"):
        build_session(_program(tiny), RuntimeOptions(extra={"cuda_graphs": True}), "cpu")


@pytest.mark.slow
def test_torch_compile_runs_inside_compile_and_matches(tiny: TinyModels) -> None:
    """torch.compile on the CPU (inductor's C++ backend): slow on 2 cores, hence marked."""
    import time

    options = RuntimeOptions(batch_size=2, extra={"compile": "default"})
    with build_session(_program(tiny), options, "cpu") as session:
        x = random_batch(2, seed=4)
        start = time.perf_counter()
        out = session.run(x)
        assert time.perf_counter() - start < 1.0  # compiled already: no compile in a sample
        np.testing.assert_allclose(out, tiny.reference(x), atol=1e-3, rtol=1e-3)
