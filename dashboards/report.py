"""The job report: one self-contained HTML file (plotly.js inlined once, no CDN, opens offline).

It opens on one screen a lead can decide from: quality vs p95 latency (the fronts) and one row
per target of what would ship, with its quality change against fp32, the paired interval, the
images it broke and fixed and whether the change is significant. Then: the recommendation under
a budget (if given); the release note; quality vs p95 latency per target (front
highlighted, infeasible greyed, budget lines); cost per 1k vs p95 latency; throughput vs batch
size; each target's front as a table with speed-up and quality change against its baseline;
parameter importances; the environment and the measurement contract of each target.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pandas as pd

from dashboards.data import ReportData
from dashboards.figures import cell, figures, gpu_of, minus, missing, ratio
from dashboards.history_page import history_section
from farm._io import json_mapping
from farm.display import short_params
from farm.release.recommend import RULE
from farm.store.records import TrialRecord

# -- HTML ----------------------------------------------------------------------------------


def _table(headers: list[str], rows: list[list[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows
    )
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _size(n: Any) -> str:
    if n is None or pd.isna(n):
        return "—"
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def front_section(data: ReportData) -> str:
    parts = []
    for target in data.targets:
        t = data.of_target(target)
        base = data.baseline(target)
        c = data.counts[data.counts["target"] == target].iloc[0]
        summary = (
            f"{c['on_front']} on the front of {c['trials']} trials ({c['completed']} "
            f"completed, {c['infeasible']} infeasible, {c['failed']} failed)"
        )
        rows = []
        front = t[t["on_front"]].sort_values("latency_p95_ms")
        # CUDA targets: the GPU each point ran on, which also set its price
        gpus = "gpu_model" in front and bool(front["gpu_model"].notna().any())
        for r in front.itertuples():
            speed = ratio(base.latency_p95_ms if base else None, r.latency_p95_ms)
            dacc = minus(r.quality, base.quality if base else None)
            rows.append(
                [
                    r.trial_number,
                    short_params(r.params),
                    *([gpu_of(r) if not missing(gpu_of(r)) else "—"] if gpus else []),
                    r.precision_actual or "—",
                    cell(r.quality, ".4f"),
                    cell(dacc, "+.4f"),
                    *change_cells(data.comparisons.get((target, r.trial_number)))[::2],
                    cell(r.latency_p50_ms, ".3f"),
                    cell(r.latency_p95_ms, ".3f"),
                    cell(r.latency_p99_ms, ".3f"),
                    cell(speed, ".2f") + "×",
                    cell(r.throughput_ips, ",.0f"),
                    cell(r.cost_per_1k_usd, ".3g"),
                    _size(r.artifact_bytes),
                    "yes" if r.stable else "NO",
                ]
            )
        baseline_line = (
            "<p class='muted'>no completed baseline</p>"
            if base is None
            else f"<p>baseline #{base.trial_number} "
            f"({html.escape(short_params(base.params))}): "
            f"{html.escape(data.metric)} {cell(base.quality, '.4f')}, p95 "
            f"{cell(base.latency_p95_ms, '.3f')} ms, "
            f"{cell(base.throughput_ips, ',.0f')} img/s, {cell(base.cost_per_1k_usd, '.3g')} "
            "USD/1k</p>"
        )
        parts.append(
            f"<h3>{html.escape(target)}</h3><p>{summary}</p>{baseline_line}"
            + _table(
                [
                    "#",
                    "config",
                    *(["GPU"] if gpus else []),
                    "precision used",
                    data.metric,
                    f"Δ {data.metric} vs baseline",
                    "paired interval",
                    "verdict",
                    "p50 ms",
                    "p95 ms",
                    "p99 ms",
                    "p95 speed-up vs baseline",
                    "img/s",
                    "USD / 1k",
                    "artifact",
                    "stable",
                ],
                rows,
                "front",
            )
            + kpi_table(data, front, base)
            + excluded_table(t)
        )
    return "".join(parts)


#: KPIs shown beside each front point when the trials have them.
FRONT_KPIS = ("ece", "brier", "robustness", "worst_slice", "slice_gap", "fp_rate", "fn_rate")


def kpi_table(data: ReportData, front: pd.DataFrame, base: TrialRecord | None) -> str:
    """The release KPIs of each front point (and of the baseline), when the job recorded any."""
    rows_of = [(r.target, r.trial_number) for r in front.itertuples()]
    if base is not None:
        rows_of.insert(0, (base.target, base.trial_number))
    names = [k for k in FRONT_KPIS if any(k in data.metrics.get(key, {}) for key in rows_of)]
    if not names:
        return ""
    rows = []
    for target, number in rows_of:
        m = data.metrics.get((target, number), {})
        label = f"#{number}" + (" (baseline)" if base and number == base.trial_number else "")
        rows.append([label, *(cell(m.get(k), ".4f") for k in names)])
    return "<p>release KPIs of the front</p>" + _table(["#", *names], rows, "front")


def excluded_table(trials: pd.DataFrame) -> str:
    """Completed trials a job constraint excluded from the front, with the constraint."""
    done = trials[(trials["status"] == "completed") & ~trials["feasible"].fillna(False)]
    if done.empty or "infeasible_reason" not in done:
        return ""
    rows = [
        [r.trial_number, short_params(r.params), r.infeasible_reason or "—"]
        for r in done.itertuples()
    ]
    return "<p>excluded by a job constraint</p>" + _table(["#", "config", "constraint"], rows)


def change_cells(comparison: Any) -> list[str]:
    """Δ with its paired interval, flips, verdict (dashes without a comparison)."""
    if comparison is None:
        return ["—", "—", "—"]
    from farm.evidence.words import points

    c = comparison
    pct = f"{c.confidence:.0%}".replace("%", " %")
    return [
        f"{points(c.delta)} pt [{points(c.low)}, {points(c.high)}] at {pct}",
        f"{c.broken} broken, {c.fixed} fixed",
        c.verdict,
    ]


def decision_section(data: ReportData, chart: str) -> str:
    """The first screen: the fronts' chart and one row per target of what would ship."""
    rec = data.decision
    rows = []
    for target, choice in (rec.per_target if rec else {}).items():
        if choice.pick is None:
            rows.append([target, "NOTHING passes", "", "", "—", "—", "—", "", ""])
            continue
        p = choice.pick.trial
        rows.append(
            [
                target,
                f"#{p.trial_number} {short_params(p.params)}",
                p.precision_actual or "—",
                cell(p.quality, ".4f"),
                *change_cells(choice.pick.comparison),
                cell(p.latency_p95_ms, ".3f"),
                cell(p.cost_per_1k_usd, ".3g"),
            ]
        )
    basis = (
        f"budget {data.recommendation.budget.path}"
        if data.recommendation
        else "no budget: the cheapest feasible trial per target"
    )
    headers = [
        "target", "would ship", "precision", data.metric, f"Δ {data.metric} vs fp32",
        "images", "verdict", "p95 ms", "USD / 1k",
    ]  # fmt: skip
    return (
        f"<p class='muted'>What would ship ({html.escape(basis)}); the change is judged image "
        "by image against the target's fp32 baseline on the same eval images (seeded paired "
        "bootstrap).</p>" + _table(headers, rows, "front") + chart
    )


