"""The harness's stopping, stability and scenario logic, driven by a fake clock."""

from __future__ import annotations

import json
import random
from collections.abc import Callable

import numpy as np
import pytest

from farm.errors import UsageError
from farm.measure import Contract, measure, percentile
from farm.measure.affinity import physical_core_cpus, pin_to_cores


class FakeClock:
    """Time only moves when the model "runs" (by scripted latencies) or the harness sleeps."""

    def __init__(self, latency: Callable[[int], float]) -> None:
        self.t = 1000.0
        self.calls = 0
        self.sleeps: list[float] = []
        self._latency = latency

    def clock(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.t += seconds

    def run_once(self) -> None:
        self.t += self._latency(self.calls)
        self.calls += 1

    def measure(self, contract: Contract, batch_size: int = 1):
        return measure(self.run_once, batch_size, contract, clock=self.clock, sleep=self.sleep)


def constant(seconds: float) -> Callable[[int], float]:
    return lambda i: seconds


# -- percentiles ---------------------------------------------------------------------------


@pytest.mark.parametrize("q", [0, 1, 25, 50, 90, 95, 99, 99.9, 100])
def test_percentile_matches_numpy_inverted_cdf(q: float) -> None:
    data = np.random.default_rng(1).lognormal(0.0, 0.5, size=997)
    assert percentile(data, q) == np.percentile(data, q, method="inverted_cdf")
    assert percentile(list(data), q, "linear") == pytest.approx(np.percentile(data, q))


def test_percentile_is_nearest_rank_on_known_data() -> None:
    data = list(range(1, 101))  # 1..100
    assert percentile(data, 50) == 50
    assert percentile(data, 90) == 90
    assert percentile(data, 99) == 99
    assert percentile(data, 99.5) == 100
    assert percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 95) == 10  # rank ceil(9.5) = 10
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0  # an observed value, not interpolated


def test_percentile_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 50)
    with pytest.raises(ValueError, match="q"):
        percentile([1.0], 101)


# -- warm-up ---------------------------------------------------------------------------------


def test_warmup_samples_are_discarded_and_cold_call_timed() -> None:
    # Call 0 (cold) 500 ms, calls 1-9 100 ms, then 10 ms steady.
    fake = FakeClock(lambda i: 0.5 if i == 0 else 0.1 if i < 10 else 0.01)
    m = fake.measure(Contract(warmup_s=0.0, warmup_iters=10))
    assert m.cold_ms == pytest.approx(500.0)
    assert m.warmup_runs == 10
    assert max(m.samples_ms) == pytest.approx(10.0)
    assert m.p99_ms == pytest.approx(10.0)
    assert m.stable


def test_warmup_runs_until_both_time_and_count_are_reached() -> None:
    fake = FakeClock(constant(1 / 64))  # exact in binary: no rounding at the 0.5 s edge
    assert fake.measure(Contract(warmup_s=0.5, warmup_iters=3)).warmup_runs == 32
    fake = FakeClock(constant(0.1))
    assert fake.measure(Contract(warmup_s=0.05, warmup_iters=7)).warmup_runs == 7


# -- stopping rule -----------------------------------------------------------------------------


def test_stops_once_min_samples_and_min_duration_are_met() -> None:
    contract = Contract(warmup_s=0, warmup_iters=1, min_duration_s=1.0, min_samples=64)
    m = FakeClock(constant(0.01)).measure(contract)
    # Each of 3 windows needs >= 22 samples and >= 1/3 s, i.e. 34 samples of 10 ms.
    assert m.stable and m.unstable_reason is None
    assert m.n_samples == 3 * 34
    assert m.duration_s >= 1.0 and m.n_samples >= 64
    assert m.discarded_samples == 0
    assert m.p50_ms == pytest.approx(10.0)
    assert m.throughput_ips == pytest.approx(100.0)


def test_min_samples_dominates_for_fast_models() -> None:
    contract = Contract(warmup_s=0, warmup_iters=1, min_duration_s=0.01, min_samples=300)
    m = FakeClock(constant(0.001)).measure(contract)
    assert m.stable
    assert m.n_samples == 300


def test_extends_until_the_last_windows_agree() -> None:
    # Latency settles from 50 ms to 10 ms over the first 60 calls (caches, clock boost).
    fake = FakeClock(lambda i: 0.01 + 0.04 * max(0.0, 1 - i / 60))
    contract = Contract(warmup_s=0, warmup_iters=1, min_duration_s=1.0, min_samples=64)
    m = fake.measure(contract)
    assert m.stable
    assert m.discarded_samples > 0  # the unsettled windows became extended warm-up
    assert m.p50_ms == pytest.approx(10.0)
    assert m.samples_ms[0] < 20.0  # nothing from the steep part of the ramp
    assert m.n_samples >= 64 and m.duration_s >= 1.0


