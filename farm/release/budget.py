"""Release budgets: the limits a configuration must meet, read by ``recommend``, ``gate`` and
the report.

A budget file is TOML. ``[all]`` applies to every target; ``[targets.<name>]`` applies to one
target and overrides ``[all]`` field by field::

    confidence = 0.95            # optional: confidence of the gate's tail-latency bound

    [all]
    max_p95_ms = 5.0             # maximum p95 latency per query (batch), ms
    max_quality_drop = 0.01      # maximum drop versus the target's fp32 batch-1 baseline

    [targets.cpu-openvino]
    max_p99_ms = 8.0
    max_cost_per_1k_usd = 2e-5
    min_quality = 0.97
    min_throughput_ips = 1000    # images per second
    min_map50 = 0.6              # any metric the job records: min_/max_<metric>,
    max_ece_increase = 0.01      # max_<metric>_drop / _increase versus the target's baseline

``min_quality`` / ``max_quality_drop`` limit the job's primary quality metric whatever the task
(accuracy, mAP, mIoU, a fidelity); ``min_accuracy`` / ``max_accuracy_drop`` are their documented
aliases (docs/budgets.md), kept as written in every output. Every error names the file, the
field and what was expected.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from farm._validate import Fields
from farm.errors import SpecError
from farm.spec.constraints import (
    CONFIDENCE,
    MetricLimit,
    at_worst_end,
    is_known,
    parse_confidence,
    parse_limit_key,
    parse_limits,
)
from farm.store.records import TrialRecord

#: Limits on trial fields: name -> (TrialRecord field, sense, unit, human label). sense +1: the
#: value must be <= the limit (a maximum); -1: it must be >= the limit (a minimum). ``{metric}``
#: in a label is the trial's primary metric (``accuracy``, ``map``…).
LIMITS: dict[str, tuple[str, int, str, str]] = {
    "max_p95_ms": ("latency_p95_ms", +1, "ms", "p95 latency"),
    "max_p99_ms": ("latency_p99_ms", +1, "ms", "p99 latency"),
    "max_cost_per_1k_usd": ("cost_per_1k_usd", +1, "USD", "cost per 1k inferences"),
    "min_quality": ("quality", -1, "", "{metric}"),
    "max_quality_drop": ("quality_drop", +1, "", "{metric} drop vs baseline"),
    "min_throughput_ips": ("throughput_ips", -1, "img/s", "throughput"),
}
#: Documented aliases of the quality limits (docs/budgets.md): alias -> the limit it spells.
ALIASES = {"min_accuracy": "min_quality", "max_accuracy_drop": "max_quality_drop"}
#: Latency limits and the percentile each bounds.
LATENCY_PERCENTILE = {"max_p95_ms": 95.0, "max_p99_ms": 99.0}
#: Field limits that are fractions of one.
FRACTIONS = ("min_quality", "max_quality_drop")
#: Every field-limit spelling a budget may use.
FIELD_LIMITS = (*LIMITS, *ALIASES)


def canonical_limit(name: str) -> str:
    """The limit a spelling stands for (``max_accuracy_drop`` -> ``max_quality_drop``)."""
    return ALIASES.get(name, name)


class Limits:
    """The limits for one target, by field name as written (``max_p95_ms``,
    ``max_accuracy_drop``, ``min_map50``…), in the order written. The field limits read as
    properties (None when not set; an alias answers for its limit); any other limit is a
    limit on a recorded metric (see farm/spec/constraints.py)."""

    def __init__(self, values: Mapping[str, float] | None = None, **kwargs: float | None) -> None:
        merged = {**(values or {}), **kwargs}
        self._values = {k: float(v) for k, v in merged.items() if v is not None}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Limits) and self._values == other._values

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._values.items())))

    def __repr__(self) -> str:
        return f"Limits({self._values!r})"

    def get(self, name: str) -> float | None:
        """A limit by any spelling (``min_accuracy`` finds ``min_quality`` and back)."""
        canonical = canonical_limit(name)
        for key, value in self._values.items():
            if canonical_limit(key) == canonical:
                return value
        return None

    @property
    def max_p95_ms(self) -> float | None:
        return self.get("max_p95_ms")

    @property
    def max_p99_ms(self) -> float | None:
        return self.get("max_p99_ms")

    @property
    def max_cost_per_1k_usd(self) -> float | None:
        return self.get("max_cost_per_1k_usd")

    @property
    def min_quality(self) -> float | None:
        return self.get("min_quality")

    @property
    def max_quality_drop(self) -> float | None:
        return self.get("max_quality_drop")

    @property
    def min_throughput_ips(self) -> float | None:
        return self.get("min_throughput_ips")

    def merged_over(self, base: Limits) -> Limits:
        """These limits, falling back to ``base`` for each limit left unset here (an alias
        set here overrides its limit in ``base``)."""
        mine = {canonical_limit(k) for k in self._values}
        kept = {k: v for k, v in base._values.items() if canonical_limit(k) not in mine}
        return Limits({**kept, **self._values})

    def items(self) -> list[tuple[str, float]]:
        """The limits that are set, as (field as written, value): field limits first, in a
        fixed order, then metric limits in the order written."""
        order = {name: i for i, name in enumerate(LIMITS)}
        fields = sorted(
            (k for k in self._values if k in FIELD_LIMITS),
            key=lambda k: (order[canonical_limit(k)], k in ALIASES),
        )
        return [(k, self._values[k]) for k in fields] + [
            (k, v) for k, v in self._values.items() if k not in FIELD_LIMITS
        ]

    def metric_limits(self) -> list[MetricLimit]:
        """The limits on recorded metrics (``min_map50``, ``max_ece_increase``…)."""
        out = []
        for name, value in self._values.items():
            parsed = None if name in FIELD_LIMITS else parse_limit_key(name)
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
    #: The trial's primary metric, which names the quality limits (``map drop vs baseline``).
    metric: str = "quality"

    def describe(self) -> str:
        if self.field not in FIELD_LIMITS:
            parsed = parse_limit_key(self.field)
            kind, metric = parsed if parsed else ("max", self.field)
            return MetricLimit(self.field, kind, metric, self.limit).describe(self.value)
        _, sense, unit, label = LIMITS[canonical_limit(self.field)]
        label = label.format(metric=self.metric)
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
    limits: Limits,
    trial: TrialRecord,
    baseline_metrics: Mapping[str, float] | None = None,
    basis: str = "point",
    comparison: Any = None,
) -> list[Violation]:
    """The limits that ``trial`` fails; ``baseline_metrics`` (its target's baseline's quality
    metrics) are what ``_drop`` / ``_increase`` limits compare with. With ``quality_confidence``
    in the limits and the trial's paired ``comparison`` with its baseline
    (:class:`farm.evidence.Comparison`), the limits on the primary metric judge the worst end of
    its interval instead of the point estimate.

    A missing value fails its limit: a configuration is never passed on a number nobody measured.
    """
    if limits.get(CONFIDENCE) is not None and comparison is not None:
        trial, baseline_metrics = _at_worst_end(trial, comparison), baseline_metrics
        basis = f"worst end of the {comparison.confidence:.0%} interval".replace("%", " %")
    out = []
    metric = trial.metric_name
    for name, limit in limits.items():
        if name not in FIELD_LIMITS:
            continue
        field, sense, _, _ = LIMITS[canonical_limit(name)]
        if field == "quality":
            sense *= trial.quality_sense  # a minimum accuracy is a maximum CER
        value = getattr(trial, field)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            out.append(Violation(name, None, limit, basis, metric))
        elif (sense > 0 and value > limit) or (sense < 0 and value < limit):
            out.append(Violation(name, float(value), limit, basis, metric))
    metrics = trial.quality_metrics
    primary = trial.quality_metric or "accuracy"
    for ml in limits.metric_limits():
        ml = ml.resolved(primary, trial.quality_sense > 0)
        if ml.violation(metrics, baseline_metrics) > 1e-12:
            value = ml.value(metrics, baseline_metrics)
            on_primary = ml.metric == primary
            out.append(
                Violation(ml.field, value, ml.limit, basis if on_primary else "point", metric)
            )
    return out


def _at_worst_end(trial: TrialRecord, c: Any) -> TrialRecord:
    """``trial`` with its primary metric (quality, quality_drop, the metric itself) at the worst
    end of its paired interval ``c``."""
    metrics = at_worst_end(
        trial.quality_metrics, c.metric, c.low, c.high, c.delta, c.higher_is_better
    )
    worst = metrics.get(c.metric, trial.quality)
    shift = (worst - trial.quality) if worst is not None and trial.quality is not None else 0.0
    drop = None if trial.quality_drop is None else trial.quality_drop - shift * trial.quality_sense
    return trial.replace(quality=worst, quality_drop=drop, metrics=metrics)


@dataclass(frozen=True)
class Budget:
    """A budget file, parsed: limits for every target (``all``) and per target, and the
    confidence of the gate's tail-latency bound."""

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
    """A budget from its TOML table; every error names ``source`` and the field."""
    src = str(source)
    f = Fields(data, src)
    for key in data:
        if key not in ("all", "targets", "confidence"):
            raise f.error(key, "one of the top-level keys `all`, `targets`, `confidence`")
    confidence = f.number(
        "confidence", 0.95, low=0.5, high=1, high_open=True, expected="a number in [0.5, 1)"
    )
    all_limits = _parse_limits(f, "all")
    if not isinstance(data.get("targets", {}), Mapping):
        raise f.error("targets", "a table of per-target tables", data["targets"])
    targets_table = f.table_of("targets")
    targets = {name: _parse_limits(targets_table, name) for name in targets_table.table}
    if all_limits.is_empty() and all(v.is_empty() for v in targets.values()):
        raise f.error(
            "all / targets.<name>",
            f"at least one limit (one of {', '.join(LIMITS)}, or a metric limit)",
        )
    return Budget(src, all_limits, targets, confidence)


def _parse_limits(parent: Fields, key: str) -> Limits:
    from workloads.tasks import known_metrics

    where = parent.where(key)
    table = parent.table.get(key, {})
    if not isinstance(table, Mapping):
        raise parent.error(key, f"a table of limits ({', '.join(LIMITS)}, …)", table)
    f = Fields(table, parent.source, where)
    values: dict[str, float] = {}
    for name in table:
        if name == CONFIDENCE:
            values[name] = parse_confidence(f.source, f"{where}.{name}", table[name])
        if name not in FIELD_LIMITS:
            continue
        if canonical_limit(name) in FRACTIONS:
            values[name] = f.number(name, low=0, high=1, expected="a fraction in [0, 1]")
        else:
            values[name] = f.number(name, low=0, expected="a finite number >= 0")
    names, prefixes = known_metrics()
    try:
        metric_limits = parse_limits(f.source, where, table, names, prefixes, skip=FIELD_LIMITS)
    except SpecError as exc:
        raise SpecError(
            f.source,
            exc.field,
            f"one of {', '.join(FIELD_LIMITS)}, or a limit on a metric: {exc.expected}",
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
