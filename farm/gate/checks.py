"""The CI gate: budgets checked with confidence, and regressions tested on raw samples.

* Budget: per budgeted target, the configuration ``recommend`` would ship (its rule, in order)
  must meet every limit with the latency limits checked against a distribution-free upper
  confidence bound on the percentile (:func:`farm.release.significance.percentile_upper_bound`),
  not the
  point estimate. If the first choice fails only on the bound, the next passing one is tried.
* Regression: each configuration completed in both the candidate and the baseline job (same
  workload, target and params) is compared on its raw samples: a regression is a median
  slowdown above the threshold that the one-sided Mann-Whitney U test finds significant; an
  accuracy drop above a tolerance is a regression too.
* Confirmation: before a latency comparison is judged, the configurations whose stored
  slowdown leaves room for a regression are re-measured, both artifacts interleaved on one node
  (:mod:`farm.gate.confirm`), and those paired measurements decide. Without the artifacts the
  store-only rule applies, labelled as such; ``--no-confirm`` keeps the store-only rule.
* Measurements under different contracts or environments are refused unless allowed.

A baseline is a job in a store or a ``farm export --format json`` file (:class:`Snapshot`).
"""

from __future__ import annotations

import datetime as dt
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farm.display import short_params
from farm.errors import UsageError
from farm.gate.confirm import STATISTIC, NotConfirmed, min_rounds, wants_confirmation
from farm.gate.kpi import kpi_checks
from farm.release.budget import LATENCY_PERCENTILE, LIMITS, Budget, Limits, check
from farm.release.recommend import recommend
from farm.release.significance import (
    DEFAULT_ALPHA,
    DEFAULT_THRESHOLD,
    Comparison,
    compare,
    percentile_upper_bound,
)
from farm.store.db import Store

if TYPE_CHECKING:
    from farm.gate.confirm import Confirmation, Confirmer

EXPORT_FORMAT = "farm-export"
EXPORT_VERSION = 1


def as_dict(value: Any) -> dict[str, Any]:
    """A JSON column (stored as text) or an already-parsed mapping, as a dict."""
    if value is None:
        return {}
    return json.loads(value) if isinstance(value, str) else dict(value)


def canonical(value: Any) -> str:
    return json.dumps(as_dict(value), sort_keys=True)