def test_cap_reached_while_drifting_is_unstable_with_reason() -> None:
    # Latency keeps growing 1 % per call: windows never agree.
    fake = FakeClock(lambda i: 0.01 * 1.01**i)
    contract = Contract(warmup_s=0, warmup_iters=1, min_duration_s=0.3, max_duration_s=2.0)
    start = fake.t
    m = fake.measure(contract)
    assert not m.stable
    assert "deviate" in m.unstable_reason and "cap of 2 s" in m.unstable_reason
    assert fake.t - start <= 0.01 + 2.0 + 0.2  # warm-up + cap + at most one more query


def test_cap_before_enough_samples_is_unstable_and_keeps_everything() -> None:
    # 100 ms per query: 64 samples would take 6.4 s, the cap is 3 s.
    m = FakeClock(constant(0.1)).measure(Contract(warmup_s=0, warmup_iters=1))
    assert not m.stable
    assert ">= 64 samples" in m.unstable_reason and "cap of 3 s" in m.unstable_reason
    assert m.n_samples in (30, 31)  # 3 s of 100 ms queries (float rounding at the edge)
    assert m.discarded_samples == 0


def test_sample_buffer_grows_when_warmup_overestimates_latency() -> None:
    # Warm-up is slow (100 ms), sampling is fast (1 ms): the first buffer guess is far too small.
    fake = FakeClock(lambda i: 0.1 if i < 5 else 0.001)
    m = fake.measure(Contract(warmup_s=0, warmup_iters=5, min_duration_s=1.5, max_duration_s=3))
    assert m.stable
    assert m.n_samples >= 1500
    np.testing.assert_allclose(m.samples_ms, 1.0)


# -- scenarios ---------------------------------------------------------------------------------


def test_offline_reports_images_per_second() -> None:
    m = FakeClock(constant(0.02)).measure(Contract(scenario="offline", warmup_iters=1), 8)
    assert m.stable
    assert m.throughput_ips == pytest.approx(8 / 0.02)
    assert m.p50_ms == pytest.approx(20.0)


def test_offline_judges_stability_on_window_throughput() -> None:
    fake = FakeClock(lambda i: 0.02 * 1.01**i)
    contract = Contract(
        scenario="offline", warmup_s=0, warmup_iters=1, min_duration_s=0.3, min_samples=30
    )
    m = fake.measure(contract, 8)
    assert not m.stable
    assert "throughputs" in m.unstable_reason


def _simulate_single_server(
    start: float, qps: float, seed: int, service: float, n: int
) -> list[float]:
    rng = random.Random(seed)
    arrival, free_at, latencies = start, start, []
    for _ in range(n):
        arrival += rng.expovariate(qps)
        done = max(arrival, free_at) + service
        latencies.append(done - arrival)
        free_at = done
    return latencies


def test_server_latency_includes_queueing_when_overloaded() -> None:
    # 20 ms of service against a mean inter-arrival time of 10 ms: the queue grows.
    fake = FakeClock(constant(0.02))
    contract = Contract(scenario="server", qps=100, warmup_iters=1, warmup_s=0, seed=7)
    warm_end = 1000.0 + 0.02
    m = fake.measure(contract)
    expected = _simulate_single_server(warm_end, 100, 7, 0.02, m.discarded_samples + m.n_samples)
    got = np.array(m.samples_ms) / 1e3
    np.testing.assert_allclose(got, expected[m.discarded_samples :], rtol=1e-9, atol=1e-9)
    assert m.p50_ms > 100  # far above the 20 ms service time: queueing is counted
    assert not m.stable and "window medians" in m.unstable_reason


def test_server_below_capacity_waits_for_arrivals() -> None:
    fake = FakeClock(constant(0.002))
    m = fake.measure(Contract(scenario="server", qps=50, warmup_iters=1, warmup_s=0, seed=3))
    assert fake.sleeps  # the harness slept until the scheduled arrivals
    assert m.stable
    # A 2 ms service rarely queues at 50 qps: the median is the bare service time.
    assert m.p50_ms == pytest.approx(2.0)
    assert m.p99_ms >= 2.0
    assert m.throughput_ips == pytest.approx(50, rel=0.35)


