"""The farm from Python: load a job, run it, and read its results as pandas DataFrames.

    import farm

    job = farm.run("farm/jobs/digits.toml", trials=4)   # blocks, with the progress display
    job.trials                                           # one row per trial, params parsed
    job.front("cpu-openvino")                            # that target's Pareto front
    job.recommend("budgets.toml")                        # what to ship under a budget
    job.report("report.html")                            # the self-contained HTML report
    farm.open_store("results/farm.duckdb").jobs()        # every job, newest first

The ``farm`` command line is a thin layer over these functions: ``farm run`` is :func:`run`,
``farm jobs`` is :meth:`StoreView.jobs`, ``farm recommend`` is :meth:`Job.recommend`, and so on,
so a notebook and a terminal get the same numbers by the same code. Errors are the farm's own
(:class:`farm.errors.UsageError` for bad input, naming the file, the field and what was expected).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farm.errors import UsageError
from farm.spec.job import JobSpec, parse_job
from farm.spec.job import load_job as _load_job_file
from farm.store.db import Store, db_path
from farm.store.records import TRIAL_COLUMNS, JobRecord, TrialRecord

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console

    from farm.engine.runner import JobRunner
    from farm.gate.checks import GateResult
    from farm.gate.options import ConfirmOptions, GateOptions
    from farm.release.budget import Budget
    from farm.release.history import History
    from farm.release.recommend import Recommendation
    from farm.store.records import TrialRecord

#: Columns of :meth:`StoreView.jobs`, in order.
JOB_COLUMNS = (
    "job_id",
    "name",
    "label",
    "status",
    "created_at",
    "finished_at",
    "message",
    "trials",
    "completed",
    "failed",
)


def load_job(source: str | Path | Mapping[str, Any] | JobSpec) -> JobSpec:
    """A validated job spec from a job file's path, or from a dict shaped like one.

    Relative paths of a dict's ``[workload]`` resolve against the current directory."""
    if isinstance(source, JobSpec):
        return source
    if isinstance(source, Mapping):
        return parse_job(dict(source), source="<dict>")
    if isinstance(source, str | Path):
        return _load_job_file(source)
    raise UsageError(f"expected a job file path, a dict or a JobSpec, got {type(source).__name__}")


def run(
    spec_or_path: str | Path | Mapping[str, Any] | JobSpec,
    *,
    address: str | None = None,
    db: str | Path | None = None,
    trials: int | None = None,
    label: str | None = None,
    mlflow: str | None = None,
    progress: bool = True,
) -> Job:
    """Run a job to completion (or Ctrl-C) and return it.

    ``address``: a Ray cluster to join (``HOST:PORT`` or ``auto``); without it the farm starts
    its own local Ray instance. ``db``: the store (default ``$FARM_DB`` or
    ``results/farm.duckdb``). ``trials``: trials per target, overriding the spec. ``label``:
    stored with the job (e.g. a git sha; ``farm history`` shows it). ``mlflow``: a tracking URI,
    overriding the spec's ``[tracking] mlflow_uri`` (see :mod:`farm.tracking`). ``progress``:
    the progress bars and the messages (off: silent).

    The whole job is validated (spec, workload, targets, search spaces) before anything is
    stored or said to have started; bad input raises :class:`UsageError` with nothing written.
    """
    spec = load_job(spec_or_path)
    if trials is not None:
        spec = spec.with_trials(_positive(trials, "trials"))
    return _execute(spec, Store(db), address, label=label, mlflow=mlflow, progress=progress)


def resume(
    job: str,
    *,
    address: str | None = None,
    db: str | Path | None = None,
    trials: int | None = None,
    mlflow: str | None = None,
    progress: bool = True,
) -> Job:
    """Continue an interrupted job (id, unique prefix or name) from the store: stored trials are
    told to the search again, not re-run, and the job goes on to its trial budget."""
    store = Store(db)
    record = store.resolve_job(job)
    if record.status == "completed":
        raise UsageError(f"job {record.job_id} already completed; nothing to resume")
    spec = record.job_spec()
    if trials is not None:
        spec = spec.with_trials(_positive(trials, "trials"))
    return _execute(
        spec, store, address, resume_job=record.job_id, mlflow=mlflow, progress=progress
    )


