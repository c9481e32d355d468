"""The model card (release note): what would ship on each target, every KPI against the fp32
baseline, latency and cost with the contract and environment they were measured under, the
artifact's hashes, and the candidates that were excluded and why.

``build_card`` reads only the store (a finished job's trials, metrics and environments) and
returns plain data; ``to_markdown`` and ``to_html`` render the same content (``farm card`` and
the HTML report).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from farm._io import json_mapping
from farm.display import cell, short_params, signed
from farm.release.budget import Budget, Limits
from farm.release.recommend import RULE, TargetChoice, recommend
from farm.store.records import JobRecord, TrialRecord

if TYPE_CHECKING:
    from farm.evidence.paired import Comparison
    from farm.store.db import Store

#: KPIs shown first, in this order, when the trials have them (then slices, robustness…).
HEADLINE = (
    "ece",
    "ece_adaptive",
    "brier",
    "nll",
    "robustness",
    "worst_slice",
    "slice_gap",
    "fp_rate",
    "fn_rate",
    "threshold",
)
#: Groups of per-item metrics shown in their own table, by prefix.
GROUPS = (
    ("slice/", "Slices"),
    ("robust/", "Robustness: quality under each corruption"),
    ("acc/", "Per class"),
    ("ap/", "Per class (AP)"),
    ("iou/", "Per class (IoU)"),
)
#: Per-class tables longer than this show only the classes that moved most.
MAX_ROWS = 12


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]


@dataclass
class TargetCard:
    target: str
    summary: str
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Card:
    job: JobRecord
    metric: str
    basis: str
    targets: list[TargetCard]


def build_card(
    store: Store,
    job_ref: str,
    budget: Budget | None = None,
    trials: list[TrialRecord] | None = None,
) -> Card:
    """The card of a job: per target, the configuration the budget recommends (without a
    budget: the one the recommend rule picks among the feasible trials). ``trials`` (with their
    ``metrics``): the ones to consider, when not all of the job's (a huge job's report)."""
    job = store.resolve_job(job_ref)
    if trials is None:
        trials = store.trials(job.job_id)
    envs = store.environments(job.job_id)
    targets = sorted({t.target for t in trials})
    if budget is None:
        budget = Budget("(no budget)", Limits(), {t: Limits() for t in targets})
        basis = f"no budget: the recommend rule ({RULE}) among the feasible trials"
    else:
        basis = f"budget {budget.path}: {RULE}"
    paired = {k: c for k, (_, c) in store.comparisons(job.job_id).items()}
    kpis: dict[tuple[str, int], dict[str, Comparison]] = {}
    for key, (_, c) in store.comparisons(job.job_id, kpis=True).items():
        target, number, name = key  # with kpis: keyed (target, trial, metric)
        kpis.setdefault((target, number), {})[name] = c
    rec = recommend(job.job_id, trials, budget, targets, paired)
    metric = next((t.quality_metric for t in trials if t.quality_metric), "accuracy")
    cards = []
    for target, choice in rec.per_target.items():
        base = next(
            (t for t in trials if t.target == target and t.is_baseline and t.completed), None
        )
        pick = choice.pick.trial if choice.pick else None
        judged = kpis.get((target, pick.trial_number), {}) if pick else {}
        cards.append(_target_card(target, pick, base, choice, metric, envs, judged))
    return Card(job, metric, basis, cards)


def _target_card(
    target: str,
    pick: TrialRecord | None,
    base: TrialRecord | None,
    choice: TargetChoice,
    metric: str,
    envs: dict[str, dict[str, Any]],
    judged: dict[str, Comparison] | None = None,
) -> TargetCard:
    """``judged``: the pick's paired comparisons with the baseline, by metric (the KPI tables
    show their intervals)."""
    if pick is None:
        card = TargetCard(target, "**Nothing to ship**: no configuration meets the budget.")
        card.tables.append(_excluded(choice, None))
        return card
    summary = (
        f"Ship trial #{pick.trial_number}: `{short_params(pick.params)}` "
        f"(runs as {pick.precision_actual or '—'})"
    )
    if choice.pick is not None and choice.pick.comparison is not None:
        from farm.evidence.words import describe

        label = pick.precision_actual or pick.precision or f"#{pick.trial_number}"
        summary += f". Against fp32, image by image: {describe(choice.pick.comparison, label)}"
    card = TargetCard(target, summary)
    mine, theirs = pick.quality_metrics, base.quality_metrics if base else {}
    headline = [metric, *[m for m in HEADLINE if m in mine and m != metric]]
    judged = judged or {}
    card.tables.append(
        _kpi_table("KPIs against the fp32 batch-1 baseline", headline, mine, theirs, judged)
    )
    for prefix, title in GROUPS:
        names = sorted(n for n in mine if n.startswith(prefix))
        if len(names) > MAX_ROWS:
            names = sorted(names, key=lambda n: -abs(mine[n] - theirs.get(n, mine[n])))[:MAX_ROWS]
            title += f" (the {MAX_ROWS} that moved most)"
        if names:
            card.tables.append(_kpi_table(title, names, mine, theirs, judged))
    card.tables.append(_performance(pick, base))
    card.tables.append(_provenance(pick, envs))
    card.tables.append(_excluded(choice, pick))
    if pick.stable is False:
        card.notes.append(f"the measurement is marked unstable: {pick.unstable_reason}")
    return card


def _num(value: Any, fmt: str = ".4f") -> str:
    return cell("{:" + fmt + "}", value)


def _kpi_table(
    title: str,
    names: list[str],
    mine: dict[str, float],
    base: dict[str, float],
    judged: dict[str, Comparison],
) -> Table:
    """Baseline, release and change of each KPI; where the KPI was judged image by image, the
    change's paired interval and whether it is significant."""
    rows = []
    for name in names:
        value, ref = mine.get(name), base.get(name)
        delta = None if value is None or ref is None else value - ref
        rows.append([name, _num(ref), _num(value), _num(delta, "+.4f")])
    columns = ["metric", "baseline", "release", "change"]
    if any(name in judged for name in names):
        confidence = next(judged[n].confidence for n in names if n in judged)
        columns.append(f"paired {confidence:.0%} interval".replace("%", " %"))
        for name, row in zip(names, rows, strict=True):
            c = judged.get(name)
            said = "" if c is None else f"[{signed(c.low)}, {signed(c.high)}]"
            if c is not None and c.significant:
                said += f" {c.verdict}"
            row.append(said or "—")
    return Table(title, columns, rows)


