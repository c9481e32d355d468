"""The CI gate's checks: budgets checked with confidence, and regressions tested on raw samples.

* Budget: per budgeted target, the configuration ``recommend`` would ship (its rule, in order)
  must meet every limit with the latency limits checked against a distribution-free upper
  confidence bound on the percentile (:func:`farm.release.significance.percentile_upper_bound`),
  not the point estimate. If the first choice fails only on the bound, the next passing one is
  tried.
* Regression: each configuration completed in both the candidate and the baseline job (same
  workload, target and params) is compared on its raw samples: a regression is a median
  slowdown above the threshold that the one-sided Mann-Whitney U test finds significant; a drop
  of the primary quality metric above a tolerance is a regression too, and so is a release KPI
  moving the wrong way by more than its tolerance (:mod:`farm.gate.kpi`).
* Confirmation: before a latency comparison is judged, the configurations whose stored
  slowdown leaves room for a regression are re-measured, both artifacts interleaved on one node
  (:mod:`farm.gate.confirm`), and those paired measurements decide. Without the artifacts the
  store-only rule applies, labelled as such; ``--no-confirm`` keeps the store-only rule.
* Measurements under different contracts or environments are refused unless allowed.

A baseline is a job in a store or a ``farm export --format json`` file
(:class:`~farm.gate.snapshot.Snapshot`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from farm.display import short_params, signed
from farm.errors import UsageError
from farm.evidence.words import describe
from farm.gate.decision import STATISTIC, NotConfirmed, wants_confirmation
from farm.gate.kpi import kpi_checks
from farm.gate.options import GateOptions
from farm.gate.paired import FIXED, PAIRED, paired_comparison, paired_evidence, paired_kpis
from farm.gate.snapshot import Snapshot, canonical
from farm.release.budget import LATENCY_PERCENTILE, LIMITS, Budget, Limits, check
from farm.release.comparable import IGNORED_ENV_KEYS, differences
from farm.release.recommend import baseline_metrics, recommend
from farm.release.significance import Comparison, compare, min_rounds, percentile_upper_bound
from farm.store.records import TrialRecord

if TYPE_CHECKING:
    from farm.evidence.paired import Comparison as PairedComparison
    from farm.gate.confirm import Confirmer
    from farm.gate.decision import Confirmation

#: A configuration present in both jobs: (candidate trial, baseline trial).
Pair = tuple[TrialRecord, TrialRecord]
#: What nothing-to-check says: the API's words and the CLI's.
NOTHING_TO_CHECK = "nothing to check: give a budget or a baseline"

#: How a latency check was decided (``Check.basis``).
BASIS_STORE = "store"  # the store-only test: confirmation off, or not needed
BASIS_CONFIRMED = "confirmed"  # the interleaved re-measurement decided
BASIS_FALLBACK = "store-fallback"  # confirmation wanted but impossible: the store-only test


@dataclass(frozen=True)
class Check:
    """One line of the gate's verdict."""

    #: job | budget | latency | accuracy (the primary quality metric) | kpi: identifiers that
    #: CI tooling filters on (JSON ``kind``, JUnit suite names), kept as released.
    kind: str
    name: str
    passed: bool
    message: str
    basis: str = BASIS_STORE
    confirmation: Confirmation | None = None


@dataclass
class GateResult:
    candidate: str
    baseline: str | None
    checks: list[Check]
    notes: list[str]

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]


def run_gate(
    candidate: Snapshot,
    budget: Budget | None,
    baseline: Snapshot | None,
    options: GateOptions | None = None,
    confirmer: Confirmer | None = None,
) -> GateResult:
    """Budget checks on the candidate job, then regression checks against the baseline, with
    latency regressions confirmed by ``confirmer`` (None: the store-only rule)."""
    if budget is None and baseline is None:
        raise UsageError(NOTHING_TO_CHECK)
    options = options or GateOptions()
    checks: list[Check] = []
    notes: list[str] = []
    status = candidate.job.status
    if status != "completed":
        checks.append(
            Check("job", "candidate job", False, f"the candidate job is {status}, not completed")
        )
    if budget is not None:
        checks += budget_checks(candidate, budget, options.confidence or budget.confidence)
    if baseline is not None:
        pair_checks, pair_notes = regression_checks(candidate, baseline, options, confirmer)
        checks += pair_checks
        notes += pair_notes
    unstable = [f"{t.target} #{t.trial_number}" for t in candidate.trials if t.stable is False]
    if unstable:
        notes.append(
            "measurements stored as unstable (their numbers are less trustworthy): "
            + ", ".join(unstable)
        )
    return GateResult(candidate.source, baseline.source if baseline else None, checks, notes)