def recommendation_section(data: ReportData) -> str:
    rec = data.recommendation
    if rec is None:
        return (
            "<p class='muted'>No budget given (<code>farm report JOB --budget "
            "budgets.toml</code> adds the recommended configuration).</p>"
        )
    rows = []
    for target, choice in rec.per_target.items():
        limits = ", ".join(f"{k}={v:g}" for k, v in rec.budget.limits_for(target).items())
        if choice.pick is None:
            rows.append([target, limits, "NOTHING passes", "", "", "", ""])
            continue
        p = choice.pick.trial
        rows.append(
            [
                target,
                limits,
                f"#{p.trial_number} {short_params(p.params)}",
                cell(p.quality, ".4f"),
                cell(p.latency_p95_ms, ".3f"),
                cell(p.throughput_ips, ",.0f"),
                cell(p.cost_per_1k_usd, ".3g"),
            ]
        )
    overall = (
        "nothing meets the budget on any target"
        if rec.overall is None
        else f"{rec.overall.trial.target} #{rec.overall.trial.trial_number} "
        f"{short_params(rec.overall.trial.params)}"
    )
    return (
        f"<p><b>Overall: {html.escape(overall)}</b></p><p class='muted'>Rule: {RULE}. Budget "
        f"file: {html.escape(rec.budget.path)}.</p>"
        + _table(
            ["target", "limits", "recommended", data.metric, "p95 ms", "img/s", "USD / 1k"], rows
        )
    )


