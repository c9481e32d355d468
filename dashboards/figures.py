"""The report's figures (plotly): quality vs p95 latency per target, cost vs latency, throughput
vs batch size, and parameter importances; and the cell formatting the report's tables share.
"""

from __future__ import annotations

import html
import math
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboards.data import ReportData
from farm.display import cell as display_cell
from farm.display import short_params

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
        f"{html.escape(str(r.quality_metric))} {cell(r.quality, '.4f')}, "
        f"p95 {cell(r.latency_p95_ms, '.3g')} ms, "
        f"{cell(r.throughput_ips, ',.0f')} img/s, {cell(r.cost_per_1k_usd, '.3g')} USD/1k"
        + ("" if missing(gpu_of(r)) else f"<br>on {html.escape(str(gpu_of(r)))}")
        for r in df.itertuples()
    ]


def gpu_of(row: Any) -> Any:
    """The GPU a trial ran on (CUDA targets; the store's ``gpu_model``), or None."""
    return getattr(row, "gpu_model", None)


def missing(value: Any) -> bool:
    return value is None or bool(pd.isna(value))


def ratio(a: float | None, b: float | None) -> float:
    return math.nan if missing(a) or missing(b) or not b else float(a) / float(b)  # type: ignore[arg-type]


def minus(a: float | None, b: float | None) -> float:
    return math.nan if missing(a) or missing(b) else float(a) - float(b)  # type: ignore[arg-type]


def cell(value: Any, fmt: str) -> str:
    """``value`` in the format spec ``fmt`` (a dash when missing, no ``-0.0000``)."""
    if value is None or pd.isna(value):
        return "—"
    return display_cell("{:" + fmt + "}", value)


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
