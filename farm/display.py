"""Terminal output shared by the commands: fronts and job lists as rich tables."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from farm.store.records import JobRecord, TrialRecord

#: Knobs every candidate has (farm.search.space.BASE_KNOBS, repeated here to keep this module
#: light).
BASE_KNOBS = ("precision", "batch_size", "threads")

FRONT_COLUMNS = (
    ("target", "target", "{}"),
    ("#", "trial_number", "{}"),
    ("params", "params", "{}"),
    ("quality", "quality", "{:.4f}"),
    ("drop", "quality_drop", "{:+.4f}"),
    ("p50 ms", "latency_p50_ms", "{:.3f}"),
    ("p95 ms", "latency_p95_ms", "{:.3f}"),
    ("p99 ms", "latency_p99_ms", "{:.3f}"),
    ("img/s", "throughput_ips", "{:,.0f}"),
    ("$ / 1k inf", "cost_per_1k_usd", "{:.2e}"),
    ("precision used", "precision_actual", "{}"),
    ("stable", "stable", "{}"),
)


def make_console() -> Console:
    """A console; when output is not a terminal (CI logs, pipes) tables get 160 columns."""
    console = Console()
    return console if console.is_terminal else Console(width=160)


def short_params(params: Mapping[str, Any], keys: set[str] | None = None) -> str:
    """``knob=value`` pairs (transform prefixes dropped); only ``keys`` when given."""
    return " ".join(
        f"{k.split('.')[-1]}={v}" for k, v in sorted(params.items()) if keys is None or k in keys
    )


def varying_keys(trials: Sequence[TrialRecord]) -> set[str]:
    """The base knobs, plus knobs whose value differs between trials (a knob with one value
    in the whole study says nothing about a choice)."""
    values: dict[str, set[str]] = {}
    for t in trials:
        for k, v in t.params.items():
            values.setdefault(k, set()).add(json.dumps(v))
    return {k for k, v in values.items() if len(v) > 1} | set(BASE_KNOBS)


def signed(value: float, digits: int = 4) -> str:
    """A change with its sign, ``+0.0012`` / ``-0.0019``; zero reads ``+0.0000``."""
    return cell(f"{{:+.{digits}f}}", value)


def cell(fmt: str, value: Any) -> str:
    """``value`` in ``fmt``; a dash for a missing one, and no negative zero (an unchanged error
    rate's oriented drop is ``-0.0``, which would print ``-0.0000``; so would ``-1e-9``)."""
    if value is None:
        return "—"
    try:
        text = fmt.format(value)
    except (ValueError, TypeError):
        return str(value)
    if text.startswith("-") and not text.strip("-+0.,e"):
        text = ("+" if "+" in fmt else "") + text[1:]
    return text


def front_table(
    title: str,
    rows: Sequence[TrialRecord],
    keys: set[str] | None = None,
    metric: str = "quality",
    changes: Mapping[tuple[str, int], Any] | None = None,
) -> Table:
    """A front as a table; the quality column is headed by the task's metric (``map``, …).
    With ``changes`` (each candidate's paired comparison with its baseline) a column says
    whether its quality change is significant, with the interval and flips."""
    table = Table(title=title, title_justify="left")
    for header, _, _ in FRONT_COLUMNS:
        justify: Literal["left", "right"] = "left" if header in ("target", "params") else "right"
        table.add_column(metric if header == "quality" else header, justify=justify)
    if changes is not None:
        table.add_column("vs fp32 (paired)", justify="left")
    for r in rows:
        cells = [
            short_params(r.params, keys) if key == "params" else cell(fmt, getattr(r, key))
            for _, key, fmt in FRONT_COLUMNS
        ]
        if changes is not None:
            cells.append(_change(changes.get((r.target, r.trial_number))))
        table.add_row(*cells)
    return table


def _change(c: Any) -> str:
    if c is None:
        return "—"
    from farm.evidence.words import points

    return (
        f"{c.verdict}: {points(c.delta)} pt [{points(c.low)}, {points(c.high)}], "
        f"{c.broken} broken, {c.fixed} fixed"
    )


def print_fronts(
    console: Console,
    job: JobRecord,
    trials: Sequence[TrialRecord],
    changes: Mapping[tuple[str, int], Any] | None = None,
) -> None:
    """Each target's front, then the front across targets, with how cost is computed (and each
    candidate's paired quality change, ``changes``)."""
    targets = sorted({t.target for t in trials})
    metric = next((t.quality_metric for t in trials if t.quality_metric), "quality")
    for target in targets:
        of_target = [t for t in trials if t.target == target]
        front = [t for t in of_target if t.on_front]
        failed = sum(t.status == "failed" for t in of_target)
        infeasible = sum(t.completed and not t.feasible for t in of_target)
        title = (
            f"{target}: {len(front)} on the front of {len(of_target)} trials "
            f"({infeasible} infeasible, {failed} failed)"
        )
        keys = varying_keys(of_target)
        by_p95 = sorted(front, key=_p95)
        console.print(front_table(title, by_p95, keys, metric, changes))
    overall = [t for t in trials if t.on_global_front]
    sense = "min" if any(t.quality_sense < 0 for t in trials if t.quality_metric) else "max"
    console.print(
        front_table(
            f"Across targets: {metric} ({sense}) × p95 latency (min) × cost per 1k (min)",
            sorted(overall, key=_p95),
            varying_keys(trials),
            metric,
            changes,
        )
    )
    console.print(
        "cost per 1k inferences = price per hour ÷ (measured throughput × 3600) × 1000; "
        f"{metric} is measured on each target's own runtime, on the whole eval split; "
        "drop is versus that target's fp32 batch-1 baseline.",
        style="dim",
    )


def _p95(trial: TrialRecord) -> float:
    return trial.latency_p95_ms if trial.latency_p95_ms is not None else float("inf")
