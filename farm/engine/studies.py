"""One Optuna study per (job, target): what it measures first, what it asks next, and how a
resumed job's stored trials are told to it again.

Each study starts with the unoptimized baseline of its target, then the screening design
(:func:`farm.search.space.initial_points`), then its sampler's proposals; a configuration it
has measured already is never measured again (a proposal that repeats one is told as pruned and
asked again). Its budget is the job's trials per target, cut to the distinct candidates the
space holds.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import optuna

from farm.search.objectives import directions
from farm.search.sampler import make_sampler, space_size
from farm.search.space import initial_points

if TYPE_CHECKING:
    from farm.cluster.lifecycle import Node
    from farm.engine.prepare import PreparedJob
    from farm.search.candidate import Candidate
    from farm.store.records import TrialRecord

#: How many re-asks a study gets to avoid re-measuring a configuration it already measured.
DUPLICATE_ASKS = 25
#: Spaces up to this many points are enumerated to size a study's budget exactly.
ENUMERATE_LIMIT = 20_000


@dataclass
class TrialRun:
    """A trial on its way through build → evaluate."""

    target: str
    number: int
    trial: optuna.trial.Trial
    candidate: Candidate
    is_baseline: bool
    #: When the study asked for it (the executor's clock): ``trial_s`` counts from it.
    asked_at: float
    stage: str = "build"  # build | evaluate
    artifact_ref: Any = None
    artifact_hash: str | None = None
    artifact_bytes: int | None = None
    build_s: float = 0.0
    cache_hit: bool = True
    attempts: int = 0
    last_error: str | None = None
    node: Node | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def holder(self) -> str:
        """How a lease names this run's current task."""
        return f"{self.stage} {self.target}/{self.number}"


@dataclass
class Study:
    """A target's Optuna study and what the runner keeps about it."""

    target: str
    optuna: optuna.Study
    space: Mapping[str, Any]
    budget: int
    asked: int = 0
    baseline_quality: float | None = None
    #: Every metric of the completed baseline (what the job's ``_drop`` limits compare with).
    baseline_metrics: dict[str, float] = field(default_factory=dict)
    baseline_done: bool = False
    stopped: str | None = None  # why no more trials are asked
    #: Content hashes of the candidates asked so far.
    seen: set[str] = field(default_factory=set)

    def may_ask(self) -> bool:
        """Whether the study has trials left to ask (now or later)."""
        return not self.stopped and self.asked < self.budget

    def can_ask(self, in_flight: int, capacity: int) -> bool:
        """Whether it may ask one more trial now, with ``in_flight`` of its trials under way."""
        if not self.may_ask():
            return False
        if self.asked > 0 and not self.baseline_done:
            return False  # every later trial is judged against the baseline
        return in_flight < max(1, capacity)

    def baseline_measured(self, quality: float, metrics: Mapping[str, float]) -> None:
        self.baseline_quality, self.baseline_done = quality, True
        self.baseline_metrics = dict(metrics)


def make_studies(prepared: PreparedJob, job_id: str) -> dict[str, Study]:
    """One study per target, each with the job's sampler (seeded per target) and budget."""
    studies = {}
    spec = prepared.spec
    for i, t in enumerate(spec.targets):
        space = prepared.spaces[t]
        study = optuna.create_study(
            study_name=f"{job_id}/{t}",
            directions=directions(prepared.objectives),
            sampler=make_sampler(spec.search, spec.search.seed + i),
        )
        budget = min(spec.search.trials_per_target, distinct_candidates(prepared, t, space))
        studies[t] = Study(t, study, space, int(budget))
    return studies


def distinct_candidates(prepared: PreparedJob, target: str, space: Mapping[str, Any]) -> float:
    """How many different candidates the space holds (knobs that do not apply to a point,
    such as a quantizer's at fp32, do not make new candidates); an upper bound for spaces
    too large to enumerate."""
    size = space_size(space)
    if size > ENUMERATE_LIMIT:
        return size
    names = list(space)
    hashes = {
        prepared.plan(target, dict(zip(names, values, strict=True))).content_hash
        for values in itertools.product(*(space[n].choices for n in names))
    }
    return len(hashes)


