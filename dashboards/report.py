"""The job report: one self-contained HTML file (plotly.js inlined once, no CDN, opens offline).

Sections: the recommendation under a budget (if given); quality vs p95 latency per target (front
highlighted, infeasible greyed, budget lines); cost per 1k vs p95 latency; throughput vs batch
size; each target's front as a table with speed-up and quality change against its baseline;
parameter importances; the environment and the measurement contract of each target.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboards.data import ReportData
from dashboards.history_page import history_section
from farm._io import json_mapping
from farm.display import short_params
from farm.release.recommend import RULE
from farm.store.records import TrialRecord

GREY = "#b8b8b8"
FRONT = "#d62728"
OTHER = "#1f77b4"
BASELINE = "#2ca02c"
BUDGET = "#ff7f0e"
PALETTE = ("#1f77b4", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")

#: Plotly div ids, in page order (the browser test counts their traces).
FIGURES = ("fig-accuracy", "fig-cost", "fig-throughput", "fig-importance")


def _hover(df: pd.DataFrame) -> list[str]:
    return [
        f"#{r.trial_number} {html.escape(short_params(r.params))}<br>"
        f"{html.escape(str(r.quality_metric))} {_f(r.quality, '.4f')}, "
        f"p95 {_f(r.latency_p95_ms, '.3g')} ms, "
        f"{_f(r.throughput_ips, ',.0f')} img/s, {_f(r.cost_per_1k_usd, '.3g')} USD/1k"
        + ("" if _missing(_gpu(r)) else f"<br>on {html.escape(str(_gpu(r)))}")
        for r in df.itertuples()
    ]


def _gpu(row: Any) -> Any:
    """The GPU a trial ran on (CUDA targets; the store's ``gpu_model``), or None."""
    return getattr(row, "gpu_model", None)


def _missing(value: Any) -> bool:
    return value is None or bool(pd.isna(value))


def _ratio(a: float | None, b: float | None) -> float:
    return math.nan if _missing(a) or _missing(b) or not b else float(a) / float(b)  # type: ignore[arg-type]


def _minus(a: float | None, b: float | None) -> float:
    return math.nan if _missing(a) or _missing(b) else float(a) - float(b)  # type: ignore[arg-type]


def _f(value: Any, fmt: str) -> str:
    if value is None or pd.isna(value):
        return "—"
    return format(value, fmt)


def _scatter(df: pd.DataFrame, x: str, y: str, name: str, **marker: Any) -> go.Scatter:
    return go.Scatter(
        x=df[x].tolist(),
        y=df[y].tolist(),
        mode="markers",
        name=name,
        text=_hover(df),
        hoverinfo="text",
        marker=marker,
    )


def quality_figure(data: ReportData) -> go.Figure:
    """Quality (the task's metric) vs p95 latency, one panel per target, 4 traces per panel
    (front, other feasible, infeasible, baseline; empty ones kept so the legend is the same
    everywhere)."""
    targets = data.targets
    fig = make_subplots(rows=1, cols=len(targets), subplot_titles=targets, shared_yaxes=True)
    for i, target in enumerate(targets, start=1):
        t = data.of_target(target)
        done = t[t["status"] == "completed"]
        feasible = done["feasible"].fillna(False).astype(bool)
        groups = (
            ("Pareto front", done[done["on_front"]], dict(color=FRONT, size=11, symbol="diamond")),
            ("other feasible", done[feasible & ~done["on_front"]], dict(color=OTHER, size=7)),
            ("infeasible", done[~feasible], dict(color=GREY, size=7, symbol="x")),
            (
                "baseline (fp32, batch 1)",
                done[done["is_baseline"]],
                dict(color=BASELINE, size=14, symbol="star-open", line=dict(width=2)),
            ),
        )
        for name, rows, marker in groups:
            trace = _scatter(rows, "latency_p95_ms", "quality", name, **marker)
            trace.update(legendgroup=name, showlegend=i == 1)
            fig.add_trace(trace, row=1, col=i)
        _budget_lines(fig, data, target, i)
        fig.update_xaxes(title_text="p95 latency per query (ms)", type="log", row=1, col=i)
    fig.update_yaxes(title_text=f"{data.metric} (on the target runtime)", row=1, col=1)
    fig.update_layout(title=f"{data.metric} vs p95 latency", height=460, margin=dict(t=80))
    return fig


def _budget_lines(fig: go.Figure, data: ReportData, target: str, col: int) -> None:
    if data.budget is None:
        return
    limits = data.budget.limits_for(target)
    base = data.baseline(target)
    if limits.max_p95_ms is not None:
        fig.add_vline(
            x=limits.max_p95_ms,
            line=dict(color=BUDGET, dash="dash"),
            annotation_text=f"max p95 {limits.max_p95_ms:g} ms",
            row=1,
            col=col,
        )
    floors = []
    if limits.min_quality is not None:
        floors.append((limits.min_quality, f"min {data.metric} {limits.min_quality:g}"))
    if limits.max_quality_drop is not None and base is not None and base.quality is not None:
        floors.append(
            (base.quality - limits.max_quality_drop, f"baseline − {limits.max_quality_drop:g}")
        )
    for y, label in floors:
        fig.add_hline(
            y=y, line=dict(color=BUDGET, dash="dot"), annotation_text=label, row=1, col=col
        )


def cost_figure(data: ReportData) -> go.Figure:
    """Cost per 1k vs p95 latency: one trace per target plus the front across targets."""
    fig = go.Figure()
    done = data.trials[data.trials["status"] == "completed"]
    for i, target in enumerate(data.targets):
        rows = done[done["target"] == target]
        fig.add_trace(
            _scatter(
                rows,
                "latency_p95_ms",
                "cost_per_1k_usd",
                target,
                color=PALETTE[i % len(PALETTE)],
                size=8,
                opacity=0.8,
            )
        )
    glob = done[done["on_global_front"]]
    fig.add_trace(
        _scatter(
            glob,
            "latency_p95_ms",
            "cost_per_1k_usd",
            "front across targets",
            color=FRONT,
            size=13,
            symbol="diamond-open",
            line=dict(width=2),
        )
    )
    if data.budget is not None:
        costs = {data.budget.limits_for(t).max_cost_per_1k_usd for t in data.targets}
        for value in sorted(c for c in costs if c is not None):
            fig.add_hline(
                y=value,
                line=dict(color=BUDGET, dash="dash"),
                annotation_text=f"max cost {value:.3g} USD/1k",
            )
    fig.update_layout(
        title="Cost per 1,000 inferences vs p95 latency "
        "(cost = price per hour ÷ (throughput × 3600) × 1000)",
        xaxis=dict(title="p95 latency per query (ms)", type="log"),
        yaxis=dict(title="USD per 1k inferences", type="log"),
        height=440,
    )
    return fig


def throughput_figure(data: ReportData) -> go.Figure:
    """Throughput vs batch size: one trace per target."""
    fig = go.Figure()
    done = data.trials[data.trials["status"] == "completed"]
    for i, target in enumerate(data.targets):
        rows = done[done["target"] == target].sort_values("batch_size")
        trace = _scatter(
            rows,
            "batch_size",
            "throughput_ips",
            target,
            color=PALETTE[i % len(PALETTE)],
            size=9,
            opacity=0.8,
        )
        fig.add_trace(trace)
    fig.update_layout(
        title="Throughput vs batch size",
        xaxis=dict(title="batch size", type="log", dtick=math.log10(2)),
        yaxis=dict(title="images per second"),
        height=400,
    )
    return fig


def importance_figure(data: ReportData) -> go.Figure:
    """Horizontal bars, one trace per (target, objective) with importances."""
    fig = go.Figure()
    for target, per_objective in data.importances.items():
        for objective, imp in per_objective.items():
            names = list(imp)
            fig.add_trace(
                go.Bar(
                    y=[f"{target}: {n}" for n in names],
                    x=[imp[n] for n in names],
                    orientation="h",
                    name=f"{target} · {objective}",
                )
            )
    fig.update_layout(
        title="Parameter importances (fANOVA on a study rebuilt from the stored trials)",
        barmode="group",
        xaxis=dict(title="importance (sums to 1 per target and objective)"),
        height=max(
            300, 60 * sum(len(next(iter(v.values()), {})) for v in data.importances.values()) + 150
        ),
    )
    return fig


def figures(data: ReportData) -> dict[str, go.Figure]:
    """The page's figures by div id (importances only when some target has them)."""
    out = {
        "fig-accuracy": quality_figure(data),
        "fig-cost": cost_figure(data),
        "fig-throughput": throughput_figure(data),
    }
    if data.importances:
        out["fig-importance"] = importance_figure(data)
    return out


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
            speed = _ratio(base.latency_p95_ms if base else None, r.latency_p95_ms)
            dacc = _minus(r.quality, base.quality if base else None)
            rows.append(
                [
                    r.trial_number,
                    short_params(r.params),
                    *([_gpu(r) if not _missing(_gpu(r)) else "—"] if gpus else []),
                    r.precision_actual or "—",
                    _f(r.quality, ".4f"),
                    _f(dacc, "+.4f"),
                    _f(r.latency_p50_ms, ".3f"),
                    _f(r.latency_p95_ms, ".3f"),
                    _f(r.latency_p99_ms, ".3f"),
                    _f(speed, ".2f") + "×",
                    _f(r.throughput_ips, ",.0f"),
                    _f(r.cost_per_1k_usd, ".3g"),
                    _size(r.artifact_bytes),
                    "yes" if r.stable else "NO",
                ]
            )
        baseline_line = (
            "<p class='muted'>no completed baseline</p>"
            if base is None
            else f"<p>baseline #{base.trial_number} "
            f"({html.escape(short_params(base.params))}): "
            f"{html.escape(data.metric)} {_f(base.quality, '.4f')}, p95 "
            f"{_f(base.latency_p95_ms, '.3f')} ms, "
            f"{_f(base.throughput_ips, ',.0f')} img/s, {_f(base.cost_per_1k_usd, '.3g')} "
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
        rows.append([label, *(_f(m.get(k), ".4f") for k in names)])
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
                _f(p.quality, ".4f"),
                _f(p.latency_p95_ms, ".3f"),
                _f(p.throughput_ips, ",.0f"),
                _f(p.cost_per_1k_usd, ".3g"),
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
<h2>Recommended configuration</h2>{recommendation_section(data)}
<h2>Release note</h2>{data.card_html}
<h2>{html.escape(data.metric)} vs latency</h2>{divs["fig-accuracy"]}
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