def _performance(pick: TrialRecord, base: TrialRecord | None) -> Table:
    cols = (
        ("p50 latency (ms)", "latency_p50_ms", ".3f"),
        ("p95 latency (ms)", "latency_p95_ms", ".3f"),
        ("p99 latency (ms)", "latency_p99_ms", ".3f"),
        ("throughput (img/s)", "throughput_ips", ",.0f"),
        ("cost per 1k inferences (USD)", "cost_per_1k_usd", ".3g"),
        ("price per hour (USD)", "price_per_hour_usd", ".4g"),
    )
    rows = [
        [label, _num(getattr(base, key) if base else None, fmt), _num(getattr(pick, key), fmt)]
        for label, key, fmt in cols
    ]
    rows.append(["batch size / threads", _bt(base), _bt(pick)])
    return Table("Latency and cost", ["", "baseline", "release"], rows)


def _bt(trial: TrialRecord | None) -> str:
    return "—" if trial is None else f"{trial.batch_size} / {trial.threads}"


def _provenance(pick: TrialRecord, envs: dict[str, dict[str, Any]]) -> Table:
    contract = json_mapping(pick.contract)
    env = envs.get(pick.env_id or "", {})
    runtimes = env.get("packages") or {}
    rows = [
        ["artifact hash", f"`{pick.artifact_hash}`"],
        ["artifact cache key", f"`{pick.build_key}`"],
        ["candidate hash", f"`{pick.candidate_hash}`"],
        [
            "measurement contract",
            ", ".join(f"{k}={v}" for k, v in sorted(contract.items()) if v is not None),
        ],
        ["stable", str(pick.stable)],
        ["node", f"{pick.node_host} ({pick.node_ip or 'ip not recorded'})"],
        ["environment", f"`{pick.env_id}`: {env.get('cpu_model', '?')}"],
    ]
    if runtimes:
        rows.append(["packages", ", ".join(f"{k} {v}" for k, v in sorted(runtimes.items()))])
    if env.get("farm_commit"):
        rows.append(["farm commit", f"`{env['farm_commit']}`"])
    return Table("Provenance", ["", ""], rows)


def _excluded(choice: TargetChoice, pick: TrialRecord | None) -> Table:
    rows = [
        [f"#{v.trial.trial_number}", short_params(v.trial.params), v.reason(pick)]
        for v in choice.others
    ]
    return Table("Other candidates and why they were not chosen", ["trial", "config", "why"], rows)


# -- rendering -------------------------------------------------------------------------------


def to_markdown(card: Card) -> str:
    job = card.job
    out = [
        f"# Release note: {job.name}",
        "",
        f"Job `{job.job_id}` ({job.status}, {job.created_at:%Y-%m-%d %H:%M} UTC"
        + (f", label `{job.label}`" if job.label else "")
        + f"). Quality metric: **{card.metric}**, measured on each target's own runtime on "
        "the whole eval split. Choice: " + card.basis + ".",
        *(["", f"Calibration set: {job.calibration}."] if job.calibration else []),
    ]
    for t in card.targets:
        out += ["", f"## {t.target}", "", t.summary]
        for table in t.tables:
            out += ["", f"### {table.title}", ""]
            if not table.rows:
                out.append("(none)")
                continue
            out.append("| " + " | ".join(table.headers) + " |")
            out.append("|" + "---|" * len(table.headers))
            out += ["| " + " | ".join(_md(c) for c in row) + " |" for row in table.rows]
        out += [f"> note: {n}" for n in t.notes]
    return "\n".join(out) + "\n"


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_html(card: Card) -> str:
    """The card's content as an HTML fragment (for the report)."""
    parts = [
        f"<p>Quality metric: <b>{html.escape(card.metric)}</b>. {html.escape(card.basis)}.</p>"
    ]
    if card.job.calibration:
        parts.append(f"<p>Calibration set: {html.escape(card.job.calibration)}.</p>")
    for t in card.targets:
        summary = html.escape(t.summary).replace("**", "")
        parts.append(f"<h3>{html.escape(t.target)}</h3><p>{summary}</p>")
        for table in t.tables:
            head = "".join(f"<th>{html.escape(h)}</th>" for h in table.headers)
            body = "".join(
                "<tr>"
                + "".join(f"<td>{html.escape(str(c).replace('`', ''))}</td>" for c in row)
                + "</tr>"
                for row in table.rows
            )
            parts.append(
                f"<h4>{html.escape(table.title)}</h4><table><thead><tr>{head}</tr></thead>"
                f"<tbody>{body}</tbody></table>"
            )
        parts += [f"<p class='muted'>note: {html.escape(n)}</p>" for n in t.notes]
    return "".join(parts)
