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
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farm._validate import Fields
from farm.errors import SpecError, UsageError
from targets import catalog

if TYPE_CHECKING:
    from farm.measure.contract import Contract
    from workloads.kpis.spec import EvaluationSpec

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
#: JobSpec fields parsed from others, left out of its JSON.
PARSED = ("kpis", "contract")
#: Stands in for a parsed field while the spec is written out (never parsed itself).
_UNSET: Any = object()


@dataclass(frozen=True)
class SearchSpec:
    """``[search]``: how many trials per target, the sampler, and the values each knob may
    take (the base knobs precision, batch size and threads; transforms' knobs by name)."""

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
    """A job file, validated: what to optimise (``workload``), where (``targets``), how to
    search, the limits a candidate must meet, how to measure, and what to report. Frozen and
    hashable; :meth:`to_json` is what the store keeps (the job's ``spec``), and
    :meth:`from_json` reads it back. The ``[evaluation]`` and ``[measurement]`` tables are kept
    as written and also parsed once, when the spec is built (:attr:`kpis`, :attr:`contract`)."""

    name: str
    targets: tuple[str, ...]
    workload: dict[str, Any]
    search: SearchSpec
    #: ``max_accuracy_drop`` as written (the classification spelling of ``max_quality_drop``).
    max_accuracy_drop: float | None = None
    #: Every ``[constraints]`` limit as written: ``max_quality_drop``, ``min_map50``,
    #: ``max_ece_increase``… (see farm/spec/constraints.py); Optuna constraints of every study.
    #: ``quality_confidence``, when written, is kept here too (how those limits are judged).
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
    #: ``[evaluation]`` parsed: the release KPIs to compute (not part of :meth:`to_json`).
    kpis: EvaluationSpec = field(default=None, compare=False, repr=False)  # type: ignore
    #: The measurement contract with the ``[measurement]`` overrides (not part of
    #: :meth:`to_json`).
    contract: Contract = field(default=None, compare=False, repr=False)  # type: ignore

    def __post_init__(self) -> None:
        if self.kpis is None:
            object.__setattr__(self, "kpis", _kpis(self.source, dict(self.evaluation)))
        if self.contract is None:
            object.__setattr__(self, "contract", _contract(self.source, dict(self.measurement)))

    def to_json(self) -> str:
        data = asdict(replace(self, kpis=_UNSET, contract=_UNSET))
        for name in PARSED:
            del data[name]
        return json.dumps(data, sort_keys=True, default=list)

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
        for name in PARSED:
            raw.pop(name, None)
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


def parse_job(raw: Mapping[str, Any], source: str | Path = "<memory>") -> JobSpec:
    """Validate a job file's table (``source`` names it in every error) into a JobSpec."""
    f = Fields(raw, source)
    f.only(TOP_LEVEL)
    name = f.string("name")
    targets = _targets(f)
    workload = dict(f.table_of("workload", required=True).table)
    search = _parse_search(f.table_of("search"), targets)
    constraints = f.table_of("constraints")
    limits = _parse_constraints(source, workload, constraints)
    drop = constraints.number(
        "max_accuracy_drop", None, low=0, high=1, expected="a number in [0, 1]"
    )
    measurement = dict(f.table_of("measurement").table)
    contract = _contract(source, measurement)
    prices = _prices(f.table_of("prices"), targets)
    tracking = f.table_of("tracking")
    tracking.only(TRACKING_FIELDS)
    mlflow_uri = tracking.string("mlflow_uri", None, expected="a non-empty MLflow tracking URI")
    evaluation = dict(f.table_of("evaluation").table)
    kpis = _kpis(source, evaluation)
    base_dir = str(Path(source).resolve().parent) if Path(str(source)).exists() else "."
    return JobSpec(
        name=name,
        targets=targets,
        workload=workload,
        search=search,
        max_accuracy_drop=drop,
        constraints={c.field: c.limit for c in limits} | _confidence(constraints),
        measurement=measurement,
        prices=prices,
        mlflow_uri=mlflow_uri,
        evaluation=evaluation,
        base_dir=base_dir,
        source=str(source),
        kpis=kpis,
        contract=contract,
    )


def _targets(f: Fields) -> tuple[str, ...]:
    """``targets``: names from the catalog, each at most once."""
    known = catalog()
    targets = f.strings("targets", unique=False)
    for i, t in enumerate(targets):
        if t not in known:
            raise SpecError(f.source, f"targets[{i}]", f"one of {sorted(known)}", t)
    if len(set(targets)) != len(targets):
        raise f.error("targets", "each target at most once", list(targets))
    return tuple(targets)


