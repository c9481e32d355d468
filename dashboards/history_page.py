"""The release history in HTML: a plotly chart (p95, cost per 1k and quality per job, one line
per target, change points marked) and a table, for the job report and ``farm history --html``."""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from farm.display import short_params
from farm.release.history import History, Point

if TYPE_CHECKING:
    from dashboards.data import ReportData

CHANGE = "#d62728"
PALETTE = ("#1f77b4", "#9467bd", "#8c564b", "#2ca02c", "#17becf", "#bcbd22", "#7f7f7f")


def job_label(point: Point) -> str:
    """What a job is called on the x axis: its label (e.g. a git sha), else its id."""
    return point.label or point.job_id


def history_figure(history: History) -> go.Figure:
    """Three stacked panels (p95 ms, USD per 1k, quality) against the jobs in order; one trace
    per target, and the flagged points ringed in red with the change in the hover text."""
    fig = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.06,
        subplot_titles=("p95 latency (ms)", "cost per 1k inferences (USD)", "quality"),
    )
    panels = (("p95_ms", 1), ("cost_per_1k_usd", 2), ("quality", 3))
    for i, target in enumerate(history.targets):
        points = [p for p in history.of_target(target) if p.trial_number is not None]
        x = [job_label(p) for p in points]
        hover = [_hover(p) for p in points]
        for column, row in panels:
            y = [getattr(p, column) for p in points]
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=y,
                    mode="lines+markers",
                    name=target,
                    legendgroup=target,
                    showlegend=row == 1,
                    line=dict(color=PALETTE[i % len(PALETTE)]),
                    text=hover,
                    hoverinfo="text",
                ),
                row=row,
                col=1,
            )
            flagged = [p for p in points if p.flagged]
            if flagged:
                fig.add_trace(
                    go.Scatter(
                        x=[job_label(p) for p in flagged],
                        y=[getattr(p, column) for p in flagged],
                        mode="markers",
                        name="change point",
                        legendgroup="change",
                        showlegend=row == 1 and i == 0,
                        marker=dict(
                            color=CHANGE, size=15, symbol="circle-open", line=dict(width=2)
                        ),
                        text=[_hover(p) for p in flagged],
                        hoverinfo="text",
                    ),
                    row=row,
                    col=1,
                )
    fig.update_xaxes(type="category", title_text="job (label, else id), oldest first", row=3)
    fig.update_layout(
        title=f"Release history of {history.name} ({history.basis} configuration per target)",
        height=720,
    )
    return fig


def _hover(p: Point) -> str:
    changes = f"<br><b>{', '.join(p.changes)}</b>" if p.changes else ""
    return (
        f"{html.escape(p.job_id)} ({p.created_at:%Y-%m-%d %H:%M})<br>{html.escape(p.target)} "
        f"#{p.trial_number} {html.escape(short_params(p.params))}<br>p95 {_f(p.p95_ms, '.3g')} "
        f"ms, {_f(p.cost_per_1k_usd, '.3g')} USD/1k, quality {_f(p.quality, '.4f')}{changes}"
    )


def _f(value: Any, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def history_table(history: History) -> str:
    """One row per job and target, newest first, change points first in their cell."""
    head = (
        "job",
        "label",
        "created",
        "target",
        "configuration",
        "p95 ms",
        "USD / 1k",
        "quality",
        "change",
        "details",
    )
    rows = []
    for p in reversed(history.points):
        config = "—" if p.trial_number is None else f"#{p.trial_number} {short_params(p.params)}"
        details = "; ".join(x for x in (p.detail, p.note) if x)
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(c))}</td>"
                for c in (
                    p.job_id,
                    p.label or "",
                    f"{p.created_at:%Y-%m-%d %H:%M}",
                    p.target,
                    config,
                    _f(p.p95_ms, ".3f"),
                    _f(p.cost_per_1k_usd, ".3g"),
                    _f(p.quality, ".4f"),
                )
            )
            + f"<td class='{'warn' if p.flagged else ''}'>{html.escape(', '.join(p.changes))}</td>"
            + f"<td class='muted'>{html.escape(details)}</td></tr>"
        )
    header = "".join(f"<th>{h}</th>" for h in head)
    body = "".join(rows)
    return f"<table class='history'><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"


def history_html(history: History) -> str:
    """The chart and the table, with how change points are found (a fragment of a page)."""
    chart = history_figure(history).to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id="fig-history",
        config={"displaylogo": False, "responsive": True},
    )
    flagged = ", ".join(
        f"{p.target} in {job_label(p)} ({', '.join(p.changes)})" for p in history.changes
    )
    return (
        f"<p>{len(history.jobs)} job(s) named <code>{html.escape(history.name)}</code>, following "
        f"each target's {html.escape(history.basis)} configuration. Change points: "
        f"{html.escape(flagged) if flagged else 'none'}.</p>"
        f"<p class='muted'>How: {html.escape(history.method)}.</p>{chart}{history_table(history)}"
    )


def history_section(data: ReportData) -> str:
    """The job report's history section: the jobs of the report's name up to its job (the
    history is read by ``dashboards.load``; a single job has nothing to compare)."""
    history = data.history
    if history is None or len(history.jobs) < 2:
        return (
            "<p class='muted'>No earlier job of this name in the store: run the same job file "
            "again (nightly, or per commit with <code>farm run --label SHA</code>) and this "
            "section shows how each target's p95, cost and quality moved.</p>"
        )
    return history_html(history)


def write_history(history: History, path: str | Path) -> Path:
    """A self-contained page with the history (plotly.js inlined: opens offline)."""
    import plotly.offline

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    style = (
        "body{font-family:system-ui,sans-serif;margin:24px;color:#222}"
        "table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #ddd;"
        "padding:3px 8px}.muted{color:#666}.warn{color:#b00;font-weight:bold}"
    )
    p.write_text(
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>farm history: {html.escape(history.name)}</title><style>{style}</style>"
        f"<script type='text/javascript'>{plotly.offline.get_plotlyjs()}</script></head><body>"
        f"<h1>Release history: {html.escape(history.name)}</h1>{history_html(history)}"
        "</body></html>\n",
        encoding="utf-8",
    )
    return p
