"""A job as the gate reads it: from the store, or from a ``farm export --format json`` file.

The export file is this object written out, so CI can keep one file as its gate baseline instead
of a whole store. Its format (``format = "farm-export"``, ``version = 1``): the job's row (spec
as an object), every trial as the store's row (params and contract as objects; its ``metrics``
map; its raw ``latency_samples_ms``; ``quality`` / ``quality_drop`` beside their compatibility
names ``accuracy`` / ``accuracy_drop``), the environments' fingerprints and, with
``--with-artifacts``, the folder its artifacts were copied to. A file written before the
``quality`` rename (``accuracy`` only) reads the same.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from farm._io import canonical_json
from farm._validate import Fields
from farm.errors import SpecError, UsageError
from farm.store.db import Store
from farm.store.records import JOB_COLUMNS, JobRecord, TrialRecord

EXPORT_FORMAT = "farm-export"
EXPORT_VERSION = 1
#: Fields every exported trial must have.
TRIAL_REQUIRED = ("target", "trial_number", "params", "status")


def canonical(params: Any) -> str:
    """A params mapping as canonical JSON text: what matches a configuration across jobs."""
    return canonical_json(dict(params or {}))


@dataclass
class Snapshot:
    """A job as read from the store or from a ``farm export --format json`` file: its record,
    its trials, their raw latency samples and the environments they ran in."""

    source: str
    job: JobRecord
    trials: list[TrialRecord]
    #: (target, trial_number) -> raw latency samples, ms per query, in measurement order.
    samples: dict[tuple[str, int], list[float]] = field(default_factory=dict)
    #: env_id -> fingerprint.
    environments: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Folder of the job's artifacts, laid out as the artifact cache (``<build_key>/``): the
    #: store's ``artifacts/`` folder, or what ``farm export --with-artifacts`` recorded.
    artifacts_dir: Path | None = None
    #: The store it was read from (None for an export file): per-image evidence is read from
    #: it when the gate compares two jobs judged on the same images.
    store: Store | None = None

    @property
    def job_id(self) -> str:
        return self.job.job_id

    @property
    def spec(self) -> dict[str, Any]:
        return dict(self.job.spec)

    @property
    def targets(self) -> list[str]:
        return sorted({t.target for t in self.trials})

    @classmethod
    def from_store(cls, store: Store, ref: str, with_samples: bool = True) -> Snapshot:
        job = store.resolve_job(ref)
        samples = store.job_samples(job.job_id) if with_samples else {}
        return cls(
            f"job {job.job_id} in {store.path}",
            job,
            store.trials(job.job_id),  # with their KPIs (ece, robustness, …)
            samples,
            store.environments(job.job_id),
            store.path.parent / "artifacts",
            store,
        )

    @classmethod
    def from_file(cls, path: str | Path) -> Snapshot:
        """Read a ``farm export --format json`` file; any problem names the file and field."""
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except OSError as exc:
            raise UsageError(f"{p}: cannot read the baseline file ({exc.strerror})") from exc
        except json.JSONDecodeError as exc:
            raise UsageError(
                f"{p}: not JSON ({exc}); expected `farm export --format json`"
            ) from exc
        what = f"{EXPORT_FORMAT!r} (a `farm export --format json` file)"
        if not isinstance(data, dict):
            raise SpecError(p, "format", what, type(data).__name__)
        f = Fields(data, p)
        if data.get("format") != EXPORT_FORMAT:
            raise f.error("format", what, data.get("format"))
        if data.get("version") != EXPORT_VERSION:
            raise f.error("version", str(EXPORT_VERSION), data.get("version"))
        job = f.table_of("job", required=True).table
        environments = f.table_of("environments", required=True).table
        if not isinstance(data.get("trials"), list):
            raise f.error("trials", "a JSON list of trials", data.get("trials"))
        trials, samples = [], {}
        for i, raw in enumerate(data["trials"]):
            t = Fields(raw, p, f"trials[{i}]")
            missing = [k for k in TRIAL_REQUIRED if k not in t]
            if missing:
                raise t.error(missing[0], "a field of every exported trial (missing)")
            record = TrialRecord.from_row(raw, t.table_of("metrics").table)
            trials.append(record)
            s = raw.get("latency_samples_ms") or []
            if s:
                samples[record.target, record.trial_number] = [float(x) for x in s]
        artifacts_dir = None
        if "artifacts" in data:
            what = "an object with a `dir` string (the folder `farm export --with-artifacts` wrote)"
            artifacts = data["artifacts"]
            if not isinstance(artifacts, dict) or not isinstance(artifacts.get("dir"), str):
                raise f.error("artifacts", what, artifacts)
            artifacts_dir = p.parent / artifacts["dir"]  # relative to the file; absolute stays
        return cls(
            str(p),
            JobRecord.from_row(job),
            trials,
            samples,
            {k: dict(v) for k, v in environments.items()},
            artifacts_dir,
        )

    def to_json(self, artifacts_dir: str | None = None) -> dict[str, Any]:
        """The export document: job, trials (params/contract as objects, raw samples inline;
        each trial's ``build_key`` and ``artifact_hash`` name its artifact), and with
        ``artifacts_dir`` the folder its artifacts were copied to (relative to the file)."""
        trials = []
        for t in self.trials:
            exported = {k: _jsonable(v) for k, v in t.to_row().items()}
            exported.update(
                params=dict(t.params),
                contract=dict(t.contract) if t.contract else None,
                metrics=dict(t.metrics),
                latency_samples_ms=self.samples.get((t.target, t.trial_number), []),
            )
            trials.append(exported)
        job = {c: _jsonable(getattr(self.job, c)) for c in JOB_COLUMNS}
        job["spec"] = self.spec
        doc = {
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "job": job,
            "trials": trials,
            "environments": self.environments,
        }
        if artifacts_dir is not None:
            doc["artifacts"] = {"dir": artifacts_dir}
        return doc


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value
