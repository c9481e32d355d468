"""The search-quality benchmark's searches: the real job on the engine (reused when a finished
one matches), the best batch-1 configurations re-measured in turns, and the search strategies
simulated on the stored grid (``--simulate``)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from _sq_figures import FIDELITY_FLOOR, figures
from _sq_grid import Grid, _short

from farm.spec.job import JobSpec
from farm.store.artifacts import ArtifactCache
from farm.store.records import TrialRecord

#: The engine's search as this benchmark last judged it; a stored search job is reused only when
#: it ran with this strategy (its ``jobs.label``).
SEARCH_STRATEGY = "baseline + screening design + sampler"


def run_search(spec: JobSpec, results: Path, artifacts: Path | None = None) -> list[dict[str, Any]]:
    """A real job on the engine; a finished job with the same spec and strategy is reused."""
    from farm.engine.runner import JobRunner
    from farm.store.db import Store

    store = Store(results / "search.duckdb")
    if store.path.exists():
        jobs = store.query(
            "SELECT job_id, name, label, status, spec FROM jobs ORDER BY created_at DESC"
        )
        for job in jobs:
            same = json.loads(job["spec"]) == json.loads(spec.to_json())
            if (
                job["name"] == spec.name
                and job["status"] == "completed"
                and job["label"] == SEARCH_STRATEGY
                and same
            ):
                print(f"  {spec.targets[0]}: reusing search job {job['job_id']}")
                return _search_points(store.trials(job["job_id"]))
    runner = JobRunner(
        spec,
        store,
        cache=ArtifactCache(artifacts or results / "artifacts"),
        models_dir=results / "models",
        label=SEARCH_STRATEGY,
    )
    runner.run()
    print(f"  {spec.targets[0]}: search job {runner.job_id}: {'; '.join(runner.messages)}")
    return _search_points(store.trials(runner.job_id))


def _search_points(trials: list[TrialRecord]) -> list[dict[str, Any]]:
    return [
        {
            "hash": t.candidate_hash,
            "top1_agreement": t.quality,
            "p50_ms": t.latency_p50_ms,
            "p95_ms": t.latency_p95_ms,
            "cost_per_1k_usd": t.cost_per_1k_usd,
            "batch_size": t.batch_size,
        }
        for t in trials
        if t.completed
    ]


# -- the best batch-1 configurations, re-measured in turns ---------------------------------------


def confirm_best(
    grid: Grid, search: list[dict[str, Any]], rounds: int
) -> tuple[float, float] | None:
    """The search's best batch-1 configuration (by its own measurements, what a user would ship)
    against the grid's, re-measured in turns (grid, search, grid, search …; each measurement in a
    fresh process under the job's contract, on the one local node): the median over rounds of
    the p50 ratio search / grid, and the median drift of the grid configuration between
    consecutive rounds. The grid and the search measured their configurations minutes or hours
    apart, and on a shared machine that alone moves a p50 by more than the 5 % judged.
    None when the search has no batch-1 configuration at the fidelity floor."""
    import statistics

    from farm.cluster.lifecycle import alive_nodes
    from farm.measure.bench import query_batch
    from farm.measure.remote import measure_on_node

    def best(points: list[dict[str, Any]], key: str) -> str | None:
        ok = [p for p in points if p["batch_size"] == 1 and p["top1_agreement"] >= FIDELITY_FLOOR]
        return min(ok, key=lambda p: p["p50_ms"])[key] if ok else None

    grid_best = best(
        [{**r, "hash": h} for h, r in grid.records.items() if "error" not in r], "hash"
    )
    search_best = best(search, "hash")
    if grid_best is None or search_best is None:
        return None
    if grid_best == search_best:
        return 1.0, 0.0
    by_hash = {c.content_hash: c for _, c in grid.candidates()}
    batch, _ = query_batch(grid.workload.data().eval, 1)
    node = next(n for n in alive_nodes() if grid.target in n.targets)

    def p50(content_hash: str) -> float:
        cand = by_hash[content_hash]
        artifact = grid.cache.load(cand.build_key()) if cand.chain else None
        if artifact is None:
            raise RuntimeError(f"artifact of {_short(cand.params_dict())} is not in the cache")
        task = grid.workload.task
        ev = measure_on_node(
            node, artifact, grid.target, cand.options, grid.measurement, batch, task
        )
        return float(ev.measurement["p50_ms"])

    pairs = [(p50(grid_best), p50(search_best)) for _ in range(rounds)]
    ratios = [b / a for a, b in pairs]
    drift = [abs(b[0] - a[0]) / a[0] for a, b in itertools.pairwise(pairs)]
    for (a, b), r in zip(pairs, ratios, strict=True):
        print(f"    grid best {a:.2f} ms, search best {b:.2f} ms: {r:.3f}")
    return statistics.median(ratios), statistics.median(drift) if drift else 0.0


#: Search strategies ``--simulate`` compares: (sampler, whether the study starts with the
#: screening design of ``farm.search.space.initial_points``).
STRATEGIES: dict[str, tuple[str, bool]] = {
    "nsga2": ("nsga2", False),
    "tpe": ("tpe", False),
    "nsga2+screening": ("nsga2", True),
    "tpe+screening": ("tpe", True),
}


def simulate(
    spec: JobSpec, grid: Grid, strategy: str, seed: int, noise: float
) -> list[dict[str, Any]]:
    """One search as the engine runs it (its sampler, its first points, a configuration never
    measured twice, its budget), each trial told the grid's numbers instead of new measurements:
    latency and cost times a seeded log-normal factor of sigma ``noise``, as a re-measurement on
    a noisy machine would scatter them. Returns the grid records of the configurations visited.
    Seconds instead of hours, so strategies are compared over many seeds, not one lucky run."""
    from dataclasses import replace

    import numpy as np
    import optuna

    from farm.engine.studies import DUPLICATE_ASKS
    from farm.search.sampler import make_sampler
    from farm.search.space import baseline_params, initial_points, plan

    sampler, screening = STRATEGIES[strategy]
    run_spec = replace(spec, search=replace(spec.search, sampler=sampler, seed=seed))
    study = optuna.create_study(
        directions=["maximize", "minimize", "minimize"],
        sampler=make_sampler(run_spec.search, seed),
    )
    budget = min(spec.search.trials_per_target, grid.size)
    first = (
        initial_points(grid.space, grid.target, budget)
        if screening
        else [baseline_params(grid.space)]
    )
    for point in first:
        study.enqueue_trial(point)
    rng = np.random.default_rng(seed)
    seen: set[str] = set()
    visited: list[dict[str, Any]] = []
    while len(seen) < min(spec.search.trials_per_target, grid.size):
        for _ in range(DUPLICATE_ASKS):
            trial = study.ask(grid.space)
            cand = plan(spec, grid.target, trial.params, grid.workload.recipe_hash)
            if cand.content_hash not in seen:
                break
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            break  # the engine stops a study whose sampler only proposes measured points
        seen.add(cand.content_hash)
        record = grid.records.get(cand.content_hash)
        if record is None or "error" in record:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue
        factor = float(np.exp(noise * rng.standard_normal()))
        values = [record["top1_agreement"], record["p95_ms"] * factor]
        study.tell(trial, [*values, record["cost_per_1k_usd"] * factor])
        visited.append({**record, "hash": cand.content_hash})
    return visited


def compare_strategies(
    spec: JobSpec, grid: Grid, seeds: int, noises: list[float]
) -> list[tuple[str, float, list[dict[str, Any]]]]:
    """Every strategy of STRATEGIES over ``seeds`` seeds at each noise level: the figures."""
    points = grid.points()
    by_hash = {h: r for h, r in grid.records.items() if "error" not in r}
    out = []
    for noise in noises:
        for strategy in STRATEGIES:
            runs = [
                figures(points, by_hash, simulate(spec, grid, strategy, seed, noise))
                for seed in range(seeds)
            ]
            out.append((strategy, noise, runs))
    return out


def print_strategies(target: str, rows: list[tuple[str, float, list[dict[str, Any]]]]) -> None:
    print(f"\n{target}: simulated searches on the grid (re-scored figures; one line per strategy)")
    print(
        "  strategy          noise  (a) latency ratio: median  worst  <=1.05   "
        "(b) hypervolume: median  worst  >=0.95"
    )
    for strategy, noise, runs in rows:
        lat = sorted(r["rescored_latency_ratio"] or float("inf") for r in runs)
        hv = sorted(r["rescored_hv_ratio"] for r in runs)
        ok_lat = sum(x <= 1.05 for x in lat)
        ok_hv = sum(x >= 0.95 for x in hv)
        print(
            f"  {strategy:<17} {noise:>5.2f}  {lat[len(lat) // 2]:>24.3f} {lat[-1]:>6.3f} "
            f"{ok_lat:>4}/{len(lat):<4} {hv[len(hv) // 2]:>24.3f} {hv[0]:>6.3f} "
            f"{ok_hv:>4}/{len(hv)}"
        )
