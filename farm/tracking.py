"""MLflow tracking, opt-in: a job mirrored as one parent run and one nested run per trial.

Turned on by ``[tracking] mlflow_uri`` in a job file, ``farm run/resume --mlflow URI`` or
``farm.run(..., mlflow=URI)``. The parent run (named after the job id, in an experiment named after
the job) holds the spec as params and ``spec.json``, the environments (``environments.json`` and
tags), the fronts (``fronts.json`` and a few metrics per target) and the HTML report
(``report.html``). Each trial is a nested run: its params (the knobs, target, node, measurement
contract as ``contract.*``), every numeric column of its row as a metric (``latency_p95_ms``,
``cost_per_1k_usd``…), every entry of the ``metrics`` table as ``quality/<name>``, and tags for
its target, node, status and error.

When: after the job, from the store, not from the engine's progress callback while it runs. The
store is the source of truth, so what MLflow shows equals what ``farm`` shows by construction; a
slow or unreachable tracking server can never stall the search loop (MLflow's HTTP client retries
for minutes) or hold a node; the fronts and the report only exist at the end anyway; and the
same call logs a resumed job, trials from before the interruption included. Runs carry the
trials' own start and end times, so MLflow's timeline is still the job's. Syncing is idempotent:
runs already logged (found by their ``farm.job_id`` / ``farm.trial`` tags) are not logged twice.

Tracking never costs a job: any failure (the package missing, a server that does not answer, a
refused write) is one warning on stderr, and the job stays in the store.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from farm.store.db import Store
from farm.store.records import JobRecord, TrialRecord

#: Trial columns that identify a trial or hold text/flags: tags or params, never metrics.
#: ``quality`` / ``quality_drop`` are logged under their compatibility names (``accuracy``,
#: ``accuracy_drop``) and as ``quality/<metric>``: MLflow's file store keeps a metric as a file,
#: so a metric ``quality`` beside ``quality/<metric>`` cannot be written.
NOT_METRICS = frozenset({"trial_number", "batch_size", "threads", "quality", "quality_drop"})
#: Trial columns stored as tags of the nested run.
TRIAL_TAGS = (
    "target",
    "status",
    "error",
    "node_host",
    "node_ip",
    "node_id",
    "candidate_hash",
    "env_id",
    "precision_actual",
    "quality_metric",
    "is_baseline",
    "feasible",
    "stable",
    "on_front",
    "on_global_front",
    "unstable_reason",
)
#: MLflow's limits per log_batch call and per tag value.
MAX_PARAMS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
MAX_TAG_CHARS = 5000
#: While the farm talks to a tracking server: a few seconds, no retry storm (the user's own
#: settings of these variables win).
HTTP_SETTINGS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


def track_job(store: Store, job_id: str, uri: str, *, report: bool = True) -> str | None:
    """Mirror job ``job_id`` of ``store`` into MLflow at ``uri``; the parent run's id, or None
    after one warning on stderr when MLflow cannot be used (the job is in the store anyway)."""
    try:
        import mlflow  # noqa: F401
    except ImportError:
        warn(
            f"MLflow tracking to {uri} is on, but the `mlflow` package is not installed "
            "(pip install 'cv-farm[tracking]'); nothing was logged, the job is in the store"
        )
        return None
    try:
        with _settings(uri):
            return _sync(store, job_id, uri, report)
    except Exception as exc:  # tracking must never fail a job: say why, once
        warn(f"MLflow tracking to {uri} failed ({_reason(exc)}); the job is in the store anyway")
        return None


def _reason(exc: Exception) -> str:
    """One short reason: MLflow's connection errors are a page of urllib3 text."""
    text = str(exc)
    if any(s in text for s in ("NewConnectionError", "Max retries exceeded", "Connection refused")):
        return "no tracking server answers there"
    lines = text.strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:200] if lines else ''}"


def warn(message: str) -> None:
    print(f"farm: warning: {message}", file=sys.stderr)


def is_file_uri(uri: str) -> bool:
    """A local file store (``file:./mlruns`` or a plain path) rather than a server."""
    return uri.startswith("file:") or ("://" not in uri and ":" not in uri.split("/")[0])


@contextmanager
def _settings(uri: str) -> Iterator[None]:
    """Environment MLflow reads while the farm logs: short HTTP timeouts without retries, and
    (MLflow ≥ 3.7 refuses file stores otherwise) permission for a local file store."""
    wanted = dict(HTTP_SETTINGS)
    if is_file_uri(uri):
        wanted["MLFLOW_ALLOW_FILE_STORE"] = "true"
    saved = {k: os.environ.get(k) for k in wanted}
    for key, value in wanted.items():
        os.environ.setdefault(key, value)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)


