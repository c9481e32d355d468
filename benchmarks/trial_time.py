"""Where a trial's time goes: the breakdown of one ResNet-18 job.

The job: torchvision ResNet-18 (random weights), seeded synthetic inputs (quality = top-1
fidelity to the fp32 reference), ``cpu-torch`` + ``cpu-onnxruntime`` + ``cpu-openvino``,
precision fp32 / bf16 / int8 with every quantizer knob, batch 1, 10 trials per target, the
default measurement contract. It runs on the engine (``JobRunner``) with a *fresh* store,
artifact cache and node cache, so every build is paid for as in a first job.

Per trial (the store's columns): build, compile, quality evaluation (incl. KPIs), measurement,
and the trial's wall time from ask to record (``trial_s``); orchestration is everything else
(Ray scheduling, worker start-up, moving data, waiting for a node, the driver). For stores
written before ``trial_s`` existed it is taken from ``finished_at - started_at``.

Each run writes ``<out>/<label>.json``. ``--compare OTHER`` then prints the median trial time
ratio, and checks the numbers: on the configurations both runs measured, every quality metric
must be identical, and latency is compared as a ratio of p50s (the machine's noise is printed
with it: the load average).

    .venv/bin/python benchmarks/trial_time.py --label before
    .venv/bin/python benchmarks/trial_time.py --label after --compare results/trial_time/before.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from farm.spec.job import JobSpec, parse_job  # noqa: E402

if TYPE_CHECKING:
    from farm.store.db import Store
    from farm.store.records import TrialRecord

TARGETS = ("cpu-torch", "cpu-onnxruntime", "cpu-openvino")
PARTS = ("build_s", "compile_s", "eval_s", "measure_s")
#: Target of the issue: orchestration at most this share of trial time.
ORCHESTRATION_SHARE = 0.05


def job_spec(trials: int, threads: list[int]) -> JobSpec:
    raw = {
        "name": "trial-time-resnet18",
        "targets": list(TARGETS),
        "workload": {"model": "resnet18", "data": {"synthetic_samples": 64}},
        "search": {
            "trials_per_target": trials,
            "sampler": "nsga2",
            "seed": 0,
            "precision": ["fp32", "bf16", "int8"],
            "batch_size": [1],
            "threads": threads,
        },
    }
    return parse_job(raw, source="benchmarks/trial_time.py")


def run_job(
    spec: JobSpec, work: Path, models: Path, replay: list[dict[str, Any]] | None = None
) -> tuple[str, Any, float]:
    """Run the job into a fresh store and cache under ``work``; returns (job id, store, wall).
    With ``replay`` (an earlier run's rows) each study measures exactly those configurations."""
    from farm.cluster.lifecycle import start_or_connect
    from farm.engine.runner import JobRunner
    from farm.store.artifacts import ArtifactCache
    from farm.store.db import Store

    start_or_connect(None)
    store = Store(work / "farm.duckdb")
    runner = JobRunner(
        spec, store, cache=ArtifactCache(work / "artifacts"), models_dir=models, progress=_progress
    )
    t0 = time.perf_counter()
    runner.prepare()
    if replay is not None:
        replay_configurations(runner, replay)
    runner.run(prepared=True)
    wall = time.perf_counter() - t0
    for message in runner.messages:
        print(f"  {message}")
    return runner.job_id, store, wall


def replay_configurations(runner: Any, rows: list[dict[str, Any]]) -> None:
    """Give each study a fresh Optuna study that asks the configurations of ``rows`` (an
    earlier run of this benchmark) in their order, and nothing else: two versions of the farm
    are then timed on the same trials, whatever their samplers would have proposed."""
    import optuna

    from farm.search.sampler import make_sampler

    for i, (target, s) in enumerate(runner.studies.items()):
        s.optuna = optuna.create_study(
            directions=["maximize", "minimize", "minimize"],
            sampler=make_sampler(runner.spec.search, runner.spec.search.seed + i),
        )
        mine = sorted((r for r in rows if r["target"] == target), key=lambda r: r["trial_number"])
        for r in mine:
            s.optuna.enqueue_trial({k: v for k, v in r["params_full"].items() if k in s.space})
        s.budget = len(mine)


def _progress(record: TrialRecord) -> None:
    """The engine's per-trial callback."""
    took = record.trial_s or 0.0
    what = record.error or f"p50 {record.latency_p50_ms or 0:.2f} ms"
    print(
        f"  {record.target:<16} #{record.trial_number:<2} {took:6.1f}s  "
        f"{_short(record.params)}  {what}"
    )


def _short(params: Mapping[str, Any]) -> str:
    skip = {"batch_size", "calib_size", "subset_size"}
    return " ".join(
        f"{k.split('.')[-1]}={v}" for k, v in sorted(params.items()) if k.split(".")[-1] not in skip
    )


def breakdown(store: Store, job_id: str) -> list[dict[str, Any]]:
    """One dict per trial: the parts, the trial time, orchestration, quality and latency."""
    out = []
    for t in store.trials(job_id):
        trial_s = t.trial_s
        if trial_s is None:
            assert t.finished_at is not None and t.started_at is not None
            trial_s = (t.finished_at - t.started_at).total_seconds()
        parts = {p: float(getattr(t, p) or 0.0) for p in PARTS}
        orchestration = t.orchestration_s
        if orchestration is None:
            orchestration = trial_s - sum(parts.values())
        out.append(
            {
                "target": t.target,
                "trial_number": t.trial_number,
                "candidate_hash": t.candidate_hash,
                "params": _short(t.params),
                "params_full": dict(t.params),
                "status": t.status,
                "cache_hit": t.cache_hit,
                **parts,
                "trial_s": float(trial_s),
                "orchestration_s": float(orchestration),
                "p50_ms": t.latency_p50_ms,
                "metrics": dict(t.metrics),
            }
        )
    return out


def print_breakdown(rows: list[dict[str, Any]], wall: float) -> dict[str, float]:
    print("\ntarget           #   build  compile  eval  measure  orchestr  trial   params")
    for r in rows:
        print(
            f"{r['target']:<16} {r['trial_number']:<2} {r['build_s']:6.1f} {r['compile_s']:8.1f}"
            f" {r['eval_s']:5.1f} {r['measure_s']:8.1f} {r['orchestration_s']:9.1f}"
            f" {r['trial_s']:6.1f}   {r['params']}"
        )
    trial_times = [r["trial_s"] for r in rows]
    total = sum(trial_times)
    summary = {
        "trials": float(len(rows)),
        "median_trial_s": statistics.median(trial_times),
        "mean_trial_s": total / len(rows),
        "wall_s": wall,
        "wall_per_trial_s": wall / len(rows),
        "orchestration_share": sum(r["orchestration_s"] for r in rows) / total,
        **{f"total_{p}": sum(r[p] for r in rows) for p in (*PARTS, "orchestration_s")},
    }
    print(
        f"\n{len(rows)} trials; job wall {wall:.0f}s ({summary['wall_per_trial_s']:.1f}s per "
        f"trial); median trial {summary['median_trial_s']:.1f}s, mean "
        f"{summary['mean_trial_s']:.1f}s"
    )
    shares = ", ".join(
        f"{p.removesuffix('_s')} {summary[f'total_{p}'] / total:.1%}"
        for p in (*PARTS, "orchestration_s")
    )
    print(f"share of trial time: {shares} (target: orchestration <= {ORCHESTRATION_SHARE:.0%})")
    return summary


def compare(now: dict[str, Any], before: dict[str, Any]) -> bool:
    """Print the speed-up and check the numbers; True when quality is identical."""
    ratio = now["summary"]["median_trial_s"] / before["summary"]["median_trial_s"]
    wall = now["summary"]["wall_per_trial_s"] / before["summary"]["wall_per_trial_s"]
    print(
        f"\nmedian trial time {before['summary']['median_trial_s']:.1f}s -> "
        f"{now['summary']['median_trial_s']:.1f}s: ratio {ratio:.3f} (target <= 0.5); "
        f"job wall per trial ratio {wall:.3f}"
    )
    old = {
        (r["target"], r["candidate_hash"]): r for r in before["rows"] if r["status"] == "completed"
    }
    common = [
        (r, old[(r["target"], r["candidate_hash"])])
        for r in now["rows"]
        if r["status"] == "completed" and (r["target"], r["candidate_hash"]) in old
    ]
    differ = [
        f"{r['target']} {r['params']}: {_diff(r['metrics'], o['metrics'])}"
        for r, o in common
        if r["metrics"] != o["metrics"]
    ]
    print(
        f"configurations measured by both runs: {len(common)}; quality identical on "
        f"{len(common) - len(differ)}"
    )
    for d in differ:
        print(f"  DIFFERS {d}")
    latency = [r["p50_ms"] / o["p50_ms"] for r, o in common]
    if latency:
        print(
            f"p50 ratio now/before on those: median {statistics.median(latency):.3f}, range "
            f"{min(latency):.3f}-{max(latency):.3f} (load before {before['load']}, now "
            f"{now['load']})"
        )
    return not differ


def _diff(a: dict[str, float], b: dict[str, float]) -> str:
    keys = sorted(set(a) | set(b))
    return ", ".join(f"{k} {b.get(k)} -> {a.get(k)}" for k in keys if a.get(k) != b.get(k))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10, help="trials per target (10)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1], help="searched threads")
    parser.add_argument("--label", default="run", help="name of this run's JSON file")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "trial_time")
    parser.add_argument("--compare", type=Path, help="an earlier run's JSON to compare with")
    parser.add_argument(
        "--replay", type=Path, help="measure exactly the configurations of an earlier run's JSON"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    spec = job_spec(args.trials, args.threads)
    with tempfile.TemporaryDirectory(prefix="farm-trial-time-") as tmp:
        work = Path(tmp)
        # A fresh node cache (quantization sensitivity rankings) as well: nothing is reused
        # from an earlier run. Set before Ray starts, so its workers inherit it.
        os.environ["FARM_NODE_CACHE"] = str(work / "node-cache")
        # Ray starts its workers at nice 15: on a machine shared with other work they would be
        # timed starving (a 15 ms query measured 7 s). Both runs of a comparison use nice 0.
        os.environ.setdefault("RAY_worker_niceness", "0")
        load_before = os.getloadavg()
        print(f"load before: {load_before}  (cpus: {os.cpu_count()})")
        replay = json.loads(args.replay.read_text())["rows"] if args.replay else None
        job_id, store, wall = run_job(spec, work, args.out / "models", replay)
        rows = breakdown(store, job_id)
    load = tuple(round(x, 1) for x in os.getloadavg())
    print(f"load after: {load}")
    summary = print_breakdown(rows, wall)
    result = {"label": args.label, "job_id": job_id, "load": load, "summary": summary, "rows": rows}
    path = args.out / f"{args.label}.json"
    path.write_text(json.dumps(result, indent=1, default=str))
    print(f"written to {path}")
    if args.compare:
        return 0 if compare(result, json.loads(args.compare.read_text())) else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
