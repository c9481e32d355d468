"""Repeatability: the same measurement five times; coefficient of variation of p50 (target <= 3 %).

ResNet-18 (random weights) on ONNX Runtime, batch 1, 2 threads (``--threads``), the default
contract. Prints
the machine's load average too: on a shared machine, a bad figure with a high load says "noisy
neighbours", not "bad harness".

    .venv/bin/python benchmarks/repeatability.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics

from _common import query, resnet18_session

from farm.measure import Contract, measure

TARGET_CV = 0.03


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="runtime threads (default 2)")
    parser.add_argument("--no-pin", action="store_true", help="let the OS place the threads")
    args = parser.parse_args()

    with resnet18_session(pin=not args.no_pin, threads=args.threads) as (session, x):
        print(f"threads: {args.threads}")
        run_once = query(session, x)
        print(f"load before: {os.getloadavg()}")
        print("run   p50 ms   p99 ms   n     cv      stable  load(1 min)")
        p50s = []
        for i in range(args.repeats):
            m = measure(run_once, 1, Contract())
            p50s.append(m.p50_ms)
            print(
                f"{i + 1:>3} {m.p50_ms:>8.3f} {m.p99_ms:>8.3f} {m.n_samples:>5} {m.cv:>6.1%}  "
                f"{m.stable!s:<6}  {os.getloadavg()[0]:.2f}"
            )
    cv = statistics.stdev(p50s) / statistics.mean(p50s)
    print(f"load after: {os.getloadavg()}  (cpus: {os.cpu_count()})")
    print(f"CV of p50 over {args.repeats} runs: {cv:.2%} (target <= {TARGET_CV:.0%})")
    print("PASS" if cv <= TARGET_CV else "FAIL")


if __name__ == "__main__":
    main()
