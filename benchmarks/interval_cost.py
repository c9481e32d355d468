"""What the paired intervals cost: the share of a trial's evaluation time they add, per task.

For each embedded demo (digits: classification; shapes-detect: detection, COCO mAP;
shapes-segment: segmentation, mIoU; digits as a generic model: output cosine), its fp32 and
ORT int8 ONNX models are evaluated on cpu-onnxruntime through the farm's own evaluate step
(compile, predictions and quality of the whole eval split, per-image evidence), then the int8
candidate is compared with fp32 image by image (seeded paired bootstrap, 1000 resamples, flips,
McNemar) exactly as a job records it: the baseline's resamples are drawn once per target (every
candidate uses the same seeded resamples), each candidate's per trial; then its KPIs
(``farm.evidence.kpis.compare_kpis``: per-class accuracy, Brier and NLL terms, slices where
the job has them). Prints, per task, the evaluation time (``eval_s``, which includes computing
the evidence), the primary metric's comparison time per candidate, the KPIs', the share of
``eval_s`` of both together (the target is at most 10 %), and the baseline's one-off.

    .venv/bin/python benchmarks/interval_cost.py [--rounds 3] [--resamples 1000]
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
from farm.evidence import EvidenceSettings, compare
from farm.evidence.kpis import compare_kpis
from farm.evidence.paired import resampled
from farm.evidence.words import describe
from farm.search.candidate import Candidate
from targets.base import RuntimeOptions
from workloads import load_workload

CONTRACT = {"min_duration_s": 0.2, "max_duration_s": 0.4, "min_samples": 16}
DEMOS = {
    "classification (digits)": {"name": "digits"},
    "detection (shapes-detect)": {"name": "shapes-detect"},
    "segmentation (shapes-segment)": {"name": "shapes-segment"},
}


def measure(label: str, section: dict[str, object], rounds: int, resamples: int) -> None:
    # the demos' data and trained models are kept between runs (first use trains them)
    results = Path(tempfile.gettempdir()) / "farm-interval-cost"
    workload = load_workload(section, Path("."), results)
    data, task = workload.data(), workload.task
    source = workload.source_artifact(results / "models")
    reference = reference_predictions(source, data, task)
    ctx = optimizers.BuildContext(data=data, seed=0)
    onnx = optimizers.apply("export_onnx", {}, source, ctx)
    int8 = optimizers.apply("quantize_ort", {}, onnx, ctx)
    candidate = Candidate(workload.recipe_hash, "cpu-onnxruntime", (), RuntimeOptions(threads=1))
    runner = CandidateRunner(source, data, reference, task, contract=CONTRACT, here=True)
    metric = task.primary_metric(data.has_labels)
    settings = EvidenceSettings(resamples=resamples)
    eval_s, compare_s, kpi_s = [], [], []
    base = runner.evaluate(candidate, onnx)
    assert base.evidence is not None
    start = time.perf_counter()  # once per target and job: the baseline's resamples
    draws = resampled(task, base.evidence, settings)
    once = time.perf_counter() - start
    for _ in range(rounds):
        cand = runner.evaluate(candidate, int8)
        assert cand.evidence is not None
        start = time.perf_counter()
        c = compare(task, base.evidence, cand.evidence, metric=metric, higher_is_better=True,
                    settings=settings, baseline_draws=draws)  # fmt: skip
        compare_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        kpis = compare_kpis(task, base.evidence, cand.evidence, higher_is_better=True,
                            class_names=data.class_names, settings=settings)  # fmt: skip
        kpi_s.append(time.perf_counter() - start)
        eval_s.append(cand.eval_s)
    e, s, k = (statistics.median(v) for v in (eval_s, compare_s, kpi_s))
    print(
        f"{label:<32} {len(data.eval):>5} images  evaluate {e:7.3f} s  interval {s:6.3f} s  "
        f"KPIs {k:6.3f} s ({len(kpis)})  share {(s + k) / e:6.1%}  (baseline's resamples, once "
        f"per target: {once:.3f} s)   {describe(c, 'int8')}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--only", help="a substring of the task label to run alone")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()}; medians over {args.rounds} rounds")
    for label, section in DEMOS.items():
        if args.only is None or args.only in label:
            measure(label, section, args.rounds, args.resamples)


if __name__ == "__main__":
    main()
