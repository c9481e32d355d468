"""Job files: parse and validate ``job.toml`` into a frozen :class:`JobSpec`.

Validation never imports a runtime: it reads the target catalog and the job file only. Every
error names the file, the field path and what was expected (:class:`~farm.errors.SpecError`).

A job file::

    name = "digits-demo"
    targets = ["cpu-torch", "cpu-onnxruntime", "cpu-openvino"]

    [workload]            # what to optimize (see workloads/)
    name = "digits"

    [search]
    trials_per_target = 8
    time_budget_s = 600   # optional: no new trial starts after this
    sampler = "nsga2"     # or "tpe"
    seed = 0
    precision = ["fp32", "bf16", "int8"]   # offered to each target only where it supports it
    batch_size = [1, 8, 32]
    threads = [1, 2]

    [constraints]
    max_accuracy_drop = 0.01   # versus the target's own fp32 batch-1 baseline

    [measurement]         # overrides of the measurement contract (docs/measurement.md)
    min_duration_s = 1.0

    [prices]              # USD per hour, overriding targets/catalog.toml
    cpu-onnxruntime = 0.10
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from farm.errors import SpecError
from targets import catalog

SAMPLERS = ("nsga2", "tpe")
TOP_LEVEL = {
    "name",
    "targets",
    "workload",
    "search",
    "constraints",
    "measurement",
    "prices",
    "tracking",
    "evaluation",
}
TRACKING_FIELDS = {"mlflow_uri"}
SEARCH_FIELDS = {
    "trials_per_target",
    "sampler",
    "seed",
    "precision",
    "batch_size",
    "threads",
    "knobs",
    "transforms",
    "time_budget_s",
}
ALL_PRECISIONS = ("fp32", "bf16", "fp16", "int8")


@dataclass(frozen=True)
class SearchSpec:
    trials_per_target: int = 8
    sampler: str = "nsga2"
    seed: int = 0
    precision: tuple[str, ...] = ("fp32", "int8")
    batch_size: tuple[int, ...] = (1, 8)
    threads: tuple[int, ...] = (1,)
    #: Optional transforms beyond export/quantize (e.g. "prune"), see optimizers/.
    transforms: tuple[str, ...] = ()
    #: Knob name ("<transform>.<field>" or a runtime knob) -> allowed values, overriding defaults.
    knobs: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    #: Wall-clock budget of the whole job: no new trial starts after it (running ones finish).
    time_budget_s: float | None = None


@dataclass(frozen=True)
class JobSpec:
    name: str
    targets: tuple[str, ...]
    workload: dict[str, Any]
    search: SearchSpec
    #: ``max_accuracy_drop`` as written (the classification spelling of ``max_quality_drop``).
    max_accuracy_drop: float | None = None
    #: Every ``[constraints]`` limit as written: ``max_quality_drop``, ``min_map50``,
    #: ``max_ece_increase``… (see farm/spec/constraints.py); Optuna constraints of every study.
    constraints: dict[str, float] = field(default_factory=dict)
    measurement: dict[str, Any] = field(default_factory=dict)
    prices: dict[str, float] = field(default_factory=dict)
    #: MLflow tracking URI (``[tracking] mlflow_uri``); None: no tracking.
    mlflow_uri: str | None = None
    #: ``[evaluation]`` as written: release KPIs (workloads/kpis/spec.py).
    evaluation: dict[str, Any] = field(default_factory=dict)
    #: Directory the job file lives in: relative paths in [workload] resolve against it.
    base_dir: str = "."
    source: str = "<memory>"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, default=list)

    def __hash__(self) -> int:
        # the [workload], [measurement]… tables stay dicts as written: hashed by their JSON
        return hash(self.to_json())

    def price_per_hour(self, target: str) -> float:
        return self.prices.get(target, catalog()[target].price_per_hour_usd)

    def with_trials(self, trials: int) -> JobSpec:
        search = SearchSpec(**{**asdict(self.search), "trials_per_target": trials})
        return JobSpec(**{**self.__dict__, "search": search})

    @classmethod
    def from_json(cls, text: str) -> JobSpec:
        raw = json.loads(text)
        s = raw.pop("search")
        search = SearchSpec(
            **{
                **s,
                "precision": tuple(s["precision"]),
                "batch_size": tuple(s["batch_size"]),
                "threads": tuple(s["threads"]),
                "transforms": tuple(s.get("transforms", ())),
                "knobs": {k: tuple(v) for k, v in s.get("knobs", {}).items()},
            }
        )
        return cls(**{**raw, "targets": tuple(raw["targets"]), "search": search})


def load_job(path: str | Path) -> JobSpec:
    """Read and validate a job file. Raises :class:`SpecError` on any problem."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(path, "<file>", "an existing TOML job file", str(path))
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(path, "<file>", f"valid TOML ({exc})") from None
    return parse_job(raw, source=path)


