"""The search-quality benchmark's figures: the best batch-1 latency at the fidelity floor and
the hypervolume of a front (three objectives, all minimised), search against grid, printed."""

from __future__ import annotations

from typing import Any

FIDELITY_FLOOR = 0.99


def best_batch1_p50(points: list[dict[str, Any]]) -> float | None:
    ok = [
        p["p50_ms"]
        for p in points
        if p["batch_size"] == 1 and p["top1_agreement"] >= FIDELITY_FLOOR - 1e-12
    ]
    return min(ok) if ok else None


def objectives(p: dict[str, Any]) -> tuple[float, float, float]:
    return (1.0 - p["top1_agreement"], p["p95_ms"], p["cost_per_1k_usd"])


def hypervolume_2d(points: list[tuple[float, float]], ref: tuple[float, float]) -> float:
    """Area dominated by ``points`` (minimised) and bounded by ``ref``."""
    area, best_y = 0.0, ref[1]
    for x, y in sorted(points):
        if x < ref[0] and y < best_y:
            area += (ref[0] - x) * (best_y - y)
            best_y = y
    return area


def hypervolume_3d(points: list[tuple[float, float, float]], ref: tuple[float, ...]) -> float:
    """Volume dominated by ``points`` (all objectives minimised) and bounded by ``ref``:
    slices along the third objective, each a 2-D hypervolume."""
    pts = sorted(
        (p for p in points if all(a < r for a, r in zip(p, ref, strict=True))), key=lambda p: p[2]
    )
    volume = 0.0
    for i, p in enumerate(pts):
        upper = pts[i + 1][2] if i + 1 < len(pts) else ref[2]
        if upper > p[2]:
            area = hypervolume_2d([(q[0], q[1]) for q in pts[: i + 1]], (ref[0], ref[1]))
            volume += area * (upper - p[2])
    return volume


def figures(
    grid: list[dict[str, Any]],
    grid_by_hash: dict[str, Any],
    search: list[dict[str, Any]],
    complete: bool = True,
) -> dict[str, Any]:
    """The figures of the module docstring; the hypervolumes only for a ``complete`` grid (a
    front of part of the space is no reference)."""
    ref = (
        1.0,
        1.1 * max(p["p95_ms"] for p in grid),
        1.1 * max(p["cost_per_1k_usd"] for p in grid),
    )
    rescored = [grid_by_hash[p["hash"]] for p in search if p["hash"] in grid_by_hash]
    grid_best = best_batch1_p50(grid)
    grid_hv = hypervolume_3d([objectives(p) for p in grid], ref)
    out: dict[str, Any] = {"reference_point": ref, "grid_best_b1_p50_ms": grid_best}
    for label, pts in (("measured", search), ("rescored", rescored)):
        best = best_batch1_p50(pts)
        out[f"{label}_best_b1_p50_ms"] = best
        out[f"{label}_latency_ratio"] = best / grid_best if best and grid_best else None
        hv = hypervolume_3d([objectives(p) for p in pts], ref) / grid_hv
        out[f"{label}_hv_ratio"] = hv if complete else None
    out["search_visited_in_grid"] = f"{len(rescored)}/{len(search)}"
    return out


def _fmt(x: float | None, spec: str = ".3f") -> str:
    return "n/a" if x is None else format(x, spec)


def print_figures(target: str, size: int, grid_s: float, search_s: float, f: Any) -> None:
    print(
        f"\n{target}: {size} configurations, grid pass {grid_s:.0f}s, search {search_s:.0f}s,"
        f" search visited {f['search_visited_in_grid']} grid configurations"
    )
    print(
        f"  (a) best batch-1 p50 with top-1 fidelity >= {FIDELITY_FLOOR}: grid "
        f"{_fmt(f['grid_best_b1_p50_ms'])} ms; search {_fmt(f['measured_best_b1_p50_ms'])} ms"
        f" -> ratio {_fmt(f['measured_latency_ratio'])} (re-scored with grid timings: "
        f"{_fmt(f['rescored_latency_ratio'])}); target <= 1.05"
    )
    if f["confirmed"] is not None:
        ratio, drift = f["confirmed"]
        print(
            f"  (a') the two re-measured in turns: search / grid p50 {ratio:.3f} (median "
            f"over rounds; the grid's configuration drifted {drift:.1%} between rounds)"
        )
    print(
        f"  (b) hypervolume search / grid: {_fmt(f['measured_hv_ratio'])} (re-scored: "
        f"{_fmt(f['rescored_hv_ratio'])}); target >= 0.95; reference point "
        f"(1 - fidelity, p95 ms, USD/1k) = "
        f"({', '.join(_fmt(x, '.4g') for x in f['reference_point'])})"
    )
