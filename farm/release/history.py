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
the gate's quality tolerance (``quality drop`` / ``quality gain``). Why not asv's step detection:
asv fits steps to one number per commit because it keeps nothing else; the farm keeps hundreds of
samples per measurement, so each pair of consecutive jobs can be tested on its own, including the
newest job (a step detector needs points after a step to place it), and a flag here means exactly
what a failing ``farm gate`` between those two jobs would mean.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from farm.errors import UsageError
from farm.release.budget import Budget
from farm.release.comparable import DEFAULT_QUALITY_TOLERANCE, IGNORED_ENV_KEYS, differences
from farm.release.recommend import recommend
from farm.release.significance import DEFAULT_ALPHA, DEFAULT_THRESHOLD, compare
from farm.store.db import Store
from farm.store.records import JobRecord, TrialRecord

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
    quality_tolerance: float = DEFAULT_QUALITY_TOLERANCE,
) -> History:
    """The history of the jobs named ``name`` (the last ``last`` of them; none created after job
    ``until``), following the recommended configuration under ``budget`` or the baseline."""
    if last is not None and last < 1:
        raise UsageError(f"--last: expected a positive number of jobs, got {last}")
    jobs = store.jobs_named(name)
    if not jobs:
        raise UsageError(f"{store.path}: no job is named {name!r} (see `farm jobs`)")
    if until is not None:
        ids = [j.job_id for j in jobs]
        if until not in ids:
            raise UsageError(f"{store.path}: job {until!r} is not a job named {name!r}")
        jobs = jobs[: ids.index(until) + 1]
    if last is not None:
        jobs = jobs[-last:]
    points: list[Point] = []
    previous: dict[str, _Seen] = {}
    for job in jobs:
        # without a budget only the baselines are followed: read just those (a report reads
        # the history of up to 30 jobs, each of which may hold a million trials)
        trials = store.trials(job.job_id, "TRUE" if budget else "is_baseline")
        targets = job.spec.get("targets") or sorted({t.target for t in trials})
        chosen = _followed(job.job_id, trials, targets, budget)
        for target in targets:
            trial, why = chosen[target]
            if trial is None:
                points.append(_empty(job, target, why))
                continue
            samples = store.samples(job.job_id, target, trial.trial_number)
            env = store.environment(trial.env_id)
            point = _point(job, trial, len(samples))
            before = previous.get(target)
            if before is not None:
                point = _compare(point, trial, samples, env, before, threshold, alpha)
                point = _quality(point, before[0], quality_tolerance)
            points.append(point)
            previous[target] = (point, samples, env, trial)
    commits = store.farm_commits([j.job_id for j in jobs])
    listed = [
        {
            "job_id": j.job_id,
            "label": j.label,
            "created_at": j.created_at,
            "status": j.status,
            "commit": commits.get(j.job_id),
        }
        for j in jobs
    ]
    basis = "baseline" if budget is None else f"recommended under {budget.path}"
    method = METHOD.format(threshold=threshold, alpha=alpha, tolerance=quality_tolerance)
    return History(name, basis, method, listed, points)


#: What the history remembers of a target's previous point: the point, its raw samples, its
#: environment's fingerprint and the trial.
_Seen = tuple[Point, list[float], dict[str, Any], TrialRecord]


def _followed(
    job_id: str, trials: list[TrialRecord], targets: list[str], budget: Budget | None
) -> dict[str, tuple[TrialRecord | None, str]]:
    """Per target, the trial the history follows in this job, or None and why not."""
    out: dict[str, tuple[TrialRecord | None, str]] = {}
    if budget is None:
        for t in targets:
            done = [r for r in trials if r.target == t and r.is_baseline and r.completed]
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


def _point(job: JobRecord, trial: TrialRecord, n_samples: int) -> Point:
    assert job.created_at is not None
    return Point(
        job_id=job.job_id,
        label=job.label,
        created_at=job.created_at,
        target=trial.target,
        trial_number=trial.trial_number,
        params=dict(trial.params),
        p95_ms=trial.latency_p95_ms,
        cost_per_1k_usd=trial.cost_per_1k_usd,
        quality=trial.quality,
        quality_metric=trial.quality_metric,
        n_samples=n_samples,
    )


def _empty(job: JobRecord, target: str, why: str) -> Point:
    assert job.created_at is not None
    return Point(job.job_id, job.label, job.created_at, target, None, note=why)


def _compare(
    point: Point,
    trial: TrialRecord,
    samples: list[float],
    env: dict[str, Any],
    before: _Seen,
    threshold: float,
    alpha: float,
) -> Point:
    """The latency step between the previous point and this one, with what makes it suspect."""
    prev, prev_samples, prev_env, prev_trial = before
    notes = []
    config_changed = prev.params != point.params
    if config_changed:
        notes.append("the followed configuration changed")
    env_diff = _diff(prev_env, env)
    if env_diff:
        notes.append(f"the environment changed ({env_diff})")
    contract = dict(trial.contract or {})
    if dict(prev_trial.contract or {}) != contract:
        notes.append("the measurement contract changed")
    if not samples or not prev_samples:
        detail = "no raw latency samples stored on one side; not tested"
        return _with(point, (), detail, config_changed, notes)
    method = contract.get("percentile_method", "inverted_cdf")
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


def _diff(a: dict[str, Any], b: dict[str, Any]) -> str:
    """Fingerprint keys that differ (the farm's own commit is what a history is about)."""
    if not a or not b:
        return ""
    return ", ".join(differences(a, b, IGNORED_ENV_KEYS))
