"""Typed records of the store: a trial and a job as frozen objects, JSON columns parsed once.

:class:`TrialRecord` is the *Trial* of the architecture: the engine builds one per finished trial
and the store writes it; every reader (fronts, recommend, the gate, the card, reports, the API)
gets records back from :class:`~farm.store.db.Store` instead of dicts read by string keys, so a
renamed field is one edit that mypy checks everywhere. The trial table's columns are derived
from the record's fields (:data:`TRIAL_COLUMNS`) and a test checks them against the migrated
schema.

The primary quality metric of a task (top-1 accuracy, COCO mAP, mIoU, a fidelity) is
``quality``, named by ``quality_metric``; the store also writes it to the old ``accuracy`` /
``accuracy_drop`` columns so that SQL written before the rename keeps working (docs/store.md).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from farm._io import canonical_json, json_mapping

#: Marks a record field that is not a column of its table (filled from another table).
NOT_A_COLUMN = {"column": False}
#: Fields stored as JSON text and held parsed.
JSON_FIELDS = frozenset({"params", "contract", "spec"})
#: Columns kept after a rename so that older SQL keeps working: column -> the field it copies.
COMPAT_COLUMNS = {"accuracy": "quality", "accuracy_drop": "quality_drop"}


@dataclass(frozen=True)
class TrialRecord:
    """One trial: a candidate evaluated on a target, or its failure (a row of ``trials``).

    Frozen; hashable by its key ``(job_id, target, trial_number)``. ``params`` and ``contract``
    are dicts parsed from their JSON columns; ``metrics`` holds every quality metric of the
    trial from the ``metrics`` table (empty for a failed trial). Columns are documented in
    docs/store.md."""

    job_id: str
    target: str
    #: Per (job, target) study, from 0 (the fp32 batch-1 baseline).
    trial_number: int
    is_baseline: bool
    candidate_hash: str
    #: The knob values of the candidate and the task settings that change quality.
    params: Mapping[str, Any]
    #: ``completed`` | ``failed``.
    status: str
    error: str | None = None
    node_id: str | None = None
    node_host: str | None = None
    node_ip: str | None = None
    attempts: int = 0
    #: Requested float precision (fp32 | bf16 | fp16 | int8) and what the runtime reported.
    precision: str | None = None
    precision_actual: str | None = None
    batch_size: int | None = None
    threads: int | None = None
    #: The task's primary metric on the target runtime (``quality_metric`` names it) and its
    #: drop against the target's baseline (baseline minus this trial).
    quality: float | None = None
    quality_drop: float | None = None
    quality_metric: str | None = None
    #: Whether a larger ``quality`` is better (False for an error rate such as CER); None in
    #: rows stored before the column existed, which were all higher-is-better.
    quality_higher_is_better: bool | None = None
    latency_p50_ms: float | None = None
    latency_p90_ms: float | None = None
    latency_p95_ms: float | None = None
    latency_p99_ms: float | None = None
    latency_mean_ms: float | None = None
    latency_std_ms: float | None = None
    latency_cv: float | None = None
    #: Images per second.
    throughput_ips: float | None = None
    #: price_per_hour / (throughput * 3600) * 1000.
    cost_per_1k_usd: float | None = None
    price_per_hour_usd: float | None = None
    priced_as: str | None = None
    gpu_model: str | None = None
    device_latency_p50_ms: float | None = None
    device_latency_p95_ms: float | None = None
    device_memory_mib: float | None = None
    n_samples: int | None = None
    stable: bool | None = None
    unstable_reason: str | None = None
    cold_ms: float | None = None
    compile_s: float | None = None
    build_s: float | None = None
    measure_s: float | None = None
    eval_s: float | None = None
    trial_s: float | None = None
    orchestration_s: float | None = None
    cache_hit: bool | None = None
    artifact_hash: str | None = None
    artifact_bytes: int | None = None
    build_key: str | None = None
    #: Peak resident memory of the evaluating process, MiB (KiB / 1024).
    peak_rss_mb: float | None = None
    env_id: str | None = None
    #: The measurement contract (docs/measurement.md), parsed.
    contract: Mapping[str, Any] | None = None
    feasible: bool | None = None
    infeasible_reason: str | None = None
    on_front: bool = False
    on_global_front: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None
    #: Every quality metric of the trial (the ``metrics`` table): name -> value.
    metrics: Mapping[str, float] = field(default_factory=dict, metadata=NOT_A_COLUMN)

    def __hash__(self) -> int:
        return hash(self.key)

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.job_id, self.target, self.trial_number)

    @property
    def quality_sense(self) -> int:
        """+1 when a larger ``quality`` is better, -1 when a smaller one is (CER)."""
        return -1 if self.quality_higher_is_better is False else +1

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    def metric(self, name: str) -> float | None:
        """A quality metric by name (the primary one too, under its own name or ``quality``)."""
        if name == "quality":
            return self.quality
        value = self.metrics.get(name)
        if value is None and name == self.quality_metric:
            return self.quality
        return value

    @property
    def quality_metrics(self) -> dict[str, float]:
        """Every quality metric of the trial, the primary one under its own name too (what
        budget limits such as ``min_map50`` or ``max_ece_increase`` read)."""
        out = dict(self.metrics)
        if self.quality_metric and self.quality is not None:
            out.setdefault(self.quality_metric, float(self.quality))
        return out

    @property
    def metric_name(self) -> str:
        """The primary metric's own name (``accuracy``, ``map``…), ``quality`` when unknown."""
        return self.quality_metric or "quality"

    def replace(self, **changes: Any) -> TrialRecord:
        return dataclasses.replace(self, **changes)

    def to_row(self) -> dict[str, Any]:
        """The record as the ``trials`` row the store writes: JSON fields as text, and the
        compatibility columns (``accuracy`` = ``quality``…). What ``SELECT *`` returns, and
        what JSON outputs have always printed."""
        row = {c: getattr(self, c) for c in TRIAL_FIELDS}
        for c in JSON_FIELDS & row.keys():
            row[c] = None if row[c] is None else canonical_json(dict(row[c]))
        for compat, source in COMPAT_COLUMNS.items():
            row[compat] = row[source]
        return row

    @classmethod
    def from_row(
        cls, row: Mapping[str, Any], metrics: Mapping[str, float] | None = None
    ) -> TrialRecord:
        """A record from a ``SELECT * FROM trials`` row (of any schema version: a column a
        store not yet migrated lacks is None; ``accuracy`` is read as ``quality`` there)."""
        values = {k: v for k, v in row.items() if k in _FIELD_SET}
        if "quality" not in row:
            for compat, source in COMPAT_COLUMNS.items():
                if compat in row:
                    values[source] = row[compat]
        values["params"] = _json_column(values.get("params"))
        if values.get("contract") is not None:
            values["contract"] = _json_column(values["contract"])
        values["on_front"] = bool(values.get("on_front") or False)
        values["on_global_front"] = bool(values.get("on_global_front") or False)
        values["attempts"] = int(values.get("attempts") or 0)
        values["metrics"] = dict(metrics or {})
        return cls(**values)