def budget_checks(candidate: Snapshot, budget: Budget, confidence: float) -> list[Check]:
    """Per budgeted target: the first configuration by the recommend rule that meets every limit
    with the latency limits checked on the upper confidence bound of the percentile."""
    rec = recommend(candidate.job_id, candidate.trials, budget, candidate.spec.get("targets"))
    base = baseline_metrics(candidate.trials)
    out = []
    for target, choice in rec.per_target.items():
        limits = budget.limits_for(target)
        name = f"{target}: budget"
        if choice.pick is None:
            closest = choice.others[0].reason() if choice.others else "no trials"
            out.append(
                Check(
                    "budget",
                    name,
                    False,
                    f"no configuration meets {_limits(limits)}; closest: {closest}",
                )
            )
            continue
        tried: list[str] = []
        for verdict in choice.passing:
            trial = verdict.trial
            bounded, detail = _bounded(candidate, trial, limits, confidence)
            violations = check(
                limits, bounded, base.get(target), basis=f"{confidence:.0%} upper bound"
            )
            label = f"#{trial.trial_number} ({short_params(trial.params)})"
            if not violations:
                prefix = (
                    "" if not tried else f"first choices fail on the bound ({'; '.join(tried)}); "
                )
                out.append(
                    Check("budget", name, True, f"{prefix}{label} meets {_limits(limits)}{detail}")
                )
                break
            tried.append(f"{label}: " + "; ".join(v.describe() for v in violations))
        else:
            out.append(
                Check(
                    "budget",
                    name,
                    False,
                    "configurations that pass on point estimates "
                    "fail on the confidence bound: " + " | ".join(tried),
                )
            )
    return out


def _bounded(
    snap: Snapshot, trial: TrialRecord, limits: Limits, confidence: float
) -> tuple[TrialRecord, str]:
    """The trial with each budgeted latency percentile replaced by its upper confidence bound."""
    bounds: dict[str, float | None] = {}
    parts = []
    samples = snap.samples.get((trial.target, trial.trial_number), [])
    for name, _ in limits.items():
        q = LATENCY_PERCENTILE.get(name)
        if q is None:
            continue
        field = LIMITS[name][0]
        if not samples:
            bounds[field] = None  # no raw samples: no bound, so the limit fails
            parts.append(f"p{q:g}: no raw samples stored")
            continue
        bound = percentile_upper_bound(samples, q, confidence)
        bounds[field] = bound
        parts.append(
            f"p{q:g} {getattr(trial, field):.3g} ms, {confidence:.0%} upper bound {bound:.3g} ms "
            f"(n={len(samples)})"
        )
    return trial.replace(**bounds), (": " + ", ".join(parts)) if parts else ""


def _limits(limits: Limits) -> str:
    return "{" + ", ".join(f"{k}={v:g}" for k, v in limits.items()) + "}"


def regression_checks(
    candidate: Snapshot,
    baseline: Snapshot,
    options: GateOptions,
    confirmer: Confirmer | None = None,
) -> tuple[list[Check], list[str]]:
    """Latency and accuracy of each configuration present, completed, in both jobs. With a
    ``confirmer``, the latency comparisons it wants are re-measured and decided on that."""
    _same_workload(candidate, baseline)
    pairs, unmatched = match_trials(candidate, baseline)
    if not pairs:
        raise UsageError(
            f"no configuration of {candidate.source} was measured in the baseline "
            f"{baseline.source} (same target and params); nothing to compare"
        )
    _refuse_incomparable(candidate, baseline, pairs, options)
    checks: list[Check] = []
    notes: list[str] = []
    if unmatched:
        notes.append(
            f"{len(unmatched)} configuration(s) of the candidate have no counterpart in the "
            "baseline and were not compared: " + ", ".join(unmatched)
        )
    stored = [_stored_comparison(candidate, baseline, pair, options) for pair in pairs]
    chosen = _to_confirm(stored, confirmer)
    for i, ((cand, base), c) in enumerate(zip(pairs, stored, strict=True)):
        label = f"{cand.target} {short_params(cand.params)}"
        name = f"{label}: latency"
        if c is None:
            message = "no raw latency samples stored on one side; cannot test"
            checks.append(Check("latency", name, False, message))
        elif confirmer is None:
            checks.append(Check("latency", name, not c.regression, c.describe()))
        elif i not in chosen:
            checks.append(_store_only(name, c, _why_not_chosen(c, confirmer)))
        else:
            outcome = confirmer.confirm(cand, base, c)
            if isinstance(outcome, NotConfirmed):
                why = f"store only, not confirmed: {outcome.reason}"
                checks.append(_store_only(name, c, why, BASIS_FALLBACK))
            else:
                message = outcome.describe()
                passed = not outcome.regression
                checks.append(Check("latency", name, passed, message, BASIS_CONFIRMED, outcome))
        evidence = paired_evidence(candidate, baseline, cand, base)
        paired = paired_comparison(evidence, cand)
        checks.append(_quality_check(label, cand, base, options.quality_tolerance, paired))
        kpis = kpi_checks(
            cand.metrics,
            base.metrics,
            options.kpi_tolerances,
            paired_kpis(evidence, cand) if evidence is not None else None,
        )
        checks += [Check("kpi", f"{label}: {k.name}", k.passed, k.message) for k in kpis]
    if confirmer is not None:
        notes += _confirmation_notes(checks, confirmer)
    return checks, notes