def open_store(path: str | Path | None = None) -> StoreView:
    """A read-only view of a store (default ``$FARM_DB`` or ``results/farm.duckdb``)."""
    p = db_path(path)
    if not p.exists():
        raise UsageError(f"{p}: no farm store here (run a job first, or give its path)")
    return StoreView(p)


def _positive(value: int, name: str) -> int:
    from farm._validate import is_integer

    if not is_integer(value) or value < 1:
        raise UsageError(f"{name}: expected a positive integer, got {value!r}")
    return value


# -- running ---------------------------------------------------------------------------------


def _execute(
    spec: JobSpec,
    store: Store,
    address: str | None,
    *,
    resume_job: str | None = None,
    label: str | None = None,
    mlflow: str | None = None,
    progress: bool = True,
) -> Job:
    from farm.display import make_console
    from farm.engine.runner import JobRunner

    console = make_console() if progress else None
    bars = _Bars(console)
    runner = JobRunner(
        spec,
        store,
        address=address,
        progress=bars.on_trial,
        resume_job=resume_job,
        label=label,
    )
    with _status(console, f"preparing job {spec.name}: workload, cluster, targets…"):
        runner.prepare()  # everything that can fail on bad input, before a job exists
    if console is not None:
        verb = "resumed" if resume_job else "started"
        console.print(f"[bold]job[/] {runner.job_id} {verb} → {store.path}")
    with bars.show(runner):
        status = runner.run(prepared=True)
    job = Job(
        store, runner.job_id, messages=list(runner.messages), unmeasured=dict(runner.unmeasured)
    )
    uri = mlflow or spec.mlflow_uri
    if uri:
        from farm.tracking import track_job

        if track_job(store, runner.job_id, uri) is not None and console is not None:
            console.print(f"[dim]tracked in MLflow at {uri} (experiment {spec.name!r})[/]")
    if console is not None:
        console.print(f"job {runner.job_id}: {status}")
    return job


@contextmanager
def _status(console: Console | None, text: str) -> Iterator[None]:
    if console is None:
        yield
        return
    with console.status(text):
        yield


class _Bars:
    """One progress bar per target, advanced by the engine's per-trial callback."""

    def __init__(self, console: Console | None) -> None:
        self.console = console
        self.progress: Any = None
        self.tasks: dict[str, Any] = {}

    def on_trial(self, record: TrialRecord) -> None:
        if self.progress is None or record.target not in self.tasks:
            return
        if not record.completed:
            last = f"failed: {(record.error or '')[:60]}"
        else:
            last = f"q={record.quality or 0.0:.3f} p95={record.latency_p95_ms or 0.0:.3f}ms"
        self.progress.update(self.tasks[record.target], advance=1, last=last)

    @contextmanager
    def show(self, runner: JobRunner) -> Iterator[None]:
        if self.console is None:
            yield
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        with Progress(
            TextColumn("{task.description:<18}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[last]}"),
            TimeElapsedColumn(),
            console=self.console,
        ) as progress:
            for t, s in runner.studies.items():
                done = sum(1 for r in runner.records if r.target == t)
                self.tasks[t] = progress.add_task(t, total=s.budget, completed=done, last="")
            self.progress = progress
            try:
                yield
            finally:
                self.progress = None


# -- reading ---------------------------------------------------------------------------------


