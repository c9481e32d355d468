"""The gate's release-KPI checks: each KPI of a configuration against the baseline job's.

For every KPI both trials recorded (calibration, robustness, slices, the operating point's
rates), a change in the bad direction larger than its tolerance is a regression; the tolerance
says how much movement the team accepts. Where both jobs were judged on the same images with
evidence stored, a KPI the evidence recomputes (Brier, NLL, the operating point's rates, the
worst slice and the slice gap) is judged on its paired interval, as the primary metric is: a
regression is a change whose whole interval lies beyond the tolerance. The others (ECE,
robustness) and every KPI of a job without evidence are judged on the point values, and the
check says "fixed tolerance". Defaults below; a gate run overrides them with
``--kpi-tolerance NAME=VALUE``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from farm.display import signed
from workloads.kpis.spec import LOWER_IS_BETTER

if TYPE_CHECKING:
    from farm.evidence.paired import Comparison

#: KPI -> the largest change in the bad direction that is not a regression (absolute units).
DEFAULT_TOLERANCES: dict[str, float] = {
    "ece": 0.01,
    "ece_adaptive": 0.01,
    "brier": 0.01,
    "nll": 0.05,
    "robustness": 0.02,
    "worst_slice": 0.01,
    "slice_gap": 0.02,
    "fp_rate": 0.01,
    "fn_rate": 0.01,
}


@dataclass(frozen=True)
class KpiCheck:
    name: str
    passed: bool
    message: str


def kpi_checks(
    candidate: Mapping[str, float],
    baseline: Mapping[str, float],
    tolerances: Mapping[str, float] | None = None,
    paired: Mapping[str, Comparison] | None = None,
) -> list[KpiCheck]:
    """One check per KPI present in both metric maps (and having a tolerance). ``paired``: the
    KPIs judged image by image (:func:`farm.gate.paired.paired_kpis`; None when the two jobs
    were not judged on the same images with evidence stored): a regression is then a change
    whose whole interval lies beyond the tolerance the bad way."""
    from farm.gate.paired import FIXED, NOT_A_MEAN, PAIRED

    tol = {**DEFAULT_TOLERANCES, **(tolerances or {})}
    out = []
    for name in sorted(tol):
        if name not in candidate or name not in baseline:
            continue
        a, b = float(baseline[name]), float(candidate[name])
        c = (paired or {}).get(name)
        if c is not None:
            ok = c.drop_interval[0] <= tol[name] + 1e-12
            ends = f" [{signed(c.low)}, {signed(c.high)}] at {c.confidence:.0%}".replace("%", " %")
            basis = f"{PAIRED}, {c.n_images} images"
        else:
            worse = (b - a) if name in LOWER_IS_BETTER else (a - b)
            ok = worse <= tol[name] + 1e-12
            ends, basis = "", FIXED if paired is None else NOT_A_MEAN
        direction = "lower is better" if name in LOWER_IS_BETTER else "higher is better"
        out.append(
            KpiCheck(
                name,
                ok,
                f"{'ok' if ok else 'REGRESSION'}: {name} {a:.4f} → {b:.4f} ({signed(b - a)}{ends}; "
                f"{direction}, tolerance {tol[name]:g}) [{basis}]",
            )
        )
    return out


def parse_tolerances(items: list[str] | None) -> dict[str, float]:
    """``["ece=0.02", …]`` from the command line; an unknown KPI or a bad number is refused."""
    from farm.errors import UsageError

    out: dict[str, float] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or name not in DEFAULT_TOLERANCES:
            raise UsageError(
                f"--kpi-tolerance: expected NAME=VALUE with NAME one of "
                f"{sorted(DEFAULT_TOLERANCES)}, got {item!r}"
            )
        try:
            number = float(value)
        except ValueError:
            raise UsageError(f"--kpi-tolerance {name}: expected a number, got {value!r}") from None
        if number < 0:
            raise UsageError(f"--kpi-tolerance {name}: expected a number >= 0, got {number}")
        out[name] = number
    return out
