"""Pick the configuration to ship under a budget, per target and across targets.

The rule (:data:`RULE`): among the completed trials that meet every limit of their target's
budget (and the job's own constraint), take the cheapest per 1,000 inferences; ties go to the
higher quality (the task's primary metric), then the lower p95 latency, then the earlier trial.
Every other trial is listed with what excluded it: the limits it fails, the job constraint, its
failure, or "passes but costs more". A trial that fails a limit is never recommended.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from farm.release.budget import Budget, Violation, check, check_metrics
from farm.store.records import TrialRecord

RULE = (
    "cheapest per 1k inferences among the completed trials that meet every limit; "
    "ties by higher quality, then lower p95 latency"
)


@dataclass(frozen=True)
class Verdict:
    """One trial judged against its target's limits."""

    trial: TrialRecord
    violations: tuple[Violation, ...]
    #: Why the trial cannot be considered at all (failed, infeasible in the job), or None.
    excluded: str | None = None
    #: Its primary metric against its target's fp32 baseline, image by image
    #: (:class:`farm.evidence.Comparison`; None for a baseline or a trial without evidence).
    comparison: Any = None

    @property
    def sentence(self) -> str | None:
        """The change a lead reads: "accuracy −0.19 pt [−0.56, +0.19] at 95 %, 1 image broken,
        0 fixed; no significant change" (None without a comparison)."""
        from farm.evidence.words import describe

        return None if self.comparison is None else describe(self.comparison)

    @property
    def passes(self) -> bool:
        return self.excluded is None and not self.violations

    @property
    def key(self) -> tuple[str, int]:
        return (self.trial.target, self.trial.trial_number)

    def reason(self, pick: TrialRecord | None = None) -> str:
        if self.excluded:
            return self.excluded
        if self.violations:
            return "; ".join(v.describe() for v in self.violations)
        if pick is not None:
            t = self.trial
            return (
                f"passes, but not first by the rule (cost {_num(t.cost_per_1k_usd, '.3g')} "
                f"vs {_num(pick.cost_per_1k_usd, '.3g')} USD/1k, {t.metric_name} "
                f"{_num(t.quality, '.4f')} vs {_num(pick.quality, '.4f')})"
            )
        return "passes"