@dataclass
class Snapshot:
    """A job as read from the store or from a ``farm export --format json`` file: its row, its
    trials, their raw latency samples and the environments they ran in. The JSON export is this
    object written out, so CI can keep one file as its gate baseline instead of a whole store."""

    source: str
    job: dict[str, Any]
    trials: list[dict[str, Any]]
    #: (target, trial_number) -> raw latency samples, ms per query, in measurement order.
    samples: dict[tuple[str, int], list[float]] = field(default_factory=dict)
    #: env_id -> fingerprint.
    environments: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Folder of the job's artifacts, laid out as the artifact cache (``<build_key>/``): the
    #: store's ``artifacts/`` folder, or what ``farm export --with-artifacts`` recorded.
    artifacts_dir: Path | None = None

    @property
    def job_id(self) -> str:
        return str(self.job["job_id"])

    @property
    def spec(self) -> dict[str, Any]:
        return as_dict(self.job.get("spec"))

    @property
    def targets(self) -> list[str]:
        return sorted({t["target"] for t in self.trials})

    @classmethod
    def from_store(cls, store: Store, ref: str, with_samples: bool = True) -> Snapshot:
        job = store.resolve_job(ref)
        job_id = job["job_id"]
        trials = store.trials_with_metrics(job_id)  # KPIs (ece, robustness, …) under "metrics"
        samples: dict[tuple[str, int], list[float]] = {}
        if with_samples:
            for r in store.query(
                "SELECT target, trial_number, list(latency_ms ORDER BY seq) AS s "
                "FROM latency_samples WHERE job_id = ? GROUP BY ALL",
                [job_id],
            ):
                samples[(r["target"], r["trial_number"])] = list(r["s"])
        envs = {
            r["env_id"]: as_dict(r["fingerprint"])
            for r in store.query(
                "SELECT env_id, fingerprint FROM environments WHERE env_id IN "
                "(SELECT DISTINCT env_id FROM trials WHERE job_id = ?)",
                [job_id],
            )
        }
        source = f"job {job_id} in {store.path}"
        return cls(source, job, trials, samples, envs, store.path.parent / "artifacts")

    @classmethod
    def from_file(cls, path: str | Path) -> Snapshot:
        """Read a ``farm export --format json`` file."""
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except OSError as exc:
            raise UsageError(f"{p}: cannot read the baseline file ({exc.strerror})") from exc
        except json.JSONDecodeError as exc:
            raise UsageError(
                f"{p}: not JSON ({exc}); expected `farm export --format json`"
            ) from exc
        if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
            got = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise UsageError(
                f"{p}: field `format`: expected {EXPORT_FORMAT!r} (a `farm export --format json` "
                f"file), got {got!r}"
            )
        if data.get("version") != EXPORT_VERSION:
            raise UsageError(
                f"{p}: field `version`: expected {EXPORT_VERSION}, got {data.get('version')!r}"
            )
        for key, kind in (("job", dict), ("trials", list), ("environments", dict)):
            if not isinstance(data.get(key), kind):
                raise UsageError(f"{p}: field `{key}`: expected a JSON {kind.__name__}")
        trials, samples = [], {}
        for i, t in enumerate(data["trials"]):
            missing = {"target", "trial_number", "params", "status"} - set(t)
            if missing:
                raise UsageError(f"{p}: field `trials[{i}]`: missing {sorted(missing)}")
            t = dict(t)
            s = t.pop("latency_samples_ms", None) or []
            if s:
                samples[(t["target"], int(t["trial_number"]))] = [float(x) for x in s]
            trials.append(t)
        artifacts = data.get("artifacts")
        artifacts_dir = None
        if artifacts is not None:
            if not isinstance(artifacts, dict) or not isinstance(artifacts.get("dir"), str):
                raise UsageError(
                    f"{p}: field `artifacts`: expected an object with a `dir` string (the folder "
                    f"`farm export --with-artifacts` wrote), got {artifacts!r}"
                )
            artifacts_dir = p.parent / artifacts["dir"]  # relative to the file; absolute stays
        return cls(str(p), data["job"], trials, samples, data["environments"], artifacts_dir)

    def to_json(self, artifacts_dir: str | None = None) -> dict[str, Any]:
        """The export document: job, trials (params/contract as objects, raw samples inline;
        each trial's ``build_key`` and ``artifact_hash`` name its artifact), and with
        ``artifacts_dir`` the folder its artifacts were copied to (relative to the file)."""
        trials = []
        for t in self.trials:
            row = {k: _jsonable(v) for k, v in t.items()}
            row["params"] = as_dict(t.get("params"))
            row["contract"] = as_dict(t.get("contract")) or None
            row["latency_samples_ms"] = self.samples.get((t["target"], t["trial_number"]), [])
            trials.append(row)
        job = {k: _jsonable(v) for k, v in self.job.items()}
        job["spec"] = self.spec
        doc = {
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "job": job,
            "trials": trials,
            "environments": self.environments,
        }
        if artifacts_dir is not None:
            doc["artifacts"] = {"dir": artifacts_dir}
        return doc


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


# -- the gate ------------------------------------------------------------------------------

#: Fingerprint keys that may differ between a baseline and a candidate: the farm's own commit is
#: exactly what a CI gate compares, so it cannot be a reason to refuse.
IGNORED_ENV_KEYS = frozenset({"farm_commit"})
#: Default tolerance on accuracy: a drop larger than this (absolute) is a regression. Accuracy is
#: measured on the whole eval split, deterministically, so there is no sampling noise to test.
DEFAULT_ACCURACY_TOLERANCE = 0.002


@dataclass(frozen=True)
class GateOptions:
    threshold: float = DEFAULT_THRESHOLD
    alpha: float = DEFAULT_ALPHA
    accuracy_tolerance: float = DEFAULT_ACCURACY_TOLERANCE
    #: Overrides the budget file's ``confidence`` when set.
    confidence: float | None = None
    allow_different_env: bool = False
    allow_different_contract: bool = False
    #: Overrides of :data:`farm.gate.kpi.DEFAULT_TOLERANCES` (``--kpi-tolerance NAME=VALUE``).
    kpi_tolerances: dict[str, float] = field(default_factory=dict)


#: How a latency check was decided (``Check.basis``).
BASIS_STORE = "store"  # the store-only test: confirmation off, or not needed
BASIS_CONFIRMED = "confirmed"  # the interleaved re-measurement decided
BASIS_FALLBACK = "store-fallback"  # confirmation wanted but impossible: the store-only test