def _stored_comparison(
    candidate: Snapshot, baseline: Snapshot, pair: Pair, options: GateOptions
) -> Comparison | None:
    """The store-only test of one configuration on the two jobs' raw samples (None when one
    side stored none)."""
    cand, base = pair
    a = baseline.samples.get((base.target, base.trial_number), [])
    b = candidate.samples.get((cand.target, cand.trial_number), [])
    if not a or not b:
        return None
    method = (cand.contract or {}).get("percentile_method", "inverted_cdf")
    return compare(a, b, options.threshold, options.alpha, method=method)


def _quality_check(
    label: str,
    cand: TrialRecord,
    base: TrialRecord,
    tolerance: float,
    paired: PairedComparison | None = None,
) -> Check:
    """The primary quality metric may not drop by more than ``tolerance`` (named by the task's
    own metric: ``accuracy``, ``map``…): judged on the paired interval where both jobs were
    judged on the same images (``paired``; a regression is a drop whose whole interval lies
    beyond the tolerance), else on the point estimates, labelled as a fixed tolerance."""
    metric = cand.metric_name
    if cand.quality is None or base.quality is None:
        return Check("accuracy", f"{label}: {metric}", False, f"{metric} not measured")
    drop = (float(base.quality) - float(cand.quality)) * cand.quality_sense
    if paired is not None:
        ok = paired.drop_interval[0] <= tolerance
        basis = f"{PAIRED}, {paired.n_images} images"
    else:
        ok, basis = drop <= tolerance, FIXED
    said = "" if paired is None else f"; {describe(paired)}"
    return Check(
        "accuracy",
        f"{label}: {metric}",
        ok,
        f"{'REGRESSION' if not ok else 'ok'}: {metric} {base.quality:.4f} → "
        f"{cand.quality:.4f} ({signed(-drop)}; tolerance {tolerance:g}{said}) [{basis}]",
    )


def _to_confirm(stored: list[Comparison | None], confirmer: Confirmer | None) -> set[int]:
    """Indices of the comparisons to re-measure: those the rule wants, largest stored slowdown
    first, at most the confirmer's limit."""
    if confirmer is None:
        return set()
    drift = confirmer.options.drift
    wanted = [i for i, c in enumerate(stored) if c is not None and wants_confirmation(c, drift)]
    wanted.sort(key=lambda i: -stored[i].slowdown)  # type: ignore[union-attr]
    return set(wanted[: confirmer.options.confirm_limit])


def _why_not_chosen(c: Comparison, confirmer: Confirmer) -> str:
    if wants_confirmation(c, confirmer.options.drift):
        return (
            f"store only, not confirmed: over the limit of {confirmer.options.confirm_limit} "
            "re-measured configurations per gate (--confirm-limit)"
        )
    floor = c.threshold - confirmer.options.drift
    return (
        f"store only; not re-measured: the stored slowdown {c.slowdown:+.1%} is below "
        f"threshold - drift = {floor:+.0%}"
    )


def _store_only(name: str, c: Comparison, label: str, basis: str = BASIS_STORE) -> Check:
    """A latency check decided by the store-only test, its verdict labelled with why."""
    verdict, _, rest = c.describe().partition(": ")
    return Check("latency", name, not c.regression, f"{verdict} ({label}): {rest}", basis)


