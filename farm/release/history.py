"""Release history: the jobs of one name over time, and where each target's numbers changed.

For each job of a name (oldest first: nightly runs, or one per commit with ``farm run --label
SHA``), per target, one configuration is followed: the one ``farm recommend`` picks under a budget
when one is given, else the target's unoptimized baseline (fp32, batch 1, which is the same
configuration in every job). Its p95 latency, cost per 1k inferences and quality are the history.

Change points are found with the gate's own test (:func:`farm.release.significance.compare`) on the
raw
latency samples the store keeps, each job against the previous job that has a point for the
target: a step is a median change larger than the threshold that the one-sided Mann-Whitney U
test finds significant, in either direction (``slower`` / ``faster``); quality moves by more than
the gate's accuracy tolerance (``quality drop`` / ``quality gain``). Why not asv's step detection:
asv fits steps to one number per commit because it keeps nothing else; the farm keeps hundreds of
samples per measurement, so each pair of consecutive jobs can be tested on its own, including the
newest job (a step detector needs points after a step to place it), and a flag here means exactly
what a failing ``farm gate`` between those two jobs would mean.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from farm.errors import UsageError
from farm.gate.checks import DEFAULT_ACCURACY_TOLERANCE, IGNORED_ENV_KEYS
from farm.release.budget import Budget
from farm.release.recommend import recommend
from farm.release.significance import DEFAULT_ALPHA, DEFAULT_THRESHOLD, compare
from farm.store.db import Store

METHOD = (
    "each job against the previous one, on the raw latency samples of the followed "
    "configuration: a change is a median shift > {threshold:.0%} with a one-sided Mann-Whitney "
    "p < {alpha:g} (the gate's test); quality: a move > {tolerance:g}"
)


@dataclass(frozen=True)
class Point:
    """One target in one job: the followed configuration and what changed since the last point."""

    job_id: str
    label: str | None
    created_at: datetime
    target: str
    #: None when the job has nothing to follow on this target (no completed baseline, or nothing
    #: meets the budget); the numbers are None then.
    trial_number: int | None
    params: dict[str, Any] = field(default_factory=dict)
    p95_ms: float | None = None
    cost_per_1k_usd: float | None = None
    quality: float | None = None
    quality_metric: str | None = None
    n_samples: int = 0
    #: ``slower``, ``faster``, ``quality drop``, ``quality gain``: the change points here.
    changes: tuple[str, ...] = ()
    #: The comparison with the previous point, in words (or why there was none).
    detail: str = ""
    #: The followed configuration differs from the previous point's (a new recommendation).
    config_changed: bool = False
    note: str = ""

    @property
    def flagged(self) -> bool:
        return bool(self.changes)


@dataclass
class History:
    name: str
    #: "baseline" or "recommended under BUDGET".
    basis: str
    method: str
    #: The jobs, oldest first: job_id, label, created_at, status, commit.
    jobs: list[dict[str, Any]]
    points: list[Point]

    @property
    def targets(self) -> list[str]:
        return sorted({p.target for p in self.points})

    @property
    def changes(self) -> list[Point]:
        return [p for p in self.points if p.flagged]

    def of_target(self, target: str) -> list[Point]:
        return [p for p in self.points if p.target == target]

    def to_dict(self) -> dict[str, Any]:
        def point(p: Point) -> dict[str, Any]:
            d = asdict(p)
            d["created_at"] = p.created_at.isoformat()
            d["changes"] = list(p.changes)
            return d

        return {
            "name": self.name,
            "basis": self.basis,
            "method": self.method,
            "jobs": [{**j, "created_at": j["created_at"].isoformat()} for j in self.jobs],
            "points": [point(p) for p in self.points],
            "changes": [
                {"job_id": p.job_id, "target": p.target, "changes": list(p.changes)}
                for p in self.changes
            ],
        }

    def frame(self) -> Any:
        """The points as a pandas DataFrame (one row per job and target)."""
        import pandas as pd

        rows = [{**asdict(p), "changes": ", ".join(p.changes)} for p in self.points]
        return pd.DataFrame(rows)


def release_history(
    store: Store,
    name: str,
    budget: Budget | None = None,
    *,
    last: int | None = None,
    until: str | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    alpha: float = DEFAULT_ALPHA,
    accuracy_tolerance: float = DEFAULT_ACCURACY_TOLERANCE,
) -> History:
    """The history of the jobs named ``name`` (the last ``last`` of them; none created after job
    ``until``), following the recommended configuration under ``budget`` or the baseline."""
    if last is not None and last < 1:
        raise UsageError(f"--last: expected a positive number of jobs, got {last}")
    jobs = store.query(
        "SELECT job_id, label, created_at, status, spec FROM jobs WHERE name = ? "
        "ORDER BY created_at, job_id",
        [name],
    )
    if not jobs:
        raise UsageError(f"{store.path}: no job is named {name!r} (see `farm jobs`)")
    if until is not None:
        ids = [j["job_id"] for j in jobs]
        if until not in ids:
            raise UsageError(f"{store.path}: job {until!r} is not a job named {name!r}")
        jobs = jobs[: ids.index(until) + 1]
    if last is not None:
        jobs = jobs[-last:]
    commits = _commits(store, [j["job_id"] for j in jobs])
    points: list[Point] = []
    previous: dict[str, tuple[Point, list[float], dict[str, Any], dict[str, Any]]] = {}
    for job in jobs:
        trials = store.trials(job["job_id"])
        targets = json.loads(job["spec"]).get("targets") or sorted({t["target"] for t in trials})
        chosen = _followed(job["job_id"], trials, targets, budget)
        for target in targets:
            row, why = chosen[target]
            if row is None:
                points.append(_empty(job, target, why))
                continue
            samples = store.samples(job["job_id"], target, row["trial_number"])
            env = _environment(store, row.get("env_id"))
            point = _point(job, row, len(samples))
            before = previous.get(target)
            if before is not None:
                point = _compare(point, row, samples, env, before, threshold, alpha)
                point = _quality(point, before[0], accuracy_tolerance)
            points.append(point)
            previous[target] = (point, samples, env, row)
    for j in jobs:
        j["commit"] = commits.get(j["job_id"])
        j.pop("spec", None)
    basis = "baseline" if budget is None else f"recommended under {budget.path}"
    method = METHOD.format(threshold=threshold, alpha=alpha, tolerance=accuracy_tolerance)
    return History(name, basis, method, jobs, points)


def _followed(
    job_id: str, trials: list[dict[str, Any]], targets: list[str], budget: Budget | None
) -> dict[str, tuple[dict[str, Any] | None, str]]:
    """Per target, the trial the history follows in this job, or None and why not."""
    out: dict[str, tuple[dict[str, Any] | None, str]] = {}
    if budget is None:
        for t in targets:
            base = [r for r in trials if r["target"] == t and r["is_baseline"]]
            done = [r for r in base if r["status"] == "completed"]
            out[t] = (done[0], "") if done else (None, "no completed baseline")
        return out
    rec = recommend(job_id, trials, budget, targets)
    for t in targets:
        choice = rec.per_target.get(t)
        if choice is None:
            out[t] = (None, "the budget does not cover this target")
        elif choice.pick is None:
            out[t] = (None, "nothing meets the budget")
        else:
            out[t] = (choice.pick.trial, "")
    return out


def _params(row: dict[str, Any]) -> dict[str, Any]:
    p = row.get("params")
    return json.loads(p) if isinstance(p, str) else dict(p or {})


def _point(job: dict[str, Any], row: dict[str, Any], n_samples: int) -> Point:
    return Point(
        job_id=job["job_id"],
        label=job.get("label"),
        created_at=job["created_at"],
        target=row["target"],
        trial_number=row["trial_number"],
        params=_params(row),
        p95_ms=row.get("latency_p95_ms"),
        cost_per_1k_usd=row.get("cost_per_1k_usd"),
        quality=row.get("accuracy"),
        quality_metric=row.get("quality_metric"),
        n_samples=n_samples,
    )


def _empty(job: dict[str, Any], target: str, why: str) -> Point:
    return Point(job["job_id"], job.get("label"), job["created_at"], target, None, note=why)


def _compare(
    point: Point,
    row: dict[str, Any],
    samples: list[float],
    env: dict[str, Any],
    before: tuple[Point, list[float], dict[str, Any], dict[str, Any]],
    threshold: float,
    alpha: float,
) -> Point:
    """The latency step between the previous point and this one, with what makes it suspect."""
    prev, prev_samples, prev_env, prev_row = before
    notes = []
    config_changed = prev.params != point.params
    if config_changed:
        notes.append("the followed configuration changed")
    env_diff = _diff(prev_env, env)
    if env_diff:
        notes.append(f"the environment changed ({env_diff})")
    if _json(prev_row.get("contract")) != _json(row.get("contract")):
        notes.append("the measurement contract changed")
    if not samples or not prev_samples:
        detail = "no raw latency samples stored on one side; not tested"
        return _with(point, (), detail, config_changed, notes)
    method = _json(row.get("contract")).get("percentile_method", "inverted_cdf")
    slower = compare(prev_samples, samples, threshold, alpha, method=method)
    faster = compare(samples, prev_samples, threshold, alpha, method=method)
    changes: tuple[str, ...] = ()
    if slower.regression:
        changes, detail = ("slower",), slower.describe()
    elif faster.regression:
        changes = ("faster",)
        detail = (
            f"faster: median {slower.baseline_median_ms:.4g} → {slower.candidate_median_ms:.4g} "
            f"ms ({slower.slowdown:+.1%}), Mann-Whitney one-sided p={faster.p_value:.2g}"
        )
    else:
        detail = (
            f"no step: median {slower.baseline_median_ms:.4g} → "
            f"{slower.candidate_median_ms:.4g} ms ({slower.slowdown:+.1%}, p={slower.p_value:.2g} "
            f"slower / {faster.p_value:.2g} faster)"
        )
    return _with(point, changes, detail, config_changed, notes)


def _with(
    point: Point,
    changes: tuple[str, ...],
    detail: str,
    config_changed: bool,
    notes: list[str],
) -> Point:
    return replace(
        point, changes=changes, detail=detail, config_changed=config_changed, note="; ".join(notes)
    )


def _quality(point: Point, prev: Point, tolerance: float) -> Point:
    if point.quality is None or prev.quality is None:
        return point
    move = point.quality - prev.quality
    if move < -tolerance:
        flag = "quality drop"
    elif move > tolerance:
        flag = "quality gain"
    else:
        return point
    detail = f"{point.detail}; quality {prev.quality:.4f} → {point.quality:.4f} ({move:+.4f})"
    return replace(point, changes=(*point.changes, flag), detail=detail)


def _json(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    return json.loads(value) if isinstance(value, str) else dict(value)


def _environment(store: Store, env_id: str | None) -> dict[str, Any]:
    if env_id is None:
        return {}
    rows = store.query("SELECT fingerprint FROM environments WHERE env_id = ?", [env_id])
    return _json(rows[0]["fingerprint"]) if rows else {}


def _diff(a: dict[str, Any], b: dict[str, Any]) -> str:
    """Fingerprint keys that differ (the farm's own commit is what a history is about)."""
    if not a or not b:
        return ""
    keys = sorted((set(a) | set(b)) - IGNORED_ENV_KEYS)
    return ", ".join(k for k in keys if a.get(k) != b.get(k))


def _commits(store: Store, job_ids: list[str]) -> dict[str, str]:
    """The farm commit each job ran (from its trials' environments), where one is recorded."""
    if not job_ids:
        return {}
    rows = store.query(
        "SELECT DISTINCT t.job_id, e.fingerprint AS fp FROM trials t "
        "JOIN environments e USING (env_id) WHERE list_contains(?::VARCHAR[], t.job_id)",
        [job_ids],
    )
    out: dict[str, str] = {}
    for r in rows:
        commit = _json(r["fp"]).get("farm_commit")
        if commit:
            out.setdefault(r["job_id"], str(commit))
    return out