def _num(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


@dataclass
class TargetChoice:
    target: str
    pick: Verdict | None
    others: list[Verdict] = field(default_factory=list)

    @property
    def passing(self) -> list[Verdict]:
        return [v for v in ([self.pick] if self.pick else []) + self.others if v.passes]


@dataclass
class Recommendation:
    job_id: str
    budget: Budget
    per_target: dict[str, TargetChoice]
    overall: Verdict | None

    @property
    def ok(self) -> bool:
        """True when every budgeted target has a configuration that passes (and there is at
        least one budgeted target: nothing to judge is not a pass)."""
        return bool(self.per_target) and all(c.pick is not None for c in self.per_target.values())

    def to_dict(self) -> dict[str, Any]:
        def trial(v: Verdict | None) -> dict[str, Any] | None:
            if v is None:
                return None
            out = public(v.trial)
            if v.comparison is not None:  # the paired interval, flips and verdict
                out["quality_change"] = {**v.comparison.to_dict(), "sentence": v.sentence}
            return out

        return {
            "job_id": self.job_id,
            "rule": RULE,
            "budget": self.budget.to_dict(),
            "ok": self.ok,
            "overall": trial(self.overall),
            "per_target": {
                t: {
                    "pick": trial(c.pick),
                    "limits": dict(self.budget.limits_for(t).items()),
                    "others": [
                        {
                            "trial_number": v.trial.trial_number,
                            "params": dict(v.trial.params),
                            "passes": v.passes,
                            "reason": v.reason(c.pick.trial if c.pick else None),
                        }
                        for v in c.others
                    ],
                }
                for t, c in self.per_target.items()
            },
        }


#: The trial fields ``recommend --json`` prints for a pick (``accuracy`` / ``accuracy_drop``
#: are the compatibility names of ``quality`` / ``quality_drop``, printed as before).
PUBLIC = (
    "target",
    "trial_number",
    "params",
    "accuracy",
    "accuracy_drop",
    "quality",
    "quality_drop",
    "quality_metric",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "throughput_ips",
    "cost_per_1k_usd",
    "precision_actual",
    "batch_size",
    "threads",
    "stable",
    "candidate_hash",
)


def public(trial: TrialRecord) -> dict[str, Any]:
    """A trial as ``recommend --json`` prints it (:data:`PUBLIC`; params as an object)."""
    row = trial.to_row()
    out = {k: row[k] for k in PUBLIC}
    out["params"] = dict(trial.params)
    return out


def judge(
    trial: TrialRecord,
    budget: Budget,
    baseline_metrics: Mapping[str, float] | None = None,
    comparison: Any = None,
) -> Verdict:
    """A trial against its target's limits: point estimates as stored, or the worst end of
    the trial's paired interval (``comparison``) where the budget sets ``quality_confidence``."""
    if not trial.completed:
        return Verdict(trial, (), f"trial failed: {trial.error or 'no error recorded'}")
    limits = budget.limits_for(trial.target)
    violations = tuple(check(limits, trial, baseline_metrics, comparison=comparison))
    if not trial.feasible:
        reason = trial.infeasible_reason or (
            f"{trial.metric_name} drop {trial.quality_drop or 0:.4f} exceeds the job's "
            "max_accuracy_drop"
        )
        return Verdict(trial, violations, f"infeasible in the job ({reason})", comparison)
    return Verdict(trial, violations, comparison=comparison)


def rank_key(trial: TrialRecord) -> tuple[float, float, float, int]:
    """Sort key of :data:`RULE`: cost, then better quality (an error rate's lower value), then
    p95, then trial number."""
    return (
        float(trial.cost_per_1k_usd),  # type: ignore[arg-type]
        -float(trial.quality) * trial.quality_sense,  # type: ignore[arg-type]
        float(trial.latency_p95_ms),  # type: ignore[arg-type]
        trial.trial_number,
    )


def _order(verdicts: list[Verdict]) -> list[Verdict]:
    """Passing first by the rule; then the rest, closest misses (fewest violations) first."""
    passing = sorted((v for v in verdicts if v.passes), key=lambda v: rank_key(v.trial))
    rest = sorted(
        (v for v in verdicts if not v.passes),
        key=lambda v: (
            not v.trial.completed,
            len(v.violations) + (v.excluded is not None),
            v.trial.trial_number,
        ),
    )
    return passing + rest


def baseline_metrics(trials: list[TrialRecord]) -> dict[str, dict[str, float]]:
    """Per target, its completed baseline's quality metrics (what ``max_<metric>_drop``
    limits compare with)."""
    return {t.target: t.quality_metrics for t in trials if t.is_baseline and t.completed}


def recommend(
    job_id: str,
    trials: list[TrialRecord],
    budget: Budget,
    job_targets: list[str] | None = None,
    comparisons: Mapping[tuple[str, int], Any] | None = None,
) -> Recommendation:
    """Apply :data:`RULE` per target the budget covers and across them.

    ``job_targets`` (the job spec's targets) makes a budgeted target without any trial show up
    as one where nothing passes, rather than vanish from the verdict. ``comparisons``: each
    candidate's paired comparison with its baseline, by (target, trial number).
    """
    compared = comparisons or {}
    if any(t.metrics for t in trials):
        check_metrics(budget, {n for t in trials for n in t.quality_metrics})
    base = baseline_metrics(trials)
    seen = {t.target for t in trials}
    targets = budget.applies_to(sorted(seen | set(job_targets or ())))
    per_target: dict[str, TargetChoice] = {}
    for target in targets:
        verdicts = [
            judge(t, budget, base.get(target, {}), compared.get((t.target, t.trial_number)))
            for t in trials
            if t.target == target
        ]
        ordered = _order(verdicts)
        pick = ordered[0] if ordered and ordered[0].passes else None
        per_target[target] = TargetChoice(target, pick, ordered[1:] if pick else ordered)
    picks = [c.pick for c in per_target.values() if c.pick is not None]
    overall = min(picks, key=lambda v: rank_key(v.trial)) if picks else None
    return Recommendation(job_id, budget, per_target, overall)


def render_text(rec: Recommendation, max_others: int = 10) -> str:
    """The recommendation as plain text: rule, overall pick, then each target's pick and why the
    other configurations were not chosen."""
    from farm.display import short_params

    def line(t: TrialRecord) -> str:
        return (
            f"#{t.trial_number} {short_params(t.params)}: {t.metric_name} "
            f"{_num(t.quality, '.4f')} (drop {t.quality_drop or 0:+.4f}), p95 "
            f"{_num(t.latency_p95_ms, '.3g')} ms, p99 {_num(t.latency_p99_ms, '.3g')} ms, "
            f"{_num(t.throughput_ips, ',.0f')} img/s, {_num(t.cost_per_1k_usd, '.3g')} USD/1k"
        )

    out = [f"job {rec.job_id}, budget {rec.budget.path}", f"rule: {RULE}", ""]
    if rec.overall is None:
        out.append("overall: NOTHING meets the budget on any target")
    else:
        out.append(f"overall: {rec.overall.trial.target} {line(rec.overall.trial)}")
    for target, choice in rec.per_target.items():
        limits = ", ".join(f"{k}={v:g}" for k, v in rec.budget.limits_for(target).items())
        out += ["", f"{target} (limits: {limits or 'none'})"]
        if choice.pick is None:
            out.append(
                f"  NOTHING passes: none of the {len(choice.others)} trials meets the budget"
            )
        else:
            out.append(f"  recommended {line(choice.pick.trial)}")
            if choice.pick.sentence:
                out.append(f"    {choice.pick.sentence}")
        pick = choice.pick.trial if choice.pick else None
        for v in choice.others[:max_others]:
            t = v.trial
            out.append(f"  not #{t.trial_number} {short_params(t.params)}: {v.reason(pick)}")
        if len(choice.others) > max_others:
            out.append(f"  … and {len(choice.others) - max_others} more (--json lists all)")
    return "\n".join(out)
