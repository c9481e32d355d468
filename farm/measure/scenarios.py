"""The sampling loops: warm-up, then windows until stable or capped.

These loops are the hot path. Per query they do two clock calls, one store into a preallocated
list and a few comparisons; everything else (window statistics, the stability test) runs only
when a window closes. They take ``clock`` and ``sleep`` as arguments so that tests drive them
with a fake clock.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from farm.measure.contract import Contract
from farm.measure.stats import max_relative_deviation, percentile

#: Initial sample buffers never exceed this; a buffer that fills up is doubled (rarely).
_MAX_INITIAL_BUFFER = 1 << 20


@dataclass(frozen=True)
class Window:
    """Samples ``[start, end)`` of the buffer, taken between clock times ``t_start``..``t_end``."""

    start: int
    end: int
    t_start: float
    t_end: float

    @property
    def n(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class WarmUp:
    cold_s: float
    iterations: int
    mean_s: float


@dataclass(frozen=True)
class Sampling:
    """What a sampling loop produced: the kept samples (seconds) and the verdict."""

    samples_s: list[float]
    t_start: float
    t_end: float
    discarded: int
    stable: bool
    reason: str | None


def warm_up(
    run_once: Callable[[], object], contract: Contract, clock: Callable[[], float]
) -> WarmUp:
    """Run until ``warmup_iters`` calls *and* ``warmup_s`` seconds are done; time the first call."""
    t0 = clock()
    run_once()
    t1 = clock()
    cold = t1 - t0
    n = 1
    while n < contract.warmup_iters or t1 - t0 < contract.warmup_s:
        run_once()
        n += 1
        t1 = clock()
    mean = (t1 - t0 - cold) / (n - 1) if n > 1 else cold
    return WarmUp(cold_s=cold, iterations=n, mean_s=mean)


def _initial_buffer(contract: Contract, expected_s: float) -> list[float]:
    floor = contract.window_min_samples * contract.window_count
    if contract.scenario == "server":
        assert contract.qps is not None  # validated by Contract
        guess = contract.qps * contract.max_duration_s * 1.5
    else:
        guess = contract.max_duration_s / expected_s * 1.2 if expected_s > 0 else floor
    return [0.0] * int(min(max(guess, floor) + 16, _MAX_INITIAL_BUFFER))


class _Judge:
    """Decides, each time a window closes, whether the last ``window_count`` windows agree."""

    def __init__(self, contract: Contract, batch_size: int) -> None:
        self.contract = contract
        self.batch_size = batch_size
        self.reason: str | None = None

    def window_value(self, samples: list[float], w: Window) -> float:
        if self.contract.scenario == "offline":
            span = w.t_end - w.t_start
            return w.n * self.batch_size / span if span > 0 else math.inf
        return percentile(samples[w.start : w.end], 50, self.contract.percentile_method)

    def stable(self, samples: list[float], windows: list[Window]) -> bool:
        c = self.contract
        last = windows[-c.window_count :]
        values = [self.window_value(samples, w) for w in last]
        spread = max_relative_deviation(values)
        if spread <= c.stability_tolerance:
            self.reason = None
            return True
        if c.scenario == "offline":
            shown = ", ".join(f"{v:.1f}" for v in values) + " images/s"
            what = "window throughputs"
        else:
            shown = ", ".join(f"{v * 1e3:.4g}" for v in values) + " ms"
            what = "window medians"
        self.reason = (
            f"the last {len(last)} {what} ({shown}) deviate up to {spread:.1%} from their mean, "
            f"more than ±{c.stability_tolerance:.0%}"
        )
        return False


def _finish(
    samples: list[float],
    i: int,
    windows: list[Window],
    open_window: Window,
    contract: Contract,
    judge: _Judge,
    stable: bool,
    capped_by: str,
) -> Sampling:
    """Pick the reported windows and phrase the verdict."""
    wc = contract.window_count
    if len(windows) >= wc:
        kept = windows[-wc:]
        reason = None if stable else f"{judge.reason}; stopped at the {capped_by}"
    else:
        # Not enough complete windows to judge: report all that was sampled, flagged.
        kept = [*windows, open_window] if open_window.n else list(windows)
        reason = (
            f"stopped at the {capped_by} after {len(windows)} of {wc} windows "
            f"({i} samples; each window needs >= {contract.window_min_samples} samples and "
            f">= {contract.window_min_s:g} s, i.e. >= {contract.min_samples} samples and "
            f">= {contract.min_duration_s:g} s in all)"
        )
        stable = False
    first, last = kept[0], kept[-1]
    return Sampling(
        samples_s=samples[first.start : last.end],
        t_start=first.t_start,
        t_end=last.t_end,
        discarded=first.start,
        stable=stable,
        reason=reason,
    )


class _Windows:
    """The window bookkeeping both loops share; it runs only when a window closes.

    A loop keeps ``end_n``/``end_t`` (where the open window may close) and ``deadline`` in
    locals, calls :meth:`close` once sample ``i`` and clock time ``t1`` reach both, and
    :meth:`finish` when it stops.
    """

    def __init__(self, contract: Contract, batch_size: int, start: float) -> None:
        self.contract = contract
        self.judge = _Judge(contract, batch_size)
        self.windows: list[Window] = []
        self.deadline = start + contract.max_duration_s
        self.w_i, self.w_t = 0, start
        self.end_n, self.end_t = contract.window_min_samples, start + contract.window_min_s
        self.stable = False

    def close(self, samples: list[float], i: int, t1: float) -> bool:
        """Close the open window; True when the last ``window_count`` windows are stable."""
        c = self.contract
        self.windows.append(Window(self.w_i, i, self.w_t, t1))
        if len(self.windows) >= c.window_count and self.judge.stable(samples, self.windows):
            self.stable = True
            return True
        self.w_i, self.w_t = i, t1
        self.end_n, self.end_t = i + c.window_min_samples, t1 + c.window_min_s
        return False

    def finish(self, samples: list[float], i: int, t1: float) -> Sampling:
        return _finish(
            samples,
            i,
            self.windows,
            Window(self.w_i, i, self.w_t, t1),
            self.contract,
            self.judge,
            self.stable,
            f"cap of {self.contract.max_duration_s:g} s",
        )


def closed_loop(
    run_once: Callable[[], object],
    batch_size: int,
    contract: Contract,
    clock: Callable[[], float],
    expected_s: float,
) -> Sampling:
    """Single-stream and offline: the next query is issued when the previous one completes."""
    samples = _initial_buffer(contract, expected_s)
    size = len(samples)
    w = _Windows(contract, batch_size, clock())
    end_n, end_t, deadline = w.end_n, w.end_t, w.deadline
    i = 0
    while True:
        t0 = clock()
        run_once()
        t1 = clock()
        if i == size:
            samples.extend([0.0] * size)
            size = len(samples)
        samples[i] = t1 - t0
        i += 1
        if i >= end_n and t1 >= end_t:
            if w.close(samples, i, t1):
                break
            end_n, end_t = w.end_n, w.end_t
        if t1 >= deadline:
            break
    return w.finish(samples, i, t1)


def server_loop(
    run_once: Callable[[], object],
    batch_size: int,
    contract: Contract,
    clock: Callable[[], float],
    sleep: Callable[[float], object],
) -> Sampling:
    """Server: queries arrive as a Poisson process at ``qps``; one query is served at a time.

    A query's latency runs from its *scheduled* arrival to its completion, so when the runtime is
    slower than the arrivals, the time a query waits behind earlier ones is part of its latency.
    """
    assert contract.qps is not None  # validated by Contract
    rng = random.Random(contract.seed)
    rate = contract.qps
    samples = _initial_buffer(contract, 0.0)
    size = len(samples)
    start = clock()
    w = _Windows(contract, batch_size, start)
    end_n, end_t, deadline = w.end_n, w.end_t, w.deadline
    arrival = start + rng.expovariate(rate)
    i = 0
    while True:
        now = clock()
        if now < arrival:
            sleep(arrival - now)
        run_once()
        t1 = clock()
        if i == size:
            samples.extend([0.0] * size)
            size = len(samples)
        samples[i] = t1 - arrival
        i += 1
        arrival += rng.expovariate(rate)
        if i >= end_n and t1 >= end_t:
            if w.close(samples, i, t1):
                break
            end_n, end_t = w.end_n, w.end_t
        if t1 >= deadline:
            break
    return w.finish(samples, i, t1)
