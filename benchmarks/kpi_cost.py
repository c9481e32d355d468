"""What the release KPIs cost: a trial's evaluation time with and without robustness.

The digits CNN (fp32 ONNX and ORT int8), evaluated on cpu-onnxruntime through the farm's own
evaluate step (`farm.engine.CandidateRunner.evaluate` in this process: compile, quality on the
eval split, KPIs, measurement), alternating "without" and "with" `[evaluation] robustness =
true` (21 corrupted copies of the eval split) so that drift hits both alike. Calibration,
slices and the operating point are on in both runs (they cost next to nothing). Prints the
evaluate time (`eval_s`) and the whole trial time of each, their ratio, and the drift between
the rounds.

    .venv/bin/python benchmarks/kpi_cost.py [--rounds 3] [--batch 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import optimizers
from farm.engine import CandidateRunner, reference_predictions
from farm.search.candidate import Candidate
from targets.base import RuntimeOptions
from workloads import load_workload
from workloads.kpis.compute import with_kpi_data
from workloads.kpis.spec import parse_evaluation

CONTRACT = {"min_duration_s": 0.5, "max_duration_s": 1.5}
KPIS = {"positive_classes": [8, 9], "target_precision": 0.95}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1, help="the searched batch size")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()}")
    workload = load_workload(
        {"name": "digits", "data": {"slices": "farm/jobs/digits_slices.csv"}}, Path(".")
    )
    plain = parse_evaluation("kpi_cost", KPIS)
    robust = parse_evaluation("kpi_cost", {**KPIS, "robustness": True})
    start = time.perf_counter()
    data = {"without": with_kpi_data(workload.data(), plain, workload.slices_file)}
    data["with"] = with_kpi_data(workload.data(), robust, workload.slices_file)
    print(f"corrupted copies of the eval split made in {time.perf_counter() - start:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        source = workload.source_artifact(Path(tmp))
    reference = reference_predictions(source, data["without"], workload.task)
    ctx = optimizers.BuildContext(data=data["without"], seed=0)
    onnx = optimizers.apply("export_onnx", {}, source, ctx)
    artifacts = {"fp32": onnx, "int8": optimizers.apply("quantize_ort", {}, onnx, ctx)}
    options = RuntimeOptions(threads=1, batch_size=args.batch)
    candidate = Candidate(workload.recipe_hash, "cpu-onnxruntime", (), options)
    runners = {
        kind: CandidateRunner(
            source, data[kind], reference, workload.task, contract=CONTRACT, evaluation=evaluation,
            here=True,
        )
        for kind, evaluation in (("without", plain), ("with", robust))
    }  # fmt: skip
    times: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for r in range(args.rounds):
        for name, artifact in artifacts.items():
            for kind in ("without", "with"):
                t0 = time.perf_counter()
                ev = runners[kind].evaluate(candidate, artifact)
                total = time.perf_counter() - t0
                times.setdefault((name, kind), []).append((ev.eval_s, total))
                print(
                    f"round {r + 1} {name} {kind:<7} robustness: evaluate {ev.eval_s:6.2f} s, "
                    f"trial {total:6.2f} s, robustness={ev.metrics.get('robustness', '—')}"
                )
    print("\nmedian over rounds (drift = max/min of the rounds' 'without' trial times)")
    for name in artifacts:
        base = [t for _, t in times[(name, "without")]]
        ev_without = statistics.median(e for e, _ in times[(name, "without")])
        ev_with = statistics.median(e for e, _ in times[(name, "with")])
        t_without = statistics.median(base)
        t_with = statistics.median(t for _, t in times[(name, "with")])
        print(
            f"{name}: evaluate {ev_without:.2f} s → {ev_with:.2f} s ({ev_with / ev_without:.1f}×); "
            f"trial {t_without:.2f} s → {t_with:.2f} s ({t_with / t_without:.1f}×); "
            f"drift {max(base) / min(base):.2f}"
        )


if __name__ == "__main__":
    main()