def parse_job(raw: dict[str, Any], source: str | Path = "<memory>") -> JobSpec:
    v = _Validator(source)
    v.no_unknown(raw, TOP_LEVEL, "")
    name = v.typed(raw, "name", str, "a non-empty string", required=True)
    if not name.strip():
        raise SpecError(source, "name", "a non-empty string", name)

    targets = v.typed(raw, "targets", list, "a non-empty list of target names", required=True)
    known = catalog()
    if not targets:
        raise SpecError(source, "targets", "a non-empty list of target names", targets)
    for i, t in enumerate(targets):
        if t not in known:
            raise SpecError(source, f"targets[{i}]", f"one of {sorted(known)}", t)
    if len(set(targets)) != len(targets):
        raise SpecError(source, "targets", "each target at most once", targets)

    workload = v.typed(raw, "workload", dict, "a [workload] table", required=True)

    search_raw = v.typed(raw, "search", dict, "a [search] table") or {}
    v.no_unknown(search_raw, SEARCH_FIELDS, "search")
    search = _parse_search(v, search_raw, targets)

    constraints = v.typed(raw, "constraints", dict, "a [constraints] table") or {}
    limits = _parse_constraints(source, workload, constraints)
    drop = constraints.get("max_accuracy_drop")
    if drop is not None and not 0 <= drop <= 1:
        raise SpecError(source, "constraints.max_accuracy_drop", "a number in [0, 1]", drop)

    measurement = v.typed(raw, "measurement", dict, "a [measurement] table") or {}
    _check_measurement(source, measurement)

    prices = v.typed(raw, "prices", dict, "a [prices] table of target = USD per hour") or {}
    for t, p in prices.items():
        if t not in targets:
            raise SpecError(source, f"prices.{t}", f"a target of this job ({targets})", t)
        if not isinstance(p, int | float) or isinstance(p, bool) or p <= 0:
            raise SpecError(source, f"prices.{t}", "a positive number (USD per hour)", p)

    tracking = v.typed(raw, "tracking", dict, "a [tracking] table") or {}
    v.no_unknown(tracking, TRACKING_FIELDS, "tracking")
    mlflow_uri = v.typed(tracking, "mlflow_uri", str, "an MLflow tracking URI", prefix="tracking")
    if mlflow_uri is not None and not mlflow_uri.strip():
        raise SpecError(source, "tracking.mlflow_uri", "a non-empty MLflow tracking URI", "")

    evaluation = v.typed(raw, "evaluation", dict, "an [evaluation] table") or {}
    from workloads.kpis.spec import parse_evaluation

    parse_evaluation(source, evaluation)

    base_dir = str(Path(source).resolve().parent) if Path(str(source)).exists() else "."
    return JobSpec(
        name=name,
        targets=tuple(targets),
        workload=workload,
        search=search,
        max_accuracy_drop=None if drop is None else float(drop),
        constraints={c.field: c.limit for c in limits},
        measurement=measurement,
        prices={k: float(p) for k, p in prices.items()},
        mlflow_uri=mlflow_uri,
        evaluation=evaluation,
        base_dir=base_dir,
        source=str(source),
    )


def _parse_constraints(
    source: str | Path, workload: dict[str, Any], table: dict[str, Any]
) -> list[Any]:
    """The ``[constraints]`` limits, checked against the metrics the job's task records (the
    embedded workloads and torchvision architectures name their task themselves; the final check
    against what the data allows happens when the job is prepared)."""
    from farm.spec.constraints import parse_limits
    from workloads.tasks import known_metrics

    task = workload.get("task") if isinstance(workload.get("task"), str) else None
    names, prefixes = known_metrics(task)
    limits = parse_limits(source, "constraints", table, names, prefixes)
    if "max_accuracy_drop" in table and "max_quality_drop" in table:
        raise SpecError(
            source,
            "constraints.max_accuracy_drop",
            "either max_accuracy_drop or max_quality_drop (they are the same limit)",
        )
    return limits


