"""The search-quality benchmark's space and its grid: the two modes (full, quick), the job each
target's search runs, and every distinct candidate of that space built and measured once.

Imported by ``search_quality.py`` (``python benchmarks/search_quality.py`` puts this folder on
the path, and puts the repository first on it before this module imports the farm).
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from farm.search.candidate import Candidate
from farm.spec.job import JobSpec, parse_job
from farm.store import fronts as pareto
from farm.store.artifacts import ArtifactCache

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mode:
    name: str
    samples: int  # synthetic eval (and calibration) inputs
    trials: int  # search trials per target
    batch: list[int]
    threads: list[int]
    knobs: dict[str, dict[str, list[Any]]]  # per target
    precision: dict[str, list[str]]
    measurement: dict[str, Any]


FULL = Mode(
    name="full",
    samples=64,
    trials=30,
    batch=[1, 2, 4, 8],
    threads=[1, 2],
    precision={"cpu-onnxruntime": ["fp32", "int8"], "cpu-openvino": ["fp32", "bf16", "int8"]},
    knobs={
        # (1 fp32 + 3 x 2 x 4 int8) x 4 batches x 2 threads = 200 configurations. ORT's
        # execution mode is left out: "parallel" only helps graphs with parallel branches, and
        # it would double a grid that already takes most of an hour on 2 cores.
        "cpu-onnxruntime": {
            "quantize_ort.calibration_method": ["MinMax", "Entropy", "Percentile"],
            "quantize_ort.activation_type": ["U8", "S8"],
            "quantize_ort.keep_float_layers": [0, 1, 2, 4],
        },
        # (fp32 + bf16 + 2 x 2 x 4 int8) x 4 batches x 2 threads x 2 hints = 288 configurations
        "cpu-openvino": {
            "quantize_nncf.preset": ["performance", "mixed"],
            "quantize_nncf.fast_bias_correction": [True, False],
            "quantize_nncf.keep_float_layers": [0, 1, 2, 4],
            "runtime.performance_hint": ["LATENCY", "THROUGHPUT"],
        },
    },
    measurement={"min_duration_s": 0.5, "max_duration_s": 2.0, "min_samples": 32},
)

QUICK = Mode(
    name="quick",
    samples=16,
    trials=5,
    batch=[1, 4],
    threads=[2],
    precision={"cpu-onnxruntime": ["fp32", "int8"], "cpu-openvino": ["fp32", "bf16", "int8"]},
    knobs={
        "cpu-onnxruntime": {
            "quantize_ort.calibration_method": ["MinMax"],
            "quantize_ort.activation_type": ["S8"],
            "quantize_ort.keep_float_layers": [0, 1],
            "runtime.execution_mode": ["sequential"],
        },
        "cpu-openvino": {
            "quantize_nncf.preset": ["performance"],
            "quantize_nncf.fast_bias_correction": [True],
            "quantize_nncf.keep_float_layers": [0, 1],
            "runtime.performance_hint": ["LATENCY"],
        },
    },
    measurement={"min_duration_s": 0.2, "max_duration_s": 0.6, "min_samples": 16},
)


def job_spec(mode: Mode, target: str) -> JobSpec:
    raw = {
        "name": f"search-quality-{mode.name}-{target}",
        "targets": [target],
        "workload": {"model": "resnet18", "data": {"synthetic_samples": mode.samples}},
        "search": {
            "trials_per_target": mode.trials,
            "sampler": "nsga2",
            "seed": 0,
            "precision": mode.precision[target],
            "batch_size": mode.batch,
            "threads": mode.threads,
            "knobs": mode.knobs[target],
        },
        "measurement": mode.measurement,
    }
    return parse_job(raw, source="benchmarks/search_quality.py")


class Grid:
    """Every distinct candidate of one target's space, built and measured once, cached in JSON."""

    def __init__(
        self,
        spec: JobSpec,
        target: str,
        out: Path,
        results: Path,
        shard: tuple[int, int] | None = None,
        artifacts: Path | None = None,
    ) -> None:
        """``shard`` (i, n): measure only every n-th configuration still to do, from the i-th,
        into a file of its own, so that n processes share a grid (every run reads them all)."""
        from workloads import load_workload

        self.spec, self.target, self.shard = spec, target, shard
        self.path = out if shard is None else out.with_suffix(f".shard-{shard[0]}.json")
        # ``artifacts``: the build cache (default ``<results>/artifacts``); a fresh results
        # directory can share an earlier run's builds and measure everything afresh
        self.cache = ArtifactCache(artifacts or results / "artifacts")
        self.models = results / "models"
        self.workload = load_workload(spec.workload, ROOT)
        self._runner: Any = None
        self.records: dict[str, dict[str, Any]] = {}
        for path in [out, *sorted(out.parent.glob(f"{out.stem}.shard-*.json"))]:
            if path.exists():
                self.records.update(json.loads(path.read_text()))

    def candidates(self) -> list[tuple[dict[str, Any], Candidate]]:
        from farm.search.space import plan, target_space

        space = target_space(self.spec, self.target, max(self.spec.search.threads))
        self.space = space
        keys = list(space)
        seen: dict[str, tuple[dict[str, Any], Candidate]] = {}
        for values in itertools.product(*(getattr(space[k], "choices", ()) for k in keys)):
            params = dict(zip(keys, values, strict=True))
            cand = plan(self.spec, self.target, params, self.workload.recipe_hash)
            seen.setdefault(cand.content_hash, (params, cand))
        return list(seen.values())

    def run(self, batches: list[int] | None = None) -> list[dict[str, Any]]:
        """Measure what is left (only the configurations of ``batches`` when given)."""
        candidates = self.candidates()
        current = {c.content_hash for _, c in candidates}
        todo = [(p, c) for p, c in candidates if c.content_hash not in self.records]
        if batches:
            todo = [(p, c) for p, c in todo if c.options.batch_size in batches]
        # batch 1 first: figure (a) needs only those, so a grid cut short still gives it
        todo.sort(key=lambda pc: pc[1].options.batch_size != 1)
        if self.shard is not None:
            todo = todo[self.shard[0] :: self.shard[1]]
        total = self.size = len(current)  # records of an earlier space are ignored
        print(f"  {self.target}: grid of {total} configurations, {len(todo)} still to measure")
        for i, (_params, cand) in enumerate(todo, 1):
            start = time.perf_counter()
            try:
                # the farm's own build (cached by build key) and evaluate task: a fresh worker
                # process per configuration, granted ``threads`` CPUs. (In one long-lived
                # process, OpenVINO's thread pool keeps the CPU mask of its first use, so later
                # 2-thread configurations would run on one core.)
                result = self.runner().run(cand)
                record = self._record(result.evaluation)
                record["build_s"] = result.build_s
            except Exception as exc:  # a failing configuration is a result too
                record = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            record.update(params=cand.params_dict(), batch_size=cand.options.batch_size)
            self.records[cand.content_hash] = record
            self._save()
            took = time.perf_counter() - start
            print(
                f"    [{i}/{len(todo)}] {_short(cand.params_dict())} {_result(record)} {took:.1f}s"
            )
        return [r for h, r in self.records.items() if h in current and "error" not in r]

    def runner(self) -> Any:
        """What builds and evaluates the grid's candidates (``farm.engine.CandidateRunner``)."""
        from farm.engine import CandidateRunner, reference_predictions

        if self._runner is None:
            data = self.workload.data()
            source = self.workload.source_artifact(self.models)
            task = self.workload.task
            self._runner = CandidateRunner(
                source,
                data,
                reference_predictions(source, data, task),
                task,
                contract=self.measurement,
                seed=self.spec.search.seed,
                cache=self.cache,
            )
        return self._runner

    def _record(self, ev: Any) -> dict[str, Any]:
        m = ev.measurement
        price = self.spec.price_per_hour(self.target)
        return {
            "top1_agreement": ev.metrics["top1_agreement"],
            "max_abs_logit_diff": ev.metrics["max_abs_logit_diff"],
            "p50_ms": m["p50_ms"],
            "p95_ms": m["p95_ms"],
            "throughput_ips": m["throughput_ips"],
            "cost_per_1k_usd": pareto.cost_per_1k(price, m["throughput_ips"]),
            "precision_actual": ev.precision_actual,
            "stable": m["stable"],
        }

    def points(self) -> list[dict[str, Any]]:
        """The measured configurations of the current space (no measuring)."""
        current = {c.content_hash for _, c in self.candidates()}
        self.size = len(current)
        return [r for h, r in self.records.items() if h in current and "error" not in r]

    @property
    def measurement(self) -> dict[str, Any]:
        return dict(self.spec.measurement)

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.records, indent=1, sort_keys=True))
        tmp.replace(self.path)


def _short(params: dict[str, Any]) -> str:
    return " ".join(f"{k.split('.')[-1]}={v}" for k, v in params.items())


def _result(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"FAILED {r['error'][:80]}"
    return f"fid={r['top1_agreement']:.3f} p50={r['p50_ms']:.2f}ms"
