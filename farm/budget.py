"""Release budgets: the limits a configuration must meet, read by ``recommend``, ``gate`` and
the report.

A budget file is TOML. ``[all]`` applies to every target; ``[targets.<name>]`` applies to one
target and overrides ``[all]`` field by field::

    confidence = 0.95            # optional: confidence of the gate's tail-latency bound

    [all]
    max_p95_ms = 5.0             # maximum p95 latency per query (batch), ms
    max_accuracy_drop = 0.01     # maximum drop versus the target's fp32 batch-1 baseline

    [targets.cpu-openvino]
    max_p99_ms = 8.0
    max_cost_per_1k_usd = 2e-5
    min_accuracy = 0.97
    min_throughput_ips = 1000    # images per second

Every error names the file, the field and what was expected.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from farm.errors import SpecError

#: Limit fields: name -> (trial column, sense, unit, human label). sense +1: value must be <=
#: the limit (a maximum); -1: value must be >= the limit (a minimum).
LIMITS: dict[str, tuple[str, int, str, str]] = {
    "max_p95_ms": ("latency_p95_ms", +1, "ms", "p95 latency"),
    "max_p99_ms": ("latency_p99_ms", +1, "ms", "p99 latency"),
    "max_cost_per_1k_usd": ("cost_per_1k_usd", +1, "USD", "cost per 1k inferences"),
    "min_accuracy": ("accuracy", -1, "", "accuracy"),
    "max_accuracy_drop": ("accuracy_drop", +1, "", "accuracy drop vs baseline"),
    "min_throughput_ips": ("throughput_ips", -1, "img/s", "throughput"),
}
#: Latency limits and the percentile each bounds.
LATENCY_PERCENTILE = {"max_p95_ms": 95.0, "max_p99_ms": 99.0}


@dataclass(frozen=True)
class Limits:
    """The limits for one target; ``None`` means "no limit on this"."""

    max_p95_ms: float | None = None
    max_p99_ms: float | None = None
    max_cost_per_1k_usd: float | None = None
    min_accuracy: float | None = None
    max_accuracy_drop: float | None = None
    min_throughput_ips: float | None = None

    def merged_over(self, base: Limits) -> Limits:
        """These limits, falling back to ``base`` for each field left unset here."""
        mine = {f.name: getattr(self, f.name) for f in fields(self)}
        return replace(base, **{k: v for k, v in mine.items() if v is not None})

    def items(self) -> list[tuple[str, float]]:
        """The limits that are set, as (field, value), in a fixed order."""
        return [(f.name, v) for f in fields(self) if (v := getattr(self, f.name)) is not None]

    def is_empty(self) -> bool:
        return not self.items()


@dataclass(frozen=True)
class Violation:
    """One limit a configuration fails: the measured (or bounded) value against the limit."""

    field: str
    value: float | None
    limit: float
    #: "point" for the stored estimate, or e.g. "95% upper bound" for the gate's bound.
    basis: str = "point"

    def describe(self) -> str:
        _, sense, unit, label = LIMITS[self.field]
        if self.value is None:
            return f"{label} not measured (limit {_fmt(self.limit, unit)})"
        op = ">" if sense > 0 else "<"
        basis = "" if self.basis == "point" else f" ({self.basis})"
        return f"{label} {_fmt(self.value, unit)}{basis} {op} {_fmt(self.limit, unit)}"


def _fmt(value: float, unit: str) -> str:
    if math.isinf(value):
        return "∞ (too few samples for a bound)"
    text = f"{value:.3g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    return f"{text} {unit}".rstrip()


def check(
    limits: Limits, values: Mapping[str, float | None], basis: str = "point"
) -> list[Violation]:
    """The limits that ``values`` (trial columns, e.g. ``latency_p95_ms``) fail.

    A missing value fails its limit: a configuration is never passed on a number nobody measured.
    """
    out = []
    for name, limit in limits.items():
        column, sense, _, _ = LIMITS[name]
        value = values.get(column)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            out.append(Violation(name, None, limit, basis))
        elif (sense > 0 and value > limit) or (sense < 0 and value < limit):
            out.append(Violation(name, float(value), limit, basis))
    return out


@dataclass(frozen=True)
class Budget:
    path: str
    all: Limits
    targets: dict[str, Limits]
    confidence: float = 0.95

    def limits_for(self, target: str) -> Limits:
        own = self.targets.get(target)
        return self.all if own is None else own.merged_over(self.all)

    def applies_to(self, job_targets: list[str]) -> list[str]:
        """The job's targets this budget constrains; every target it names must be in the job."""
        missing = sorted(set(self.targets) - set(job_targets))
        if missing:
            raise SpecError(
                self.path,
                f"targets.{missing[0]}",
                f"a target of the job (one of {sorted(job_targets)})",
                missing[0],
            )
        if not self.all.is_empty():
            return sorted(job_targets)
        return sorted(t for t in job_targets if t in self.targets)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "confidence": self.confidence,
            "all": dict(self.all.items()),
            "targets": {t: dict(v.items()) for t, v in self.targets.items()},
        }


def load_budget(path: str | Path) -> Budget:
    """Read and validate a budget file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(p, "(file)", "a readable budget file", exc.strerror or str(exc)) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(p, "(file)", f"valid TOML ({exc})") from exc
    return parse_budget(data, p)


def parse_budget(data: Mapping[str, Any], source: str | Path = "<budget>") -> Budget:
    src = str(source)
    unknown = sorted(set(data) - {"all", "targets", "confidence"})
    if unknown:
        raise SpecError(src, unknown[0], "one of the top-level keys `all`, `targets`, `confidence`")
    confidence = data.get("confidence", 0.95)
    if not _is_number(confidence) or not 0.5 <= confidence < 1.0:
        raise SpecError(src, "confidence", "a number in [0.5, 1)", confidence)
    all_limits = _parse_limits(src, "all", data.get("all", {}))
    targets_raw = data.get("targets", {})
    if not isinstance(targets_raw, dict):
        raise SpecError(src, "targets", "a table of per-target tables", targets_raw)
    targets = {name: _parse_limits(src, f"targets.{name}", t) for name, t in targets_raw.items()}
    if all_limits.is_empty() and all(v.is_empty() for v in targets.values()):
        raise SpecError(
            src,
            "all / targets.<name>",
            f"at least one limit (one of {', '.join(LIMITS)})",
        )
    return Budget(src, all_limits, targets, float(confidence))


def _parse_limits(src: str, where: str, table: object) -> Limits:
    if not isinstance(table, dict):
        raise SpecError(src, where, f"a table of limits ({', '.join(LIMITS)})", table)
    values: dict[str, float] = {}
    for key, value in table.items():
        if key not in LIMITS:
            raise SpecError(src, f"{where}.{key}", f"one of {', '.join(LIMITS)}")
        if not _is_number(value) or value < 0:
            raise SpecError(src, f"{where}.{key}", "a finite number >= 0", value)
        if key in ("min_accuracy", "max_accuracy_drop") and value > 1:
            raise SpecError(src, f"{where}.{key}", "a fraction in [0, 1]", value)
        values[key] = float(value)
    return Limits(**values)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