@dataclass(frozen=True)
class JobRecord:
    """One job (a row of ``jobs``): its spec as written (parsed), status and why it ended.

    ``trials``, ``completed`` and ``failed`` count its trials where the store lists jobs
    (:meth:`~farm.store.db.Store.jobs`); they are not columns."""

    job_id: str
    name: str
    #: The job spec as JSON (``farm.spec.JobSpec.to_json``), parsed.
    spec: Mapping[str, Any]
    #: running | completed | interrupted | failed.
    status: str
    created_at: datetime | None = None
    finished_at: datetime | None = None
    #: Why it ended, lost capacity, targets with no result, the cache's hit rate.
    message: str | None = None
    #: A caller's label (a git sha a release history is keyed by).
    label: str | None = None
    #: The workload's task (classification, detection, …).
    task: str | None = None
    #: How the calibration images were chosen and how many (``folder data/calib (64 images)``).
    calibration: str | None = None
    trials: int = field(default=0, metadata=NOT_A_COLUMN)
    completed: int = field(default=0, metadata=NOT_A_COLUMN)
    failed: int = field(default=0, metadata=NOT_A_COLUMN)

    def __hash__(self) -> int:
        return hash(self.job_id)

    def to_row(self) -> dict[str, Any]:
        """The record as the ``jobs`` row (the spec as canonical JSON text)."""
        row = {c: getattr(self, c) for c in JOB_COLUMNS}
        row["spec"] = canonical_json(dict(self.spec))
        return row

    def job_spec(self) -> Any:
        """The :class:`~farm.spec.JobSpec` the job ran."""
        from farm.spec.job import JobSpec

        return JobSpec.from_json(canonical_json(dict(self.spec)))

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> JobRecord:
        values = {f.name: row[f.name] for f in fields(cls) if f.name in row}
        values["spec"] = json_mapping(values.get("spec"))
        for count in ("trials", "completed", "failed"):
            values[count] = int(values.get(count) or 0)
        return cls(**values)


@lru_cache(maxsize=4096)
def _parsed(text: str) -> Mapping[str, Any]:
    return MappingProxyType(json_mapping(text))


def _json_column(value: Any) -> dict[str, Any]:
    """A JSON column as a fresh dict. The trials of a job share a few contracts and often
    params, so the text is parsed once per distinct value (a report reads a million trials)."""
    if isinstance(value, str):
        return dict(_parsed(value))
    return json_mapping(value)


def columns(record_type: type) -> tuple[str, ...]:
    """The table columns of a record type: its fields, less those marked not a column."""
    return tuple(f.name for f in fields(record_type) if f.metadata.get("column", True))


#: The record's fields that are columns of ``trials`` (the compatibility columns aside).
TRIAL_FIELDS = columns(TrialRecord)
_FIELD_SET = frozenset(TRIAL_FIELDS)
#: Every column the store writes to ``trials``.
TRIAL_COLUMNS = (*TRIAL_FIELDS, *COMPAT_COLUMNS)
JOB_COLUMNS = columns(JobRecord)
