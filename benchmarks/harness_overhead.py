"""Harness overhead: the farm's p50 against a bare ``session.run`` loop, same process, same session.

ResNet-18 (torchvision, random weights) exported to ONNX, ONNX Runtime, batch 1, 2 threads.
Each round times a bare loop, then the farm's ``measure()``, then a bare loop again, and compares
the farm's p50 with the mean of the two bare p50s around it, so slow drift of a shared machine
cancels. Target: median ratio over the rounds <= 1.02. It also prints the harness's own cost per
query (a no-op query), which does not depend on the machine's noise.

    .venv/bin/python benchmarks/harness_overhead.py [--rounds 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import numpy as np
from _common import query, resnet18_session

from farm.measure import Contract, measure, percentile

TARGET_RATIO = 1.02


def bare_loop(ort: Any, feed: dict[str, np.ndarray], warmup: int, seconds: float) -> list[float]:
    """What a person would write by hand: time each ``session.run`` with perf_counter."""
    for _ in range(warmup):
        ort.run(None, feed)
    samples = []
    end = time.perf_counter() + seconds
    while True:
        t0 = time.perf_counter()
        ort.run(None, feed)
        t1 = time.perf_counter()
        samples.append((t1 - t0) * 1e3)
        if t1 >= end:
            return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--no-pin", action="store_true", help="let the OS place the threads")
    args = parser.parse_args()

    with resnet18_session(pin=not args.no_pin) as (session, x):
        feed = {"input": x}
        contract = Contract()
        run_once = query(session, x)
        print(f"load before: {os.getloadavg()}")
        print("Each round brackets the farm between two bare loops (B F B): drift cancels.")
        print("round  bare p50 ms  farm p50 ms  bare p50 ms  ratio  farm n  stable")
        ratios = []
        for r in range(args.rounds):
            before = percentile(bare_loop(session.ort_session, feed, 3, 0.6), 50)
            m = measure(run_once, 1, contract)
            after = percentile(bare_loop(session.ort_session, feed, 3, 0.6), 50)
            ratios.append(m.p50_ms / ((before + after) / 2))
            print(
                f"{r + 1:>5} {before:>12.3f} {m.p50_ms:>12.3f} {after:>12.3f} "
                f"{ratios[-1]:>6.3f} {m.n_samples:>7}  {m.stable}"
            )
    print(f"load after: {os.getloadavg()}")
    loop_cost = _loop_overhead_ns()
    ratio = statistics.median(ratios)
    print(
        f"median ratio farm/bare p50 over {args.rounds} rounds: {ratio:.4f} "
        f"(target <= {TARGET_RATIO})"
    )
    print(
        "harness cost per query outside the model (no-op query, mean loop iteration): "
        f"farm {loop_cost[0]:.0f} ns, bare {loop_cost[1]:.0f} ns"
    )
    print("PASS" if ratio <= TARGET_RATIO else "FAIL")


def _loop_overhead_ns() -> tuple[float, float]:
    """Mean time per iteration of the harness and of a bare loop around a no-op query."""

    def noop() -> None:
        return None

    m = measure(noop, 1, Contract(warmup_s=0.05, min_duration_s=0.3, max_duration_s=0.6))
    farm = m.duration_s / m.n_samples * 1e9
    samples = []
    perf_counter = time.perf_counter
    t_start = perf_counter()
    for _ in range(m.n_samples):
        t0 = perf_counter()
        noop()
        t1 = perf_counter()
        samples.append(t1 - t0)
    bare = (perf_counter() - t_start) / m.n_samples * 1e9
    return farm, bare


if __name__ == "__main__":
    main()