def _confirmation_notes(checks: list[Check], confirmer: Confirmer) -> list[str]:
    """The rule, what the confirmations cost, and which verdicts rest on the store alone."""
    notes = []
    confirmed = [c.confirmation for c in checks if c.confirmation is not None]
    fallback = [c for c in checks if c.basis == BASIS_FALLBACK]
    if confirmed:
        alpha = confirmed[0].alpha
        rounds = sum(len(c.rounds) for c in confirmed)
        wall = sum(c.wall_s for c in confirmed)
        notes.append(
            f"latency confirmation: {len(confirmed)} configuration(s) re-measured in {rounds} "
            f"rounds, {wall:.0f} s. Rule: both artifacts measured interleaved (AB, BA, …) on "
            "one node serving the target, each measurement a fresh process under the candidate "
            f"trial's contract; per round the ratio of the two measurements' {STATISTIC}; from "
            f"{min_rounds(alpha)} rounds on, until the {1 - alpha:.0%} distribution-free "
            "interval of the median ratio lies wholly above 1 + threshold (regression) or "
            f"below it (no regression), at most {confirmer.options.confirm_rounds} rounds "
            "(then the median decides)"
        )
    if fallback:
        notes.append(
            f"STORE-ONLY: {len(fallback)} latency verdict(s) could not be confirmed by "
            "re-measurement and rest on the stored samples alone: "
            + "; ".join(c.name.removesuffix(": latency") for c in fallback)
        )
    return notes


def match_trials(candidate: Snapshot, baseline: Snapshot) -> tuple[list[Pair], list[str]]:
    """Pairs (candidate trial, baseline trial) with the same target and params, both completed.
    When a configuration was measured twice in one job, its latest trial is used."""

    def index(snap: Snapshot) -> dict[tuple[str, str], TrialRecord]:
        out = {}
        for t in sorted(snap.trials, key=lambda t: t.trial_number):
            if t.completed:
                out[(t.target, canonical(t.params))] = t
        return out

    base = index(baseline)
    pairs, unmatched = [], []
    for key, cand in sorted(index(candidate).items()):
        if key in base:
            pairs.append((cand, base[key]))
        else:
            unmatched.append(f"{cand.target} #{cand.trial_number}")
    return pairs, unmatched


def _same_workload(candidate: Snapshot, baseline: Snapshot) -> None:
    a = candidate.spec.get("workload")
    b = baseline.spec.get("workload")
    if a != b:
        raise UsageError(
            f"the candidate ({candidate.source}) and the baseline ({baseline.source}) run "
            f"different workloads ({a!r} vs {b!r}); latencies of different models are not a "
            "regression test"
        )


def _refuse_incomparable(
    candidate: Snapshot, baseline: Snapshot, pairs: list[Pair], options: GateOptions
) -> None:
    """Refuse pairs measured under different contracts or in different environments (unless
    the options allow it): their difference would be reported as the change's."""
    problems = []
    for cand, base in pairs:
        where = f"{cand.target} {short_params(cand.params)}"
        if not options.allow_different_contract:
            diff = _diff(dict(base.contract or {}), dict(cand.contract or {}))
            if diff:
                problems.append(
                    f"{where}: measurement contracts differ ({diff}): numbers taken with other "
                    "warm-up, stopping or percentile rules are not comparable "
                    "(--allow-different-contract to compare anyway)"
                )
        if not options.allow_different_env:
            fa = baseline.environments.get(base.env_id or "")
            fb = candidate.environments.get(cand.env_id or "")
            if fa is None or fb is None:
                diff = (
                    ""
                    if base.env_id == cand.env_id
                    else f"env_id {base.env_id} vs {cand.env_id}, fingerprint missing"
                )
            else:
                diff = _diff(fa, fb, IGNORED_ENV_KEYS)
            if diff:
                problems.append(
                    f"{where}: environments differ ({diff}): a difference in hardware or "
                    "library versions would be reported as a regression of the change "
                    "(--allow-different-env to compare anyway)"
                )
    if problems:
        raise UsageError(
            "refusing to compare the candidate with the baseline:\n  "
            + "\n  ".join(dict.fromkeys(problems))
        )


def _diff(a: dict[str, Any], b: dict[str, Any], ignore: frozenset[str] = frozenset()) -> str:
    return ", ".join(f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in differences(a, b, ignore))