def enqueue_first_points(prepared: PreparedJob, s: Study) -> None:
    """Queue what the study measures before its sampler proposes anything: the baseline,
    then the screening design; a resumed study skips what it has already measured."""
    for point in initial_points(dict(s.space), s.target, s.budget):
        if prepared.plan(s.target, point).content_hash not in s.seen:
            s.optuna.enqueue_trial(point)


def ask(prepared: PreparedJob, s: Study, now: float) -> TrialRun | None:
    """The study's next candidate not measured yet; None (and the study stops) when the
    sampler keeps proposing measured ones."""
    is_baseline = not s.baseline_done and s.asked == 0
    for _ in range(DUPLICATE_ASKS):
        trial = s.optuna.ask(dict(s.space))
        candidate = prepared.plan(s.target, trial.params)
        if candidate.content_hash not in s.seen or is_baseline:
            break
        s.optuna.tell(trial, state=optuna.trial.TrialState.PRUNED)  # already measured
    else:
        s.stopped = (
            f"search space exhausted: {DUPLICATE_ASKS} asks in a row proposed only "
            "configurations already measured"
        )
        return None
    s.seen.add(candidate.content_hash)
    run = TrialRun(s.target, s.asked, trial, candidate, is_baseline, asked_at=now)
    s.asked += 1
    return run


def tell_completed(
    prepared: PreparedJob,
    s: Study,
    run: TrialRun,
    record: TrialRecord,
    violations: dict[str, float],
) -> None:
    """Tell the study a measured trial: its objective values, and each limit's violation as a
    constraint (infeasible trials rank after feasible ones, not as a penalty)."""
    for name, violation in violations.items():
        run.trial.set_constraint(name, violation)
    s.optuna.tell(run.trial, [o.value(record) for o in prepared.objectives])


def tell_failed(s: Study, run: TrialRun, error: str) -> None:
    """Tell the study a failed trial; a failed baseline stops it (nothing could be judged)."""
    s.optuna.tell(run.trial, state=optuna.trial.TrialState.FAIL)
    if run.is_baseline:
        s.stopped = s.stopped or f"the baseline trial failed ({error}); no candidate can be judged"


def replay(
    prepared: PreparedJob, studies: Mapping[str, Study], records: Sequence[TrialRecord]
) -> list[str]:
    """Rebuild each study from a resumed job's stored trials: they are told to Optuna again,
    not re-run, and numbering continues after the last stored trial (none is stored twice).
    Returns notes for trials that no longer guide the search."""
    notes = []
    for r in records:
        if r.is_baseline and r.completed:
            studies[r.target].baseline_metrics = _metrics(prepared, r)
    for r in records:
        s = studies[r.target]
        params = {k: v for k, v in r.params.items() if k in s.space}
        if all(v in s.space[k].choices for k, v in params.items()):
            s.optuna.add_trial(_frozen(prepared, s, r, params))
        else:  # e.g. resumed on a smaller cluster: 16 threads are no longer a choice
            notes.append(
                f"{r.target} #{r.trial_number} is outside the space this cluster "
                "offers; it stays in the store but does not guide the search"
            )
        s.asked = max(s.asked, r.trial_number + 1)
        s.seen.add(r.candidate_hash)
        if r.is_baseline:
            if r.completed and r.quality is not None:
                s.baseline_quality, s.baseline_done = r.quality, True
            else:
                s.stopped = f"the baseline trial failed ({r.error})"
    return notes


def _metrics(prepared: PreparedJob, r: TrialRecord) -> dict[str, float]:
    """A stored trial's metrics, the primary one under its own name too."""
    return {**r.metrics, prepared.quality_metric: float(r.quality or 0.0)}


def _frozen(
    prepared: PreparedJob, s: Study, r: TrialRecord, params: dict[str, Any]
) -> optuna.trial.FrozenTrial:
    """A stored trial as Optuna saw it when it was told: values, and the constraint."""
    distributions = {k: s.space[k] for k in params}
    if not r.completed:
        return optuna.trial.create_trial(
            state=optuna.trial.TrialState.FAIL, params=params, distributions=distributions
        )
    metrics = _metrics(prepared, r)
    limits = {c.field: c.violation(metrics, s.baseline_metrics) for c in prepared.limits}
    return optuna.trial.create_trial(
        params=params,
        distributions=distributions,
        values=[o.value(r) for o in prepared.objectives],
        constraints=limits or None,
    )
