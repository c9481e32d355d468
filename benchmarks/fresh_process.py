"""Does it matter where a measurement runs? The same artifact, measured in a fresh worker and in
the worker that has just built a candidate (what Ray did before builds got their own pool).

For each target (ResNet-18, random weights, 64 synthetic images, batch 1, 1 thread, the default
measurement contract), one int8 artifact is built in the driver first; then, in turns:

* **fresh**: a ``max_calls=1`` Ray task in a new worker evaluates the artifact;
* **after a build**: one Ray task builds the target's int8 candidate (torch, NNCF or ONNX
  Runtime's quantizer, a calibration session, their thread pools) and then evaluates the same
  artifact in that same process, as an evaluation that inherited a build's worker did.

Both run the farm's evaluation in the task's own process (``farm.engine.CandidateRunner`` with
``here=True``: compile, quality, measurement), one at a time on this machine; the order
alternates (fresh first, then after-a-build first, …). Printed: each
measurement's p50 and peak RSS, the medians, and the ratio after-a-build ÷ fresh beside the
spread of the fresh measurements (the machine's own noise)::

    .venv/bin/python benchmarks/fresh_process.py --rounds 4
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: The int8 candidate of each target (the knobs of trial_time's replayed trials).
CANDIDATES = {
    "cpu-openvino": {
        "precision": "int8",
        "quantize_nncf.fast_bias_correction": True,
        "quantize_nncf.keep_float_layers": 0,
        "quantize_nncf.preset": "mixed",
        "quantize_nncf.subset_size": 300,
    },
    "cpu-onnxruntime": {
        "precision": "int8",
        "quantize_ort.activation_type": "S8",
        "quantize_ort.calib_size": 0,
        "quantize_ort.calibration_method": "MinMax",
        "quantize_ort.keep_float_layers": 0,
    },
}


def evaluate_here(prepared: Any, candidate: Any, artifact: Any, build: bool) -> dict[str, float]:
    """Evaluate ``artifact`` in this process; first build ``candidate`` here when ``build``."""
    from farm.engine import CandidateRunner
    from farm.measure.node import check_fresh_process

    runner = CandidateRunner(
        prepared.source,
        prepared.data,
        prepared.reference,
        prepared.task,
        contract=prepared.spec.measurement,
        here=True,
    )
    if build:
        runner.build(candidate)
    else:
        check_fresh_process()
    ev = runner.evaluate(candidate, artifact)
    return {"p50_ms": ev.measurement["p50_ms"], "peak_rss_mb": ev.peak_rss_mb}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--targets", default=",".join(CANDIDATES))
    args = parser.parse_args()

    import ray

    from farm.cluster.lifecycle import start_or_connect
    from farm.engine import CandidateRunner, JobRunner
    from farm.spec.job import parse_job
    from farm.store.artifacts import ArtifactCache
    from farm.store.db import Store

    tmp = Path(tempfile.mkdtemp(prefix="farm-fresh-"))
    os.environ.setdefault("FARM_NODE_CACHE", str(tmp / "node-cache"))
    os.environ.setdefault("RAY_worker_niceness", "0")  # as the other benchmarks (measurement.md)
    start_or_connect(None)
    targets = args.targets.split(",")
    spec = parse_job(
        {
            "name": "fresh-process",
            "targets": targets,
            "workload": {"model": "resnet18", "data": {"synthetic_samples": 64}},
            "search": {
                "trials_per_target": 1,
                "precision": ["fp32", "int8"],
                "batch_size": [1],
                "threads": [1],
            },
        },
        source="benchmarks/fresh_process.py",
    )
    runner = JobRunner(
        spec,
        Store(tmp / "farm.duckdb"),
        cache=ArtifactCache(tmp / "artifacts"),
        models_dir=ROOT / "results" / "trial_time" / "models",
    )
    prepared = runner.prepare()
    here = CandidateRunner(
        prepared.source, prepared.data, prepared.reference, prepared.task, here=True
    )
    fresh = ray.remote(num_cpus=1, max_calls=1, max_retries=0)(evaluate_here)
    after_build = ray.remote(num_cpus=1, max_calls=1, max_retries=0)(evaluate_here)
    print(f"load before: {os.getloadavg()}")
    for target in targets:
        params = {**CANDIDATES[target], "batch_size": 1, "threads": 1}
        candidate = prepared.plan(target, params)
        artifact = ray.put(here.build(candidate)[0])
        results: dict[str, list[dict[str, float]]] = {"fresh": [], "after a build": []}
        for i in range(args.rounds):
            order = ["fresh", "after a build"] if i % 2 == 0 else ["after a build", "fresh"]
            for kind in order:
                start = time.perf_counter()
                if kind == "fresh":
                    out = ray.get(fresh.remote(prepared, candidate, artifact, False))
                else:
                    out = ray.get(after_build.remote(prepared, candidate, artifact, True))
                results[kind].append(out)
                print(
                    f"{target} round {i + 1} {kind:>13}: p50 {out['p50_ms']:7.3f} ms, peak RSS "
                    f"{out['peak_rss_mb']:6.0f} MB ({time.perf_counter() - start:.0f} s)",
                    flush=True,
                )
        med = {k: statistics.median(r["p50_ms"] for r in v) for k, v in results.items()}
        rss = {k: statistics.median(r["peak_rss_mb"] for r in v) for k, v in results.items()}
        spread = [r["p50_ms"] for r in results["fresh"]]
        print(
            f"{target}: median p50 fresh {med['fresh']:.3f} ms, after a build "
            f"{med['after a build']:.3f} ms: ratio {med['after a build'] / med['fresh']:.3f} "
            f"(fresh measurements spread {min(spread):.3f}-{max(spread):.3f} ms); median peak "
            f"RSS {rss['fresh']:.0f} MB fresh, {rss['after a build']:.0f} MB after a build\n"
        )
    print(f"load after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
