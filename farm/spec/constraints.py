"""Limits on quality metrics: job constraints (``[constraints]``) and budget limits.

Any metric a trial records can be limited, in four spellings:

* ``min_<metric>`` / ``max_<metric>``: the trial's own value (``min_map50 = 0.6``);
* ``max_<metric>_drop``: at most this much below the target's fp32 baseline
  (``max_map_drop = 0.01``); ``max_<metric>_increase``: at most this much above it
  (``max_ece_increase = 0.01``, for metrics where lower is better);
* ``min_<metric>_ratio``: at least this fraction of the baseline's value
  (``min_quality_ratio = 0.99``; for an error rate, the baseline's over the trial's).

``quality_confidence = 0.95`` is not a limit but how the limits on the primary metric are
judged: on the worst end of the candidate's paired interval against its baseline (the upper
end of its drop's interval) instead of the point estimate, where the two were judged on the
same images (farm/evidence).

``quality`` names the job's primary metric (accuracy, mAP, mIoU, or a fidelity metric without
labels), so ``max_quality_drop`` works for every task; ``max_accuracy_drop`` is its
classification spelling and keeps its meaning (a drop of the primary metric). Metric names may
hold a slash (``"min_ap/person" = 0.5``: quote the key in TOML).

Standard library only: job files are validated without importing a runtime.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from farm._validate import is_number
from farm.errors import SpecError

#: The name that stands for the job's primary quality metric.
QUALITY = "quality"
KINDS = ("min", "max", "drop", "increase", "ratio", "inverse_ratio")
#: The field that makes the limits on the primary metric judge its interval's worst end.
CONFIDENCE = "quality_confidence"


@dataclass(frozen=True)
class MetricLimit:
    """One limit on one metric, as written (``field``) and resolved (``kind``, ``metric``)."""

    field: str
    kind: str  # min | max | drop | increase
    metric: str  # a metric name, or QUALITY
    limit: float

    def resolved(self, primary: str, higher_is_better: bool = True) -> MetricLimit:
        """This limit with ``quality`` replaced by the job's primary metric. For an error rate
        (``higher_is_better`` False: CER) a drop of quality is an increase of the metric, and a
        minimum quality a maximum of it."""
        if self.metric != QUALITY:
            return self
        kind = self.kind
        if not higher_is_better:
            kind = {
                "drop": "increase",
                "min": "max",
                "max": "min",
                "increase": "drop",
                "ratio": "inverse_ratio",
                "inverse_ratio": "ratio",
            }[kind]
        return MetricLimit(self.field, kind, primary, self.limit)

    def value(
        self, metrics: Mapping[str, float], baseline: Mapping[str, float] | None
    ) -> float | None:
        """The limited quantity: the metric, or its change against the baseline (None when a
        number it needs was not measured)."""
        value = metrics.get(self.metric)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        if self.kind in ("min", "max"):
            return float(value)
        base = (baseline or {}).get(self.metric)
        if base is None:
            return None
        if self.kind in ("ratio", "inverse_ratio"):
            num, den = (value, base) if self.kind == "ratio" else (base, value)
            return float(num) / float(den) if den else (math.inf if num else 1.0)
        return float(base) - float(value) if self.kind == "drop" else float(value) - float(base)

    def violation(
        self, metrics: Mapping[str, float], baseline: Mapping[str, float] | None
    ) -> float:
        """How far past the limit (> 0: violated; an unmeasured value violates it)."""
        value = self.value(metrics, baseline)
        if value is None:
            return math.inf
        at_least = self.kind in ("min", "ratio", "inverse_ratio")
        return self.limit - value if at_least else value - self.limit

    def describe(self, value: float | None) -> str:
        what = {
            "min": f"{self.metric}",
            "max": f"{self.metric}",
            "drop": f"{self.metric} drop vs baseline",
            "increase": f"{self.metric} increase vs baseline",
            "ratio": f"{self.metric} / baseline",
            "inverse_ratio": f"baseline / {self.metric}",
        }[self.kind]
        if value is None:
            return f"{what} not measured (limit {self.field} = {self.limit:g})"
        op = "<" if self.kind in ("min", "ratio", "inverse_ratio") else ">"
        return f"{what} {value:.4g} {op} {self.limit:g} ({self.field})"


def parse_limit_key(key: str) -> tuple[str, str] | None:
    """``(kind, metric)`` of a limit field name, or None when it is not one."""
    if key == "max_accuracy_drop":
        return ("drop", QUALITY)
    if key.startswith("max_") and key.endswith("_drop") and len(key) > len("max__drop"):
        return ("drop", key[4:-5])
    if key.startswith("max_") and key.endswith("_increase") and len(key) > len("max__increase"):
        return ("increase", key[4:-9])
    if key.startswith("min_") and key.endswith("_ratio") and len(key) > len("min__ratio"):
        return ("ratio", key[4:-6])
    for kind in ("min", "max"):
        prefix = f"{kind}_"
        if key.startswith(prefix) and len(key) > len(prefix):
            return (kind, key[len(prefix) :])
    return None


def is_known(metric: str, names: Iterable[str], prefixes: Iterable[str]) -> bool:
    """Whether ``metric`` is one a trial can record (a name, or a per-class ``prefix/…``)."""
    if metric == QUALITY or metric in set(names):
        return True
    return any(metric.startswith(p) and len(metric) > len(p) for p in prefixes)


def parse_limits(
    source: object,
    where: str,
    table: Mapping[str, object],
    names: Iterable[str],
    prefixes: Iterable[str],
    skip: Iterable[str] = (),
) -> list[MetricLimit]:
    """The metric limits of a table (``[constraints]``, a budget's ``[all]``…); fields in
    ``skip`` belong to someone else (a budget's latency limits). Names the field and what was
    expected on any problem."""
    names, prefixes, skip = list(names), list(prefixes), set(skip)
    out = []
    for key, raw in table.items():
        if key in skip:
            continue
        if key == CONFIDENCE:
            parse_confidence(source, f"{where}.{key}", raw)
            continue
        parsed = parse_limit_key(key)
        if parsed is None:
            raise SpecError(
                source,
                f"{where}.{key}",
                "a limit named min_<metric>, max_<metric>, max_<metric>_drop, "
                "max_<metric>_increase or min_<metric>_ratio, or quality_confidence "
                "(docs/budgets.md)",
            )
        kind, metric = parsed
        if not is_known(metric, names, prefixes):
            per_class = ", ".join(p + "<class>" for p in prefixes)
            known = ", ".join([f"{QUALITY} (the primary metric)", *sorted(names)])
            raise SpecError(
                source,
                f"{where}.{key}",
                f"a metric this job records: {known}"
                + (f", or per-class {per_class}" if per_class else ""),
                metric,
            )
        if not is_number(raw):
            raise SpecError(source, f"{where}.{key}", "a finite number", raw)
        limit = float(raw)  # type: ignore[arg-type]
        if kind in ("drop", "increase", "ratio") and limit < 0:
            raise SpecError(source, f"{where}.{key}", "a number >= 0", raw)
        out.append(MetricLimit(key, kind, metric, limit))
    return out


def parse_confidence(source: object, field: str, raw: object) -> float:
    """``quality_confidence``: a fraction strictly between 0 and 1 (0.95 for 95 %)."""
    if not is_number(raw) or not 0 < float(raw) < 1:  # type: ignore[arg-type]
        raise SpecError(source, field, "a confidence strictly between 0 and 1 (0.95)", raw)
    return float(raw)  # type: ignore[arg-type]


def at_worst_end(
    metrics: Mapping[str, float], metric: str, low: float, high: float, delta: float, higher: bool
) -> dict[str, float]:
    """``metrics`` with ``metric`` moved to the worst end of its paired interval of the change
    against the baseline (``low``/``high`` of ``value - baseline``, ``delta`` the point):
    what the limits judge under ``quality_confidence``."""
    out = dict(metrics)
    if metric in out and math.isfinite(low) and math.isfinite(high):
        out[metric] = float(out[metric]) + ((low if higher else high) - delta)
    return out