def _prices(f: Fields, targets: tuple[str, ...]) -> dict[str, float]:
    """``[prices]``: USD per hour of this job's targets, overriding the catalog."""
    prices = {}
    for target in f.table:
        if target not in targets:
            raise f.error(target, f"a target of this job ({list(targets)})", target)
        prices[target] = f.number(
            target, low=0, low_open=True, expected="a positive number (USD per hour)"
        )
    return prices


def _confidence(f: Fields) -> dict[str, float]:
    """``quality_confidence`` as written (checked by :func:`_parse_constraints`), kept with
    the limits it changes."""
    raw = f.table.get("quality_confidence")
    return {} if raw is None else {"quality_confidence": float(raw)}


def _parse_constraints(source: str | Path, workload: dict[str, Any], f: Fields) -> list[Any]:
    """The ``[constraints]`` limits, checked against the metrics the job's task records (the
    embedded workloads and torchvision architectures name their task themselves; the final check
    against what the data allows happens when the job is prepared)."""
    from farm.spec.constraints import parse_limits
    from workloads.tasks import known_metrics

    task = workload.get("task") if isinstance(workload.get("task"), str) else None
    names, prefixes = known_metrics(task)
    limits = parse_limits(source, "constraints", f.table, names, prefixes)
    if "max_accuracy_drop" in f and "max_quality_drop" in f:
        raise f.error(
            "max_accuracy_drop",
            "either max_accuracy_drop or max_quality_drop (they are the same limit)",
        )
    return limits


def _parse_search(f: Fields, targets: tuple[str, ...]) -> SearchSpec:
    """``[search]``: every field optional, defaults from :class:`SearchSpec`."""
    f.only(SEARCH_FIELDS)
    defaults = SearchSpec()
    precision = _choices(f, "precision", str, defaults.precision)
    for p in precision:
        if p not in ALL_PRECISIONS:
            raise f.error("precision", f"values from {ALL_PRECISIONS}", p)
    offered = {p for t in targets for p in catalog()[t].precisions}
    if not set(precision) & offered:
        raise f.error(
            "precision",
            f"at least one precision the targets support {sorted(offered)}",
            list(precision),
        )
    batch = _choices(f, "batch_size", int, defaults.batch_size)
    threads = _choices(f, "threads", int, defaults.threads)
    for key, values in (("batch_size", batch), ("threads", threads)):
        if any(x < 1 for x in values):
            raise f.error(key, "positive integers", list(values))
    knobs = f.table_of("knobs")
    for k, values in knobs.table.items():
        if not isinstance(values, list) or not values:
            raise knobs.error(k, "a non-empty list of values", values)
    return SearchSpec(
        trials_per_target=f.positive_int("trials_per_target", defaults.trials_per_target),
        sampler=f.string("sampler", defaults.sampler, choices=SAMPLERS),
        seed=f.integer("seed", defaults.seed),
        precision=precision,
        batch_size=batch,
        threads=threads,
        transforms=_choices(f, "transforms", str, (), allow_empty=True),
        knobs={k: tuple(v) for k, v in knobs.table.items()},
        time_budget_s=f.number(
            "time_budget_s", None, low=0, low_open=True, expected="a positive number of seconds"
        ),
    )


def _choices(
    f: Fields, key: str, kind: type, default: tuple[Any, ...], allow_empty: bool = False
) -> tuple[Any, ...]:
    """A list of values of one type, de-duplicated in order (``default`` when absent)."""
    if key not in f:
        return default
    values = f.table[key]
    expected = f"a {'' if allow_empty else 'non-empty '}list of {kind.__name__}"
    ok = isinstance(values, list) and (bool(values) or allow_empty)
    if not ok or any(not isinstance(x, kind) or isinstance(x, bool) for x in values):
        raise f.error(key, expected, values)
    return tuple(dict.fromkeys(values))  # de-duplicated, order kept


def _kpis(source: str | Path, table: dict[str, Any]) -> EvaluationSpec:
    """``[evaluation]`` parsed (it names the file and field on any problem)."""
    from workloads.kpis.spec import parse_evaluation

    return parse_evaluation(source, table)


def _contract(source: str | Path, table: dict[str, Any]) -> Contract:
    """The measurement contract with the ``[measurement]`` overrides (no heavy import)."""
    from farm.measure.contract import Contract  # standard library only

    try:
        contract = Contract.from_dict(table)
    except (UsageError, TypeError, ValueError) as exc:  # it names the field and the rule
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
    return contract
