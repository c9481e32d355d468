"""The GPU check's report: the environment and the GPU's price, the table of rows (each with its
ratio to the bare reference), the verdict on the four criteria of ``gpu_check.py``'s doc, and
the rows as JSON.

Imported by ``gpu_check.py`` (its folder is on the path).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from _gpu_measure import Row
from _gpu_models import BARE, Bare

from farm.engine.pricing import gpu_price

#: Pass criteria.
MAX_B1_RATIO = 1.10
MIN_THROUGHPUT_RATIO = 0.90


def describe_environment(fp: dict[str, Any], out: Callable[[str], None]) -> None:
    gpus = ", ".join(f"{g['model']} ({g['memory']}, driver {g['driver']})" for g in fp["gpus"])
    pkgs = ", ".join(f"{k} {v}" for k, v in sorted(fp["packages"].items()))
    out(f"GPU: {gpus or 'none'}")
    out(f"CPU: {fp['cpu_model']} ({fp['arch']}, {fp['logical_cores']} logical cores)")
    out(f"packages: {pkgs}")


def describe_prices(fp: dict[str, Any], out: Callable[[str], None]) -> dict[str, Any]:
    """Each GPU of this machine and the catalog row that prices it."""
    prices = {m: gpu_price(m) for m in (str(g["model"]) for g in fp["gpus"])}
    for m, p in prices.items():
        priced = (
            f"${p.price_per_hour_usd:g}/h ({p.price_source}, {p.price_date})" if p else "NO PRICE"
        )
        out(f"{m} is priced as {p.name if p else '—'}: {priced}")
    return prices


def _f(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def print_table(
    rows: list[Row],
    bare: dict[int, Bare],
    reference_batch: int,
    gpu: bool,
    out: Callable[[str], None],
) -> None:
    b1, bref = bare[1], bare[reference_batch]
    out("")
    out(
        f"bare PyTorch ({BARE[gpu]}): batch 1 p50 "
        f"{b1.best_p50:.4g} ms ({b1.drift()}); batch {reference_batch} "
        f"{bref.best_throughput:,.0f} img/s, p50 {bref.best_p50:.4g} ms ({bref.drift()})"
    )
    headers = ["#", "target", "configuration", "status", "p50 ms", "p95 ms", "img/s",
               "dev p50", "dev p95", "MiB", "compile s", "top-1", "p50/bare b1",
               "img/s/bare", "precision", "graphs", "detail"]  # fmt: skip
    table = [headers]
    for i, r in enumerate(rows):
        c = r.config
        b1_ratio = r.p50_ms / b1.best_p50 if r.p50_ms and c.batch == 1 else None
        tput_ratio = r.throughput_ips / bref.best_throughput if r.throughput_ips else None
        table.append(
            [
                str(i), c.target, c.describe() if c.batch else c.precision, r.status,
                _f(r.p50_ms, ".4g"), _f(r.p95_ms, ".4g"), _f(r.throughput_ips, ",.0f"),
                _f(r.device_p50_ms, ".4g"), _f(r.device_p95_ms, ".4g"), _f(r.memory_mib, ".0f"),
                _f(r.compile_s, ".1f"), _f(r.top1_agreement, ".3f"), _f(b1_ratio, ".2f"),
                _f(tput_ratio, ".2f"), r.precision_actual or "—", r.graphs or "—", r.detail,
            ]
        )  # fmt: skip
    widths = [max(len(row[i]) for row in table) for i in range(len(headers) - 1)]
    for row in table:
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=False)]
        out("  ".join([*cells, row[-1]]).rstrip())
    out("")


def verdict(
    rows: list[Row],
    bare: dict[int, Bare],
    reference_batch: int,
    prices: dict[str, Any],
    gpu: bool,
    out: Callable[[str], None],
) -> bool:
    """Print and judge the four criteria of the module's doc."""
    measured = [r for r in rows if r.status == "measured"]
    b1 = [r for r in measured if r.config.batch == 1 and r.config.io == "device" and r.p50_ms]
    checks: list[tuple[str, bool]] = []
    if b1:
        best = min(b1, key=lambda r: r.p50_ms or float("inf"))
        ratio = (best.p50_ms or 0) / bare[1].best_p50
        checks.append(
            (
                f"farm best batch-1 p50 {best.p50_ms:.4g} ms ({best.config.target} "
                f"{best.config.describe()}) = {ratio:.2f} × bare (must be <= {MAX_B1_RATIO:.2f})",
                ratio <= MAX_B1_RATIO,
            )
        )
    else:
        checks.append(("no batch-1 configuration with io=device was measured", False))
    if measured:
        best = max(measured, key=lambda r: r.throughput_ips or 0.0)
        ratio = (best.throughput_ips or 0) / bare[reference_batch].best_throughput
        checks.append(
            (
                f"farm best throughput {best.throughput_ips:,.0f} img/s ({best.config.target} "
                f"{best.config.describe()}) = {ratio:.2f} × bare batch {reference_batch} "
                f"(must be >= {MIN_THROUGHPUT_RATIO:.2f})",
                ratio >= MIN_THROUGHPUT_RATIO,
            )
        )
    failed = [r for r in rows if r.status == "failed"]
    agreed = [r for r in measured if r.top1_agreement is not None]
    checks.append(
        (
            f"top-1 agreement recorded for {len(agreed)} of {len(measured)} measured "
            f"configurations; {len(failed)} failed",
            bool(measured) and len(agreed) == len(measured) and not failed,
        )
    )
    if gpu:
        unpriced = [m for m, p in prices.items() if p is None]
        checks.append(
            (
                "every GPU here is priced as itself"
                + (f" (no price: {unpriced})" if unpriced else ""),
                bool(prices) and not unpriced,
            )
        )
    for text, ok in checks:
        judged = ("PASS" if ok else "FAIL") if gpu else "dry run, not judged"
        out(f"[{judged}] {text}")
    return all(ok for _, ok in checks)


def dump(path: str, rows: list[Row], bare: dict[int, Bare], fp: dict[str, Any]) -> None:
    payload = {
        "environment": fp,
        "bare": {b: asdict(v) for b, v in bare.items()},
        "rows": [
            {**asdict(r), "config": {**asdict(r.config), "extra": r.config.extra}} for r in rows
        ],
    }
    Path(path).write_text(json.dumps(payload, indent=1, default=str))