@dataclass(frozen=True)
class Check:
    """One line of the gate's verdict."""

    kind: str  # job | budget | latency | accuracy
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
    options: GateOptions = GateOptions(),
    confirmer: Confirmer | None = None,
) -> GateResult:
    """Budget checks on the candidate job, then regression checks against the baseline, with
    latency regressions confirmed by ``confirmer`` (None: the store-only rule)."""
    if budget is None and baseline is None:
        raise UsageError("nothing to check: give --budget, --baseline or --baseline-file")
    checks: list[Check] = []
    notes: list[str] = []
    status = candidate.job.get("status")
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
    unstable = [
        f"{t['target']} #{t['trial_number']}" for t in candidate.trials if t.get("stable") is False
    ]
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
            row = verdict.trial
            bounded, detail = _bounded(candidate, row, limits, confidence)
            violations = check(limits, bounded, basis=f"{confidence:.0%} upper bound")
            label = f"#{row['trial_number']} ({short_params(row['params'])})"
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
    snap: Snapshot, row: dict[str, Any], limits: Limits, confidence: float
) -> tuple[dict[str, Any], str]:
    """The row with each budgeted latency percentile replaced by its upper confidence bound."""
    values = dict(row)
    parts = []
    samples = snap.samples.get((row["target"], row["trial_number"]), [])
    for name, _ in limits.items():
        q = LATENCY_PERCENTILE.get(name)
        if q is None:
            continue
        column = LIMITS[name][0]
        if not samples:
            values[column] = None  # no raw samples: no bound, so the limit fails
            parts.append(f"p{q:g}: no raw samples stored")
            continue
        bound = percentile_upper_bound(samples, q, confidence)
        values[column] = bound
        parts.append(
            f"p{q:g} {row[column]:.3g} ms, {confidence:.0%} upper bound {bound:.3g} ms "
            f"(n={len(samples)})"
        )
    return values, (": " + ", ".join(parts)) if parts else ""


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
    stored: list[Comparison | None] = []
    for cand, base in pairs:
        a = baseline.samples.get((base["target"], base["trial_number"]), [])
        b = candidate.samples.get((cand["target"], cand["trial_number"]), [])
        method = as_dict(cand.get("contract")).get("percentile_method", "inverted_cdf")
        stored.append(
            compare(a, b, options.threshold, options.alpha, method=method) if a and b else None
        )
    chosen = _to_confirm(stored, confirmer)
    for i, ((cand, base), c) in enumerate(zip(pairs, stored, strict=True)):
        label = f"{cand['target']} {short_params(cand['params'])}"
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
        drop = float(base["accuracy"]) - float(cand["accuracy"])
        ok = drop <= options.accuracy_tolerance
        checks.append(
            Check(
                "accuracy",
                f"{label}: accuracy",
                ok,
                f"{'REGRESSION' if not ok else 'ok'}: accuracy {base['accuracy']:.4f} → "
                f"{cand['accuracy']:.4f} ({-drop:+.4f}; tolerance {options.accuracy_tolerance:g})",
            )
        )
        checks += [
            Check("kpi", f"{label}: {k.name}", k.passed, k.message)
            for k in kpi_checks(
                as_dict(cand.get("metrics")), as_dict(base.get("metrics")), options.kpi_tolerances
            )
        ]
    if confirmer is not None:
        notes += _confirmation_notes(checks, confirmer)
    return checks, notes


def _to_confirm(stored: list[Comparison | None], confirmer: Confirmer | None) -> set[int]:
    """Indices of the comparisons to re-measure: those the rule wants, largest stored slowdown
    first, at most the confirmer's limit."""
    if confirmer is None:
        return set()
    drift = confirmer.options.drift
    wanted = [i for i, c in enumerate(stored) if c is not None and wants_confirmation(c, drift)]
    wanted.sort(key=lambda i: -stored[i].slowdown)  # type: ignore[union-attr]
    return set(wanted[: confirmer.options.limit])


def _why_not_chosen(c: Comparison, confirmer: Confirmer) -> str:
    if wants_confirmation(c, confirmer.options.drift):
        return (
            f"store only, not confirmed: over the limit of {confirmer.options.limit} "
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
            f"below it (no regression), at most {confirmer.options.max_rounds} rounds (then the "
            "median decides)"
        )
    if fallback:
        notes.append(
            f"STORE-ONLY: {len(fallback)} latency verdict(s) could not be confirmed by "
            "re-measurement and rest on the stored samples alone: "
            + "; ".join(c.name.removesuffix(": latency") for c in fallback)
        )
    return notes