def _ms(value: Any) -> int | None:
    """A stored (naive UTC) timestamp as MLflow's milliseconds since the epoch."""
    if value is None:
        return None
    if isinstance(value, datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(stamp.timestamp() * 1000)
    return None


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:MAX_TAG_CHARS]


def flatten(prefix: str, value: Any) -> dict[str, str]:
    """Nested dicts as ``a.b.c`` keys; lists and scalars as JSON text (MLflow params are text)."""
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for k, v in value.items():
            out.update(flatten(f"{prefix}.{k}" if prefix else str(k), v))
        return out
    return {prefix: value if isinstance(value, str) else json.dumps(value, default=str)}


def trial_metrics(trial: TrialRecord) -> dict[str, float]:
    """Every numeric column of a trial's row (flags and identifiers excluded; the primary
    metric under its column name ``accuracy``), and every entry of its ``metrics`` as
    ``quality/<name>``: what a nested run logs as metrics."""
    out: dict[str, float] = {}
    for key, value in trial.to_row().items():
        if key in NOT_METRICS or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(value):
            out[key] = float(value)
    for name, metric in trial.metrics.items():
        if metric is not None and math.isfinite(metric):
            out[f"quality/{name}"] = float(metric)
    return out


def trial_params(trial: TrialRecord) -> dict[str, str]:
    """The knobs that define the candidate, where it ran, and its measurement contract."""
    params = {k: _text(v) for k, v in trial.params.items()}
    params.update(
        target=trial.target,
        trial_number=str(trial.trial_number),
        node=str(trial.node_host),
        node_ip=str(trial.node_ip),
    )
    contract = trial.contract or {}
    params.update({f"contract.{k}": _text(v) for k, v in sorted(contract.items())})
    return params


def trial_tags(trial: TrialRecord) -> dict[str, str]:
    """The nested run's tags: :data:`TRIAL_TAGS` that are set."""
    values = {k: getattr(trial, k) for k in TRIAL_TAGS}
    return {k: _text(v) for k, v in values.items() if v is not None}


def _sync(store: Store, job_id: str, uri: str, report: bool) -> str:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    job = store.resolve_job(job_id)
    trials = store.trials(job_id)
    experiment = client.get_experiment_by_name(job.name)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(job.name)
    existing = client.search_runs(
        [experiment_id], filter_string=f"tags.`farm.job_id` = '{job_id}'", max_results=50_000
    )
    parents = [r for r in existing if r.data.tags.get("farm.kind") == "job"]
    logged = {
        r.data.tags.get("farm.trial") for r in existing if r.data.tags.get("farm.kind") == "trial"
    }
    parent_id = str(parents[0].info.run_id) if parents else _log_parent(client, experiment_id, job)
    for trial in trials:
        if f"{trial.target}#{trial.trial_number}" not in logged:
            _log_trial(client, experiment_id, parent_id, job_id, trial)
    _log_job_summary(client, parent_id, store, job, trials, report)
    ended = {"completed": "FINISHED", "interrupted": "KILLED", "failed": "FAILED"}
    client.set_tag(parent_id, "farm.status", job.status)
    if job.status in ended:
        client.set_terminated(parent_id, status=ended[job.status], end_time=_ms(job.finished_at))
    return parent_id


def _log_parent(client: Any, experiment_id: str, job: JobRecord) -> str:
    """The job's parent run: its spec as params and as ``spec.json``."""
    from mlflow.entities import Param

    parent = client.create_run(
        experiment_id,
        start_time=_ms(job.created_at),
        run_name=job.job_id,
        tags={"farm.job_id": job.job_id, "farm.kind": "job", "farm.label": job.label or ""},
    )
    parent_id = str(parent.info.run_id)
    spec = dict(job.spec)
    params = [Param(k, v[:6000]) for k, v in flatten("", spec).items()]
    for i in range(0, len(params), MAX_PARAMS_PER_BATCH):
        client.log_batch(parent_id, params=params[i : i + MAX_PARAMS_PER_BATCH])
    client.log_dict(parent_id, spec, "spec.json")
    return parent_id


