"""``measure()``: the one timing harness used by ``farm measure`` and by every trial of a job."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from farm.errors import UsageError
from farm.measure.contract import Contract
from farm.measure.scenarios import Sampling, closed_loop, server_loop, warm_up
from farm.measure.stats import mean_std, percentile


@dataclass(frozen=True)
class Measurement:
    """Latency (ms per batch) and throughput of one model on one target, with its contract."""

    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    #: Coefficient of variation of the latency samples (std / mean).
    cv: float
    #: Images per second over the reported span (batches completed × batch size / wall time).
    throughput_ips: float
    n_samples: int
    #: Wall time spanned by the reported samples (seconds).
    duration_s: float
    stable: bool
    unstable_reason: str | None
    #: The first inference after compile (part of the warm-up, never a sample).
    cold_ms: float
    samples_ms: tuple[float, ...] = field(repr=False)
    contract: Contract
    batch_size: int = 1
    #: Warm-up calls actually made (the cold call included).
    warmup_runs: int = 0
    #: Samples taken after warm-up but before the reported windows (extended warm-up).
    discarded_samples: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary: everything but the raw samples; the contract as a dict."""
        out: dict[str, Any] = {
            name: getattr(self, name)
            for name in self.__dataclass_fields__
            if name not in ("samples_ms", "contract")
        }
        out["contract"] = self.contract.to_dict()
        return out


def measure(
    run_once: Callable[[], object],
    batch_size: int,
    contract: Contract | None = None,
    clock: Callable[[], float] = time.perf_counter,
    sleep: Callable[[float], object] = time.sleep,
) -> Measurement:
    """Measure ``run_once`` (one query: one batch of ``batch_size`` images) under ``contract``.

    ``run_once`` must do all the work of a query and nothing else (inputs prepared beforehand).
    ``clock`` returns seconds; ``sleep`` waits (server scenario only). Both are parameters so the
    stopping and stability logic can be tested with a fake clock.
    """
    contract = Contract() if contract is None else contract
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UsageError(f"measure: `batch_size >= 1` must hold, but got {batch_size!r}")
    warm = warm_up(run_once, contract, clock)
    sampling: Sampling
    if contract.scenario == "server":
        sampling = server_loop(run_once, batch_size, contract, clock, sleep)
    else:
        sampling = closed_loop(run_once, batch_size, contract, clock, warm.mean_s)
    return _summarise(sampling, warm.cold_s, warm.iterations, batch_size, contract)


def _summarise(
    s: Sampling, cold_s: float, warmup_runs: int, batch_size: int, contract: Contract
) -> Measurement:
    ms = tuple(x * 1e3 for x in s.samples_s)
    method = contract.percentile_method
    mean, std = mean_std(ms)
    span = s.t_end - s.t_start
    return Measurement(
        p50_ms=percentile(ms, 50, method),
        p90_ms=percentile(ms, 90, method),
        p95_ms=percentile(ms, 95, method),
        p99_ms=percentile(ms, 99, method),
        mean_ms=mean,
        std_ms=std,
        cv=std / mean if mean > 0 else 0.0,
        throughput_ips=len(ms) * batch_size / span if span > 0 else 0.0,
        n_samples=len(ms),
        duration_s=span,
        stable=s.stable,
        unstable_reason=s.reason,
        cold_ms=cold_s * 1e3,
        samples_ms=ms,
        contract=contract,
        batch_size=batch_size,
        warmup_runs=warmup_runs,
        discarded_samples=s.discarded,
    )