def match_trials(
    candidate: Snapshot, baseline: Snapshot
) -> tuple[list[tuple[dict[str, Any], dict[str, Any]]], list[str]]:
    """Pairs (candidate trial, baseline trial) with the same target and params, both completed.
    When a configuration was measured twice in one job, its latest trial is used."""

    def index(snap: Snapshot) -> dict[tuple[str, str], dict[str, Any]]:
        out = {}
        for t in sorted(snap.trials, key=lambda t: t["trial_number"]):
            if t.get("status") == "completed":
                out[(t["target"], canonical(t["params"]))] = t
        return out

    base = index(baseline)
    pairs, unmatched = [], []
    for key, cand in sorted(index(candidate).items()):
        if key in base:
            pairs.append((cand, base[key]))
        else:
            unmatched.append(f"{cand['target']} #{cand['trial_number']}")
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
    candidate: Snapshot,
    baseline: Snapshot,
    pairs: list[tuple[dict[str, Any], dict[str, Any]]],
    options: GateOptions,
) -> None:
    problems = []
    for cand, base in pairs:
        where = f"{cand['target']} {short_params(cand['params'])}"
        if not options.allow_different_contract:
            diff = _diff(as_dict(base.get("contract")), as_dict(cand.get("contract")))
            if diff:
                problems.append(
                    f"{where}: measurement contracts differ ({diff}): numbers taken with other "
                    "warm-up, stopping or percentile rules are not comparable "
                    "(--allow-different-contract to compare anyway)"
                )
        if not options.allow_different_env:
            fa = baseline.environments.get(base.get("env_id") or "")
            fb = candidate.environments.get(cand.get("env_id") or "")
            if fa is None or fb is None:
                diff = (
                    ""
                    if base.get("env_id") == cand.get("env_id")
                    else (
                        f"env_id {base.get('env_id')} vs {cand.get('env_id')}, fingerprint missing"
                    )
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
    keys = sorted((set(a) | set(b)) - ignore)
    return ", ".join(f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in keys if a.get(k) != b.get(k))


# -- output --------------------------------------------------------------------------------


def render_text(result: GateResult) -> str:
    lines = [f"farm gate: candidate {result.candidate}"]
    if result.baseline:
        lines.append(f"baseline {result.baseline}")
    for c in result.checks:
        lines.append(f"{'PASS' if c.passed else 'FAIL'}  {c.name}: {c.message}")
        if c.confirmation is not None:
            ratios = " ".join(f"{r.ratio - 1:+.1%}" for r in c.confirmation.rounds)
            lines.append(f"      per-round ratios ({STATISTIC}, in order): {ratios}")
    lines += [f"note: {n}" for n in result.notes]
    n_fail = len(result.failures)
    lines.append(
        "gate PASSED" if result.passed else f"gate FAILED: {n_fail} of {len(result.checks)} checks"
    )
    return "\n".join(lines)


def render_markdown(result: GateResult) -> str:
    """GitHub-flavoured markdown (for ``$GITHUB_STEP_SUMMARY`` or a PR comment)."""
    head = "✅ passed" if result.passed else f"❌ failed ({len(result.failures)} checks)"
    lines = [f"## farm gate: {head}", "", f"- candidate: `{result.candidate}`"]
    if result.baseline:
        lines.append(f"- baseline: `{result.baseline}`")
    lines += ["", "| | check | details |", "|---|---|---|"]
    ordered = sorted(result.checks, key=lambda c: c.passed)  # failures first
    for c in ordered:
        lines.append(f"| {'✅' if c.passed else '❌'} | {_md(c.name)} | {_md(c.message)} |")
    lines += _markdown_confirmations(result.checks)
    if result.notes:
        lines += ["", *[f"> {_md(n)}" for n in result.notes]]
    return "\n".join(lines) + "\n"


def _markdown_confirmations(checks: list[Check]) -> list[str]:
    """The latency confirmations (a summary row each, their rounds folded) and the verdicts
    that rest on the store alone."""
    confirmed = [c for c in checks if c.confirmation is not None]
    fallback = [c for c in checks if c.basis == BASIS_FALLBACK]
    if not confirmed and not fallback:
        return []
    lines = ["", "### Latency confirmation (both artifacts re-measured, interleaved)"]
    if confirmed:
        lines += [
            "",
            f"| | configuration | store alone | re-measured: median paired {STATISTIC} ratio "
            "| interval | rounds | node | time |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for c in confirmed:
            conf = c.confirmation
            assert conf is not None and conf.verdict is not None
            v = conf.verdict
            store = f"{'REGRESSION' if conf.store.regression else 'ok'} {conf.store.slowdown:+.1%}"
            lines.append(
                f"| {'✅' if c.passed else '❌'} | {_md(conf.label)} | {store} | "
                f"**{v.ratio - 1:+.1%}** ({'REGRESSION' if v.regression else 'ok'}; "
                f"by {v.decided_by}) | [{v.low - 1:+.1%}, {v.high - 1:+.1%}] | "
                f"{len(conf.rounds)} | {_md(conf.node_host)} | {conf.wall_s:.0f} s |"
            )
        for c in confirmed:
            conf = c.confirmation
            assert conf is not None
            lines += [
                "",
                f"<details><summary>rounds of {_md(conf.label)} (inputs: {_md(conf.inputs)})"
                "</summary>",
                "",
                f"| round | order | baseline {STATISTIC} ms | candidate {STATISTIC} ms | ratio | "
                "baseline p50 ms | candidate p50 ms |",
                "|---|---|---|---|---|---|---|",
            ]
            for i, r in enumerate(conf.rounds, 1):
                lines.append(
                    f"| {i} | {r.order} | {r.baseline_ms:.4g} | {r.candidate_ms:.4g} | "
                    f"{r.ratio - 1:+.1%} | {r.baseline_p50_ms:.4g} | {r.candidate_p50_ms:.4g} |"
                )
            lines += ["", "</details>"]
    for c in fallback:
        lines += ["", f"> ⚠️ **store only** for {_md(c.name)}: {_md(c.message)}"]
    return lines


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_junit(result: GateResult) -> str:
    """JUnit XML: one test suite per kind of check, one test case per check. A latency case
    carries how it was decided (property ``basis``) and, when re-measured, the confirmation's
    figures as properties and its rounds in ``system-out``."""
    root = ET.Element(
        "testsuites",
        name="farm gate",
        tests=str(len(result.checks)),
        failures=str(len(result.failures)),
    )
    for kind in ("budget", "latency", "accuracy", "kpi"):
        of_kind = [c for c in result.checks if c.kind == kind]
        if not of_kind:
            continue
        suite = ET.SubElement(
            root,
            "testsuite",
            name=f"farm gate: {kind}",
            tests=str(len(of_kind)),
            failures=str(sum(not c.passed for c in of_kind)),
        )
        for c in of_kind:
            case = ET.SubElement(
                suite, "testcase", classname=f"farm.gate.checks.{kind}", name=c.name
            )
            out = c.message
            if kind == "latency":
                props = ET.SubElement(case, "properties")
                for key, value in _junit_properties(c).items():
                    ET.SubElement(props, "property", name=key, value=value)
                if c.confirmation is not None:
                    out += "\n" + _rounds_text(c.confirmation)
            if not c.passed:
                failure = ET.SubElement(case, "failure", message=c.message, type=f"{kind}-failure")
                failure.text = c.message
            if c.passed or c.confirmation is not None:
                ET.SubElement(case, "system-out").text = out
    if result.notes:
        ET.SubElement(root, "system-out").text = "\n".join(result.notes)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _junit_properties(c: Check) -> dict[str, str]:
    props = {"basis": c.basis}
    conf = c.confirmation
    if conf is not None and conf.verdict is not None:
        v = conf.verdict
        props.update(
            {
                "confirmation.statistic": STATISTIC,
                "confirmation.rounds": str(len(conf.rounds)),
                "confirmation.ratio": f"{v.ratio:.4f}",
                "confirmation.ratio_low": f"{v.low:.4f}",
                "confirmation.ratio_high": f"{v.high:.4f}",
                "confirmation.decided_by": v.decided_by,
                "confirmation.regression": str(v.regression).lower(),
                "confirmation.node": conf.node_host,
                "confirmation.wall_s": f"{conf.wall_s:.1f}",
                "store.ratio": f"{conf.store.ratio:.4f}",
                "store.regression": str(conf.store.regression).lower(),
            }
        )
    return props


def _rounds_text(conf: Confirmation) -> str:
    head = f"baseline_{STATISTIC}_ms candidate_{STATISTIC}_ms ratio baseline_p50 candidate_p50"
    lines = [f"round order {head}"]
    for i, r in enumerate(conf.rounds, 1):
        lines.append(
            f"{i} {r.order} {r.baseline_ms:.4g} {r.candidate_ms:.4g} {r.ratio:.4f} "
            f"{r.baseline_p50_ms:.4g} {r.candidate_p50_ms:.4g}"
        )
    return "\n".join(lines)