class StoreView:
    """Read-only access to a store, as DataFrames. Each call opens and closes the file, so a
    running job's driver can write between calls."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.store = Store(path)

    @property
    def path(self) -> Path:
        return self.store.path

    def __repr__(self) -> str:
        return f"StoreView({str(self.path)!r})"

    def job_records(self) -> list[JobRecord]:
        """Every job, newest first, with its trial counts."""
        return self.store.jobs()

    def job_list(self) -> list[dict[str, Any]]:
        """Every job, newest first, as plain dicts (:data:`JOB_COLUMNS`; for JSON output)."""
        return [{c: getattr(r, c) for c in JOB_COLUMNS} for r in self.job_records()]

    def trial_times(self) -> dict[str, dict[str, Any]]:
        """Per job id, where its completed trials' time went (see
        :meth:`farm.store.db.Store.trial_times`)."""
        return self.store.trial_times()

    def jobs(self) -> pd.DataFrame:
        """Every job, newest first: id, name, label, status, times, message, trial counts."""
        import pandas as pd

        return pd.DataFrame(self.job_list(), columns=list(JOB_COLUMNS))

    def evidence(self, job: str, target: str, trial: int) -> Any:
        """A trial's per-image :class:`~workloads.evidence.Evidence` (ids, scores, outcomes)."""
        return self.store.evidence(self.store.resolve_job(job).job_id, target, trial)

    def comparisons(self, job: str) -> dict[tuple[str, int], Any]:
        """(target, trial) -> (baseline key, :class:`~farm.evidence.Comparison`)."""
        return self.store.comparisons(self.store.resolve_job(job).job_id)

    def job(self, ref: str) -> Job:
        """A job by id, unique id prefix, or name (the newest job of that name)."""
        return Job(self.store, self.store.resolve_job(ref).job_id)

    def history(
        self, name: str, budget: str | Path | Budget | None = None, *, last: int | None = None
    ) -> History:
        """The release history of the jobs named ``name`` (see :mod:`farm.release.history`)."""
        from farm.release.history import release_history

        return release_history(self.store, name, _budget(budget), last=last)

    def sql(self, query: str, params: list[Any] | None = None) -> pd.DataFrame:
        """Any read-only SQL on the store (schema: docs/store.md) as a DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.store.query(query, params or []))


class Job:
    """One job of a store. Properties read the store each time, so a job still running shows
    its trials as they land."""

    def __init__(
        self,
        store: Store,
        job_id: str,
        messages: list[str] | None = None,
        unmeasured: dict[str, str] | None = None,
    ) -> None:
        self.store = store
        self.id = job_id
        #: What the run said at its end (lost capacity, cache hits…); empty for a job opened
        #: from the store (its ``message`` holds the stored summary).
        self.messages = messages or []
        #: After a run: the targets that produced no completed trial, and why.
        self.unmeasured = unmeasured or {}

    def __repr__(self) -> str:
        return f"<farm.Job {self.id} ({self.status}) in {self.store.path}>"

    @property
    def record(self) -> JobRecord:
        """The job as the store holds it (read afresh)."""
        return self.store.resolve_job(self.id)

    @property
    def row(self) -> dict[str, Any]:
        """The job's row of the ``jobs`` table (the spec as JSON text, as stored)."""
        return self.record.to_row()

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def status(self) -> str:
        return self.record.status

    @property
    def label(self) -> str | None:
        return self.record.label

    @property
    def created_at(self) -> datetime:
        created = self.record.created_at
        assert created is not None, "the store always records when a job was created"
        return created

    @property
    def message(self) -> str | None:
        return self.record.message

    @property
    def spec(self) -> JobSpec:
        return self.record.job_spec()

    @property
    def targets(self) -> list[str]:
        """The spec's targets (read from the stored JSON as is: older stores hold less)."""
        return list(self.record.spec.get("targets") or [])

    def records(self) -> list[TrialRecord]:
        """The job's trials as typed records (params, contract and metrics parsed), ordered by
        target and trial number."""
        return self.store.trials(self.id)

    def trial_rows(self) -> list[dict[str, Any]]:
        """The store's rows of this job's trials, as stored (JSON columns as text)."""
        return [t.to_row() for t in self.records()]

    @property
    def trials(self) -> pd.DataFrame:
        """One row per trial (the store's columns, ordered by target and trial number), with
        ``params`` and ``contract`` parsed into dicts and one ``params.<knob>`` column per knob."""
        import pandas as pd

        records = self.records()
        frame = pd.DataFrame([t.to_row() for t in records], columns=list(TRIAL_COLUMNS))
        frame["params"] = [dict(t.params) for t in records]
        frame["contract"] = [dict(t.contract or {}) for t in records]
        knobs = sorted({k for p in frame["params"] for k in p})
        for k in knobs:
            frame[f"params.{k}"] = [p.get(k) for p in frame["params"]]
        return frame

    @property
    def metrics(self) -> pd.DataFrame:
        """Every quality metric of every trial, long: target, trial_number, name, value."""
        import pandas as pd

        rows = self.store.query(
            "SELECT target, trial_number, name, value FROM metrics WHERE job_id = ? "
            "ORDER BY target, trial_number, name",
            [self.id],
        )
        return pd.DataFrame(rows, columns=["target", "trial_number", "name", "value"])

    def samples(self, target: str, trial_number: int) -> list[float]:
        """A trial's raw latency samples (ms per query, in measurement order)."""
        return self.store.samples(self.id, target, trial_number)

    def front(self, target: str | None = None) -> pd.DataFrame:
        """The Pareto front of ``target`` (quality max, p95 min, cost min), or across targets
        when None; fastest first."""
        frame = self.trials
        if target is None:
            front = frame[frame["on_global_front"].astype(bool)]
        else:
            known = sorted(set(frame["target"])) or self.targets
            if target not in known:
                raise UsageError(f"job {self.id} has no target {target!r} (its targets: {known})")
            front = frame[(frame["target"] == target) & frame["on_front"].astype(bool)]
        return front.sort_values("latency_p95_ms").reset_index(drop=True)

    def recommend(self, budget: str | Path | Budget) -> Recommendation:
        """The configuration to ship per target and overall under ``budget`` (a budget file or
        a :class:`farm.release.budget.Budget`); ``.ok`` says whether every budgeted target has
        one."""
        from farm.release.recommend import recommend

        limits = _budget(budget)
        if limits is None:
            raise UsageError("recommend: expected a budget file or a Budget, got None")
        paired = {k: c for k, (_, c) in self.store.comparisons(self.id).items()}
        return recommend(self.id, self.records(), limits, self.targets, paired)

    def report(
        self,
        path: str | Path | None = None,
        budget: str | Path | Budget | None = None,
        *,
        max_points: int = 2000,
    ) -> Path:
        """Write the self-contained HTML report (default ``results/reports/<job id>.html``)."""
        from dashboards import load, write_report

        if max_points < 1:
            raise UsageError(f"max_points: expected an integer >= 1, got {max_points}")
        data = load(self.store, self.id, budget=_budget(budget), max_points=max_points)
        out = Path(path) if path else Path("results/reports") / f"{self.id}.html"
        return write_report(data, out)

    def gate(
        self,
        budget: str | Path | Budget | None = None,
        baseline: Job | str | Path | None = None,
        *,
        confirm: bool | ConfirmOptions = True,
        options: GateOptions | None = None,
        progress: Callable[[str], None] | None = None,
        **kwargs: Any,
    ) -> GateResult:
        """``farm gate`` with this job as the candidate, by the same path as the command line:
        apparent latency regressions against ``baseline`` are re-measured (both artifacts,
        interleaved, on a node serving the target) before they fail, unless ``confirm`` is
        False. ``baseline``: a :class:`Job`, a job of the same store (id, prefix, name), or a
        ``farm export --format json`` file. ``kwargs``: the fields of
        :class:`farm.gate.options.GateOptions` (``threshold``, ``alpha``,
        ``quality_tolerance``…) and of :class:`farm.gate.options.ConfirmOptions` (``drift``,
        ``confirm_rounds``, ``confirm_limit``, ``baseline_artifacts``, ``address``), or
        ``options=`` a built :class:`~farm.gate.options.GateOptions`. ``progress`` receives the
        confirmation's lines as they come."""
        from farm.gate.run import gate_snapshots, options_from, read_baseline
        from farm.gate.snapshot import Snapshot

        gate_options, confirm_options = options_from(confirm, kwargs, options)
        limits = _budget(budget)
        base = (
            Snapshot.from_store(baseline.store, baseline.id)
            if isinstance(baseline, Job)
            else read_baseline(self.store, baseline)
        )
        candidate = Snapshot.from_store(self.store, self.id)
        return gate_snapshots(
            candidate, limits, base, gate_options, confirm_options, self.store, progress
        )

    def history(self, budget: str | Path | Budget | None = None) -> History:
        """The release history of this job's name, up to and including this job."""
        from farm.release.history import release_history

        return release_history(self.store, self.name, _budget(budget), until=self.id)


def _budget(budget: str | Path | Budget | None) -> Budget | None:
    if budget is None:
        return None
    if isinstance(budget, str | Path):
        from farm.release.budget import load_budget

        return load_budget(budget)
    return budget