def _log_trial(
    client: Any, experiment_id: str, parent_id: str, job_id: str, trial: TrialRecord
) -> None:
    """One trial as a nested run, with the trial's own start and end times."""
    from mlflow.entities import Metric, Param

    key = f"{trial.target}#{trial.trial_number}"
    started = _ms(trial.started_at)
    finished = _ms(trial.finished_at) or started
    tags = trial_tags(trial)
    tags.update(
        {
            "mlflow.parentRunId": parent_id,
            "farm.job_id": job_id,
            "farm.kind": "trial",
            "farm.trial": key,
        }
    )
    child = client.create_run(experiment_id, start_time=started, run_name=key, tags=tags)
    stamp = finished or _ms(datetime.now(UTC)) or 0
    metrics = [Metric(k, v, stamp, 0) for k, v in trial_metrics(trial).items()]
    params = [Param(k, v[:6000]) for k, v in trial_params(trial).items()]
    for i in range(0, max(len(params), len(metrics)), MAX_PARAMS_PER_BATCH):
        client.log_batch(
            child.info.run_id,
            metrics=metrics[i : i + MAX_PARAMS_PER_BATCH],
            params=params[i : i + MAX_PARAMS_PER_BATCH],
        )
    status = "FINISHED" if trial.completed else "FAILED"
    client.set_terminated(child.info.run_id, status=status, end_time=finished)


#: Trial fields ``fronts.json`` lists per front point (``accuracy`` is ``quality``'s older name).
FRONT_FIELDS = (
    "trial_number",
    "accuracy",
    "quality",
    "latency_p95_ms",
    "cost_per_1k_usd",
    "throughput_ips",
    "precision_actual",
    "node_host",
)


def _front_point(trial: TrialRecord) -> dict[str, Any]:
    row = trial.to_row()
    return {"params": dict(trial.params), **{k: row[k] for k in FRONT_FIELDS}}


def _log_job_summary(
    client: Any,
    parent_id: str,
    store: Store,
    job: JobRecord,
    trials: list[TrialRecord],
    report: bool,
) -> None:
    """The parent run's environment, fronts and report (rewritten on every sync)."""
    envs = store.environments(job.job_id)
    client.log_dict(parent_id, envs, "environments.json")
    if len(envs) == 1:
        fingerprint = next(iter(envs.values()))
        for key in ("cpu_model", "farm_commit", "hostname", "python"):
            if fingerprint.get(key) is not None:
                client.set_tag(parent_id, f"env.{key}", _text(fingerprint[key]))
    targets = sorted({t.target for t in trials})
    fronts = {
        "per_target": {
            t: [_front_point(r) for r in trials if r.target == t and r.on_front] for t in targets
        },
        "global": [{"target": r.target, **_front_point(r)} for r in trials if r.on_global_front],
    }
    client.log_dict(parent_id, fronts, "fronts.json")
    summary = _summary_metrics(job, trials, targets)
    for i in range(0, len(summary), MAX_METRICS_PER_BATCH):
        client.log_batch(parent_id, metrics=summary[i : i + MAX_METRICS_PER_BATCH])
    if report and trials:
        from dashboards import load, write_report

        with tempfile.TemporaryDirectory() as tmp:
            path = write_report(load(store, job.job_id), Path(tmp) / "report.html")
            client.log_artifact(parent_id, str(path))


def _summary_metrics(job: JobRecord, trials: list[TrialRecord], targets: list[str]) -> list[Any]:
    """Per target: trials, failures, front size and the best of each objective on the front."""
    from mlflow.entities import Metric

    stamp = _ms(job.finished_at) or _ms(datetime.now(UTC)) or 0
    summary: list[Any] = []
    for t in targets:
        of_target = [r for r in trials if r.target == t]
        front = [r for r in of_target if r.on_front]
        summary += [
            Metric(f"{t}/trials", float(len(of_target)), stamp, 0),
            Metric(f"{t}/failed", float(sum(not r.completed for r in of_target)), stamp, 0),
            Metric(f"{t}/front_size", float(len(front)), stamp, 0),
        ]
        best = {
            "best_p95_ms": min(r.latency_p95_ms or math.inf for r in front) if front else None,
            "best_cost_per_1k_usd": min(r.cost_per_1k_usd or math.inf for r in front)
            if front
            else None,
            "best_accuracy": max(r.quality or -math.inf for r in front) if front else None,
        }
        summary += [Metric(f"{t}/{k}", v, stamp, 0) for k, v in best.items() if v is not None]
    return summary
