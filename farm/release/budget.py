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
    min_map50 = 0.6              # any metric the job records: min_/max_<metric>,
    max_ece_increase = 0.01      # max_<metric>_drop / _increase versus the target's baseline

``min_accuracy`` / ``max_accuracy_drop`` limit the job's primary quality metric whatever the
task (``min_quality`` / ``max_quality_drop`` say so in a task-neutral way). Every error names
the file, the field and what was expected.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from farm.errors import SpecError
from farm.spec.constraints import MetricLimit, is_known, parse_limit_key, parse_limits

#: Limits on trial columns: name -> (trial column, sense, unit, human label). sense +1: value
#: must be <= the limit (a maximum); -1: value must be >= the limit (a minimum). ``accuracy``
#: is the job's primary quality metric whatever the task (mAP, mIoU…): ``min_quality`` and
#: ``max_quality_drop`` are the task-neutral spellings of the accuracy limits.
LIMITS: dict[str, tuple[str, int, str, str]] = {
    "max_p95_ms": ("latency_p95_ms", +1, "ms", "p95 latency"),
    "max_p99_ms": ("latency_p99_ms", +1, "ms", "p99 latency"),
    "max_cost_per_1k_usd": ("cost_per_1k_usd", +1, "USD", "cost per 1k inferences"),
    "min_accuracy": ("accuracy", -1, "", "accuracy"),
    "max_accuracy_drop": ("accuracy_drop", +1, "", "accuracy drop vs baseline"),
    "min_quality": ("accuracy", -1, "", "quality"),
    "max_quality_drop": ("accuracy_drop", +1, "", "quality drop vs baseline"),
    "min_throughput_ips": ("throughput_ips", -1, "img/s", "throughput"),
}
#: Latency limits and the percentile each bounds.
LATENCY_PERCENTILE = {"max_p95_ms": 95.0, "max_p99_ms": 99.0}
#: Column limits that are fractions of one.
FRACTIONS = ("min_accuracy", "max_accuracy_drop", "min_quality", "max_quality_drop")


class Limits:
    """The limits for one target, by field name (``max_p95_ms``, ``min_map50``…), in the
    order they were written. A column limit that is not set reads as None
    (``limits.max_p95_ms``); any other limit is a limit on a recorded metric (see
    farm/spec/constraints.py)."""

    def __init__(self, values: Mapping[str, float] | None = None, **kwargs: float | None) -> None:
        merged = {**(values or {}), **kwargs}
        self._values = {k: float(v) for k, v in merged.items() if v is not None}

    def __getattr__(self, name: str) -> float | None:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in LIMITS:
            return self._values.get(name)
        raise AttributeError(name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Limits) and self._values == other._values

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._values.items())))

    def __repr__(self) -> str:
        return f"Limits({self._values!r})"

    def get(self, name: str) -> float | None:
        return self._values.get(name)

    def merged_over(self, base: Limits) -> Limits:
        """These limits, falling back to ``base`` for each field left unset here."""
        return Limits({**base._values, **self._values})

    def items(self) -> list[tuple[str, float]]:
        """The limits that are set, as (field, value): column limits first, in a fixed order,
        then metric limits in the order written."""
        columns = [(k, self._values[k]) for k in LIMITS if k in self._values]
        return columns + [(k, v) for k, v in self._values.items() if k not in LIMITS]

    def metric_limits(self) -> list[MetricLimit]:
        """The limits on recorded metrics (``min_map50``, ``max_ece_increase``…)."""
        out = []
        for name, value in self._values.items():
            parsed = None if name in LIMITS else parse_limit_key(name)
            if parsed is not None:
                out.append(MetricLimit(name, parsed[0], parsed[1], value))
        return out

    def is_empty(self) -> bool:
        return not self._values


@dataclass(frozen=True)
class Violation:
    """One limit a configuration fails: the measured (or bounded) value against the limit."""

    field: str
    value: float | None
    limit: float
    #: "point" for the stored estimate, or e.g. "95% upper bound" for the gate's bound.
    basis: str = "point"

    def describe(self) -> str:
        if self.field not in LIMITS:
            parsed = parse_limit_key(self.field)
            kind, metric = parsed if parsed else ("max", self.field)
            return MetricLimit(self.field, kind, metric, self.limit).describe(self.value)
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


def check(limits: Limits, values: Mapping[str, Any], basis: str = "point") -> list[Violation]:
    """The limits that ``values`` (a trial row: columns such as ``latency_p95_ms``, and its
    ``metrics``; ``baseline_metrics`` for ``_drop``/``_increase`` limits) fail.

    A missing value fails its limit: a configuration is never passed on a number nobody measured.
    """
    out = []
    for name, limit in limits.items():
        if name not in LIMITS:
            continue
        column, sense, _, _ = LIMITS[name]
        value = values.get(column)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            out.append(Violation(name, None, limit, basis))
        elif (sense > 0 and value > limit) or (sense < 0 and value < limit):
            out.append(Violation(name, float(value), limit, basis))
    metrics = trial_metrics(values)
    baseline = values.get("baseline_metrics")
    primary = str(values.get("quality_metric") or "accuracy")
    for ml in limits.metric_limits():
        ml = ml.resolved(primary)
        if ml.violation(metrics, baseline) > 1e-12:
            out.append(Violation(ml.field, ml.value(metrics, baseline), ml.limit, "point"))
    return out


def trial_metrics(row: Mapping[str, Any]) -> dict[str, float]:
    """A trial's metrics (its ``metrics`` map, with the primary metric from ``accuracy``)."""
    metrics = dict(row.get("metrics") or {})
    if row.get("quality_metric") and row.get("accuracy") is not None:
        metrics.setdefault(str(row["quality_metric"]), float(row["accuracy"]))
    return metrics


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
            f"at least one limit (one of {', '.join(LIMITS)}, or a metric limit)",
        )
    return Budget(src, all_limits, targets, float(confidence))


def _parse_limits(src: str, where: str, table: object) -> Limits:
    from workloads.tasks import known_metrics

    if not isinstance(table, dict):
        raise SpecError(src, where, f"a table of limits ({', '.join(LIMITS)}, …)", table)
    values: dict[str, float] = {}
    for key, value in table.items():
        if key not in LIMITS:
            continue
        if not _is_number(value) or value < 0:
            raise SpecError(src, f"{where}.{key}", "a finite number >= 0", value)
        if key in FRACTIONS and value > 1:
            raise SpecError(src, f"{where}.{key}", "a fraction in [0, 1]", value)
        values[key] = float(value)
    names, prefixes = known_metrics()
    try:
        metric_limits = parse_limits(src, where, table, names, prefixes, skip=LIMITS)
    except SpecError as exc:
        raise SpecError(
            src, exc.field, f"one of {', '.join(LIMITS)}, or a limit on a metric: {exc.expected}"
        ) from None
    for ml in metric_limits:
        values[ml.field] = ml.limit
    return Limits({k: values[k] for k in table if k in values})


def check_metrics(budget: Budget, names: Iterable[str], prefixes: Iterable[str] = ()) -> None:
    """Refuse a budget that limits a metric the job does not record (``min_map50`` on a
    classification job), naming the budget file and the field."""
    names = list(names)
    tables = [("all", budget.all), *((f"targets.{t}", v) for t, v in budget.targets.items())]
    for where, limits in tables:
        for ml in limits.metric_limits():
            if not is_known(ml.metric, names, prefixes):
                raise SpecError(
                    budget.path,
                    f"{where}.{ml.field}",
                    f"a metric this job records ({', '.join(sorted(names))})",
                    ml.metric,
                )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