def environment_section(data: ReportData) -> str:
    parts = []
    for target in data.targets:
        t = data.of_target(target)
        envs = sorted(set(t["env_id"].dropna()))
        contracts = sorted(set(t["contract"].dropna()))
        parts.append(f"<h3>{html.escape(target)}</h3>")
        for env_id in envs:
            fp = data.environments.get(env_id, {})
            rows = [
                [k, json.dumps(v) if isinstance(v, dict | list) else v]
                for k, v in sorted(fp.items())
            ]
            parts.append(
                f"<p>environment <code>{html.escape(env_id)}</code></p>"
                + _table(["field", "value"], rows, "kv")
            )
        for c in contracts:
            rows = [[k, v] for k, v in sorted(json_mapping(c).items())]
            parts.append("<p>measurement contract</p>" + _table(["field", "value"], rows, "kv"))
        if len(contracts) > 1:
            parts.append(
                "<p class='warn'>trials of this target were measured under "
                f"{len(contracts)} different contracts</p>"
            )
    return "".join(parts)


def importance_notes(data: ReportData) -> str:
    return "".join(
        f"<p class='muted'>{html.escape(t)}: no importances ({html.escape(n)}).</p>"
        for t, n in data.importance_notes.items()
    )


CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
table{border-collapse:collapse;margin:8px 0 18px;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f4f4f4} td:nth-child(2){text-align:left}
table.kv td{text-align:left} .muted{color:#666} .warn{color:#b00}
.gallery figure{display:inline-block;margin:4px 8px 8px 0;font-size:12px}
"""


def render(data: ReportData) -> str:
    """The whole page. plotly.js is inlined once; each figure is a div plus its data."""
    import plotly.offline

    figs = figures(data)
    divs = {
        div_id: fig.to_html(
            full_html=False,
            include_plotlyjs=False,
            div_id=div_id,
            config={"displaylogo": False, "responsive": True},
        )
        for div_id, fig in figs.items()
    }
    job = data.job
    sampled = int(data.trials["sampled"].sum())
    total = int(data.counts["trials"].sum())
    note = (
        ""
        if len(data.trials) >= total
        else f"<p class='muted'>Plots show the fronts, the baselines and a sample of {sampled} of "
        f"the other trials ({total} trials in all); tables and counts use every trial.</p>"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>farm report: {html.escape(job.job_id)}</title>
<style>{CSS}</style>
<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script>
</head><body>
<h1>farm report: {html.escape(job.name)}</h1>
<p>job <code>{html.escape(job.job_id)}</code>, status {html.escape(job.status)},
created {html.escape(str(job.created_at))}. Quality is measured on each target's own runtime
on the whole eval split; latency is per query (one batch); cost per 1k inferences = price per hour
÷ (measured throughput × 3600) × 1000. The quality metric is <b>{html.escape(data.metric)}</b>;
speed-ups and its changes are against each target's fp32 batch-1 baseline on the same
hardware.</p>{note}
<h2>What would ship</h2>{decision_section(data, divs["fig-accuracy"])}
<h2>Images the candidates that would ship broke and fixed</h2>{data.gallery_html}
<h2>Recommended configuration</h2>{recommendation_section(data)}
<h2>Release note</h2>{data.card_html}
<h2>Cost vs latency</h2>{divs["fig-cost"]}
<h2>Throughput vs batch size</h2>{divs["fig-throughput"]}
<h2>Pareto fronts per target</h2>{front_section(data)}
<h2>Which knobs mattered</h2>{importance_notes(data)}{divs.get("fig-importance", "")}
<h2>Environment and measurement contract</h2>{environment_section(data)}
<h2>Release history</h2>{history_section(data)}
</body></html>
"""


def write_report(data: ReportData, path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(render(data), encoding="utf-8")
    return p