def _parse_search(v: _Validator, raw: dict[str, Any], targets: list[str]) -> SearchSpec:
    src = v.source
    trials = v.typed(raw, "trials_per_target", int, "a positive integer", prefix="search")
    if trials is not None and trials < 1:
        raise SpecError(src, "search.trials_per_target", "a positive integer", trials)
    sampler = v.typed(raw, "sampler", str, f"one of {SAMPLERS}", prefix="search")
    if sampler is not None and sampler not in SAMPLERS:
        raise SpecError(src, "search.sampler", f"one of {SAMPLERS}", sampler)
    seed = v.typed(raw, "seed", int, "an integer", prefix="search")

    precision = _choices(v, raw, "precision", str, ("fp32", "int8"))
    for p in precision:
        if p not in ALL_PRECISIONS:
            raise SpecError(src, "search.precision", f"values from {ALL_PRECISIONS}", p)
    offered = {p for t in targets for p in catalog()[t].precisions}
    if not set(precision) & offered:
        raise SpecError(
            src,
            "search.precision",
            f"at least one precision the targets support {sorted(offered)}",
            list(precision),
        )
    batch = _choices(v, raw, "batch_size", int, (1, 8))
    threads = _choices(v, raw, "threads", int, (1,))
    for name, values in (("batch_size", batch), ("threads", threads)):
        if any(x < 1 for x in values):
            raise SpecError(src, f"search.{name}", "positive integers", list(values))

    transforms = _choices(v, raw, "transforms", str, (), allow_empty=True)
    knobs_raw = v.typed(raw, "knobs", dict, "a table of knob = [values]", prefix="search") or {}
    knobs: dict[str, tuple[Any, ...]] = {}
    for k, values in knobs_raw.items():
        if not isinstance(values, list) or not values:
            raise SpecError(src, f"search.knobs.{k}", "a non-empty list of values", values)
        knobs[k] = tuple(values)

    budget = raw.get("time_budget_s")
    if budget is not None and (
        not isinstance(budget, int | float) or isinstance(budget, bool) or budget <= 0
    ):
        raise SpecError(src, "search.time_budget_s", "a positive number of seconds", budget)

    return SearchSpec(
        time_budget_s=None if budget is None else float(budget),
        trials_per_target=trials or SearchSpec.trials_per_target,
        sampler=sampler or SearchSpec.sampler,
        seed=seed if seed is not None else 0,
        precision=precision,
        batch_size=batch,
        threads=threads,
        transforms=transforms,
        knobs=knobs,
    )


def _choices(
    v: _Validator,
    raw: dict[str, Any],
    key: str,
    kind: type,
    default: tuple[Any, ...],
    allow_empty: bool = False,
) -> tuple[Any, ...]:
    if key not in raw:
        return default
    values = raw[key]
    expected = f"a {'' if allow_empty else 'non-empty '}list of {kind.__name__}"
    if not isinstance(values, list) or (not values and not allow_empty):
        raise SpecError(v.source, f"search.{key}", expected, values)
    for x in values:
        if not isinstance(x, kind) or isinstance(x, bool):
            raise SpecError(v.source, f"search.{key}", expected, values)
    return tuple(dict.fromkeys(values))  # de-duplicated, order kept


def _check_measurement(source: str | Path, table: dict[str, Any]) -> None:
    """Check the [measurement] table against the contract's fields (no heavy import)."""
    from farm.measure.contract import Contract  # standard library only

    try:
        Contract.from_dict(table)
    except Exception as exc:  # the contract names the field and the rule
        raise SpecError(source, "measurement", str(exc)) from None
    if table.get("scenario") == "server":
        # Under Poisson arrivals the measured throughput is the offered load (qps × batch), not
        # the candidate's capacity, so cost per 1k would be the same for every candidate.
        raise SpecError(
            source,
            "measurement.scenario",
            "single-stream or offline in a job (use `farm measure --scenario server` to study "
            "latency under load: a job's cost objective needs the candidate's capacity)",
            "server",
        )


class _Validator:
    def __init__(self, source: str | Path) -> None:
        self.source = source

    def no_unknown(self, table: dict[str, Any], allowed: set[str], prefix: str) -> None:
        for key in table:
            if key not in allowed:
                where = f"{prefix}.{key}" if prefix else key
                raise SpecError(self.source, where, f"one of the known fields {sorted(allowed)}")

    def typed(
        self,
        table: dict[str, Any],
        key: str,
        kind: type,
        expected: str,
        required: bool = False,
        prefix: str = "",
    ) -> Any:
        where = f"{prefix}.{key}" if prefix else key
        if key not in table:
            if required:
                raise SpecError(self.source, where, f"{expected} (the field is required)")
            return None
        value = table[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise SpecError(self.source, where, expected, value)
        return value