def test_server_schedule_is_reproducible_by_seed() -> None:
    def run(seed: int) -> tuple[float, ...]:
        fake = FakeClock(constant(0.009))
        return fake.measure(
            Contract(scenario="server", qps=100, warmup_iters=1, seed=seed)
        ).samples_ms

    assert run(1) == run(1)
    assert run(1) != run(2)


# -- contract and result -----------------------------------------------------------------------


def test_contract_round_trips_and_rejects_unknown_fields() -> None:
    c = Contract(scenario="server", qps=200.0, min_samples=662, seed=4)
    assert Contract.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    with pytest.raises(UsageError, match="warmup"):
        Contract.from_dict({"warmup": 1})


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"scenario": "batch"}, "scenario"),
        ({"min_samples": 0}, "min_samples"),
        ({"window_count": 0}, "window_count"),
        ({"warmup_s": -1.0}, "warmup_s"),
        ({"stability_tolerance": 0}, "stability_tolerance"),
        ({"percentile_method": "hazen"}, "percentile_method"),
        ({"min_duration_s": 5.0, "max_duration_s": 2.0}, "max_duration_s"),
        ({"scenario": "server"}, "qps"),
        ({"scenario": "server", "qps": -5.0}, "qps"),
        ({"qps": 10.0}, "qps"),
        ({"min_samples": 1.5}, "min_samples"),
        ({"max_duration_s": float("nan")}, "max_duration_s"),
    ],
)
def test_contract_validation_names_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(UsageError, match=f"`{field}"):
        Contract(**kwargs)


def test_measure_rejects_bad_batch_size() -> None:
    with pytest.raises(UsageError, match="batch_size"):
        measure(lambda: None, 0, Contract())


def test_measurement_to_dict_is_json_and_omits_samples() -> None:
    m = FakeClock(constant(0.01)).measure(Contract(warmup_iters=1), 4)
    d = json.loads(json.dumps(m.to_dict()))
    assert "samples_ms" not in d
    assert d["contract"] == Contract(warmup_iters=1).to_dict()
    assert d["n_samples"] == len(m.samples_ms) and d["batch_size"] == 4
    assert d["std_ms"] == pytest.approx(0.0, abs=1e-9) and d["cv"] == pytest.approx(0, abs=1e-9)


def test_statistics_match_numpy_on_the_kept_samples() -> None:
    rng = np.random.default_rng(5)
    script = rng.uniform(0.009, 0.011, size=100_000)
    m = FakeClock(lambda i: float(script[i])).measure(Contract(warmup_iters=3))
    arr = np.array(m.samples_ms)
    assert m.p90_ms == np.percentile(arr, 90, method="inverted_cdf")
    assert m.mean_ms == pytest.approx(arr.mean())
    assert m.std_ms == pytest.approx(arr.std(ddof=1))
    assert m.cv == pytest.approx(m.std_ms / m.mean_ms)


def test_real_clock_defaults_fit_a_trial() -> None:
    """Default contract on a real (trivial) workload: a few seconds at most."""
    import time

    t0 = time.perf_counter()
    m = measure(lambda: sum(range(200)), 1)
    assert time.perf_counter() - t0 < 0.2 + 3.0 + 1.0  # warm-up + cap + slack for a busy machine
    assert m.n_samples >= 64 and m.duration_s >= 1.0 - 1e-9


# -- CPU pinning -------------------------------------------------------------------------------


def test_physical_core_cpus_skips_smt_siblings_and_prefers_high_ids(tmp_path) -> None:
    # CPUs 0-3 on one socket; 0/2 and 1/3 are SMT siblings of cores 0 and 1. CPU 4 has no topology.
    for cpu, core in [(0, 0), (1, 1), (2, 0), (3, 1)]:
        topo = tmp_path / f"cpu{cpu}" / "topology"
        topo.mkdir(parents=True)
        (topo / "physical_package_id").write_text("0\n")
        (topo / "core_id").write_text(f"{core}\n")
    assert physical_core_cpus({0, 1, 2, 3}, tmp_path) == [1, 0]
    assert physical_core_cpus({2, 3}, tmp_path) == [3, 2]
    assert physical_core_cpus({0, 2, 4}, tmp_path) == [0, 4]  # "?" socket sorts after "0"


def test_pin_to_cores_changes_nothing_when_threads_cover_the_cpus() -> None:
    import os

    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no CPU affinity on this platform")
    before = os.sched_getaffinity(0)
    assert pin_to_cores(len(before)) is None
    assert os.sched_getaffinity(0) == before
