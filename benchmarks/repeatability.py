"""Repeatability: the same measurement five times; coefficient of variation of p50 (target <= 3 %).

ResNet-18 (random weights) on ONNX Runtime, batch 1, 2 threads, the default contract. Prints
the machine's load average too: on a shared machine, a bad figure with a high load says "noisy
neighbours", not "bad harness".

    .venv/bin/python benchmarks/repeatability.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

import numpy as np
from harness_overhead import ort_session, resnet18_onnx

from farm.measure import Contract, measure
from farm.measure.affinity import pin_to_cores

TARGET_CV = 0.03


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-pin", action="store_true", help="let the OS place the threads")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        model = resnet18_onnx(tmp_path)
        pinned = None if args.no_pin else pin_to_cores(2)  # before ORT creates its threads
        print(f"pinned to CPUs {pinned}" if pinned else "not pinned")
        session = ort_session(model, tmp_path / "work")
        x = np.random.default_rng(0).standard_normal((1, 3, 224, 224), dtype=np.float32)
        run = session.run

        def run_once() -> None:
            run(x)

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
        session.close()
    cv = statistics.stdev(p50s) / statistics.mean(p50s)
    print(f"load after: {os.getloadavg()}  (cpus: {os.cpu_count()})")
    print(f"CV of p50 over {args.repeats} runs: {cv:.2%} (target <= {TARGET_CV:.0%})")
    print("PASS" if cv <= TARGET_CV else "FAIL")


if __name__ == "__main__":
    main()
