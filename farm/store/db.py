"""The DuckDB store: the farm's one source of truth for reports, budgets and the CI gate.

The driver is the only writer, and it holds the file only for one short transaction at a time
(open, write, commit, close), so `farm jobs`, `farm pareto` or a report can read while a job runs.
Readers open the file read-only and retry briefly while a write holds the lock.

The schema is public (docs/store.md); change it only by appending a migration to MIGRATIONS.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from farm._io import json_mapping
from farm.errors import UsageError
from farm.store.records import TRIAL_COLUMNS, JobRecord, TrialRecord
from farm.store.schema import MIGRATIONS, SCHEMA_VERSION

if TYPE_CHECKING:
    from farm.evidence.paired import Comparison
    from farm.store.evidence import Key
    from workloads.evidence import Evidence

DEFAULT_DB = Path("results") / "farm.duckdb"
#: How long a reader waits for a write to finish, and how long the driver waits to write (a
#: reader holding the file, e.g. an open duckdb shell, must not kill a job after a few seconds).
LOCK_RETRY_S = 30.0
WRITE_LOCK_WAIT_S = 600.0


def db_path(explicit: str | Path | None = None) -> Path:
    """The store's path: ``--db``, else ``$FARM_DB``, else ``results/farm.duckdb``."""
    return Path(explicit or os.environ.get("FARM_DB") or DEFAULT_DB)


def _is_lock_error(exc: Exception) -> bool:
    """A transient refusal: another process holds the file's lock, or (within this process) a
    connection of the other mode, read-only or read-write, is open on it for the moment."""
    text = str(exc).lower()
    if "different configuration than existing connections" in text:
        return True
    return "lock" in text and ("conflicting" in text or "could not set" in text)


@contextmanager
def connect(path: Path, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the store, retrying while another process holds the file for a write.

    A store of an older schema is migrated when it is first opened, by a reader too (a short
    write of its own), so every reader sees today's columns; a file this process may not write
    is read as it is (the records read older schemas)."""
    if read_only and not path.exists():
        raise UsageError(f"{path}: no farm store here (run a job first, or pass --db PATH)")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    con = _open(path, read_only)
    if read_only and schema_version(con) < SCHEMA_VERSION and os.access(path, os.W_OK):
        con.close()
        with connect(path) as writer:
            migrate(writer)
        con = _open(path, read_only)
    try:
        yield con
    finally:
        con.close()


def _open(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    start = time.monotonic()
    limit = LOCK_RETRY_S if read_only else WRITE_LOCK_WAIT_S
    warned = False
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            waited = time.monotonic() - start
            if not _is_lock_error(exc):
                raise UsageError(f"{path}: not a farm store ({exc})") from None
            if waited > limit:
                raise UsageError(
                    f"{path}: another process has held the store for {waited:.0f} s; close "
                    "other connections to it (a duckdb shell or a notebook) and retry"
                ) from None
            if not read_only and not warned and waited > 5:
                print(f"farm: waiting for {path}: another process holds it", file=sys.stderr)
                warned = True
            time.sleep(0.05)
        except duckdb.Error as exc:
            raise UsageError(f"{path}: not a farm store ({exc})") from None


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """The store's schema version (0: an empty file)."""
    has_table = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'"
    ).fetchone()
    if not has_table or not has_table[0]:
        return 0
    row = con.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def migrate(con: duckdb.DuckDBPyConnection) -> None:
    """Apply the migrations this store has not had yet, each in its own transaction."""
    con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    for version in range(schema_version(con) + 1, SCHEMA_VERSION + 1):
        con.execute("BEGIN")
        con.execute(MIGRATIONS[version - 1])
        con.execute("INSERT INTO schema_version VALUES (?)", [version])
        con.execute("COMMIT")


class Store:
    """Typed access to the store. Each method opens and closes the file."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = db_path(path)

    # -- writing (driver only) -------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with connect(self.path) as con:
            migrate(con)
            con.execute("BEGIN")
            try:
                yield con
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def create_job(
        self,
        job_id: str,
        name: str,
        spec_json: str,
        *,
        task: str = "classification",
        label: str | None = None,
        calibration: str | None = None,
    ) -> None:
        with self.transaction() as con:
            con.execute(
                "INSERT INTO jobs (job_id, name, spec, status, created_at, task, label, "
                "calibration) VALUES (?, ?, ?, 'running', now(), ?, ?, ?)",
                [job_id, name, spec_json, task, label, calibration],
            )

    def set_job_status(self, job_id: str, status: str, message: str | None = None) -> None:
        with self.transaction() as con:
            con.execute(
                "UPDATE jobs SET status = ?, message = ?, "
                "finished_at = CASE WHEN ? = 'running' THEN NULL ELSE now() END WHERE job_id = ?",
                [status, message, status, job_id],
            )

    def record_trial(
        self,
        record: TrialRecord,
        samples_ms: Sequence[float] = (),
        metrics: dict[str, float] | None = None,
        environment: tuple[str, dict[str, Any]] | None = None,
        evidence: tuple[str, Evidence] | None = None,
        comparisons: tuple[Key, Sequence[Comparison]] | None = None,
    ) -> None:
        """Store one finished trial, its raw samples, metrics and environment atomically, with
        its per-image evidence (the metric it recomputes, the evidence) and its comparisons
        with a baseline (the baseline's key; the primary metric's, then per-class KPIs') when
        given.

        ``metrics`` default to the record's own."""
        row = record.to_row()
        values = [_to_db(row.get(c)) for c in TRIAL_COLUMNS]
        placeholders = ", ".join("?" for _ in TRIAL_COLUMNS)
        with self.transaction() as con:
            if environment is not None:
                env_id, fp = environment
                con.execute(
                    "INSERT INTO environments VALUES (?, ?, now()) ON CONFLICT DO NOTHING",
                    [env_id, json.dumps(fp, sort_keys=True)],
                )
            con.execute(
                f"INSERT INTO trials ({', '.join(TRIAL_COLUMNS)}) VALUES ({placeholders})", values
            )
            key = list(record.key)
            if len(samples_ms):
                con.execute(
                    "INSERT INTO latency_samples SELECT ?, ?, ?, s.i - 1, s.x FROM "
                    "(SELECT unnest(?::DOUBLE[]) AS x, generate_subscripts(?::DOUBLE[], 1) AS i) s",
                    [*key, list(map(float, samples_ms)), list(map(float, samples_ms))],
                )
            for name, value in (metrics if metrics is not None else record.metrics).items():
                con.execute("INSERT INTO metrics VALUES (?, ?, ?, ?, ?)", [*key, name, value])
            if evidence is not None or comparisons is not None:
                from farm.store import evidence as stored

                if evidence is not None:
                    stored.write_evidence(con, record.key, *evidence)
                if comparisons is not None:
                    for c in comparisons[1]:
                        stored.write_comparison(con, record.key, comparisons[0], c)

    def set_fronts(
        self, job_id: str, per_target: dict[str, list[int]], global_front: list[tuple[str, int]]
    ) -> None:
        """Replace the job's on_front / on_global_front flags."""
        with self.transaction() as con:
            con.execute(
                "UPDATE trials SET on_front = FALSE, on_global_front = FALSE WHERE job_id = ?",
                [job_id],
            )
            for target, numbers in per_target.items():
                if numbers:
                    con.execute(
                        "UPDATE trials SET on_front = TRUE WHERE job_id = ? AND target = ? "
                        "AND list_contains(?::INTEGER[], trial_number)",
                        [job_id, target, numbers],
                    )
            for target, number in global_front:
                con.execute(
                    "UPDATE trials SET on_global_front = TRUE "
                    "WHERE job_id = ? AND target = ? AND trial_number = ?",
                    [job_id, target, number],
                )

    # -- reading -----------------------------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with connect(self.path, read_only=True) as con:
            cur = con.execute(sql, list(params))
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def jobs(self) -> list[JobRecord]:
        """Every job with its trial counts, newest first."""
        rows = self.query(
            "SELECT j.*, coalesce(c.trials, 0) AS trials, coalesce(c.completed, 0) AS completed, "
            "coalesce(c.failed, 0) AS failed FROM jobs j LEFT JOIN ("
            "  SELECT job_id, count(*) AS trials, "
            "  count(*) FILTER (WHERE status = 'completed') AS completed, "
            "  count(*) FILTER (WHERE status = 'failed') AS failed FROM trials GROUP BY job_id"
            ") c USING (job_id) ORDER BY j.created_at DESC, j.job_id DESC"
        )
        return [JobRecord.from_row(r) for r in rows]

    def resolve_job(self, ref: str) -> JobRecord:
        """A job by id, unique id prefix, or name (the newest job of that name)."""
        rows = self.query(
            "SELECT * FROM jobs WHERE job_id = ? OR starts_with(job_id, ?) OR name = ? "
            "ORDER BY (job_id = ?) DESC, created_at DESC",
            [ref, ref, ref, ref],
        )
        if not rows:
            raise UsageError(f"{self.path}: no job matches {ref!r} (see `farm jobs`)")
        exact = [r for r in rows if r["job_id"] == ref or r["name"] == ref]
        if not exact and len(rows) > 1:
            ids = ", ".join(r["job_id"] for r in rows[:5])
            raise UsageError(f"{self.path}: {ref!r} matches several jobs ({ids}); give more")
        return JobRecord.from_row((exact or rows)[0])

    def trials(self, job_id: str, where: str = "TRUE") -> list[TrialRecord]:
        """The job's trials as records, each with its quality metrics, by target and number.
        ``where``: an SQL condition on ``trials`` (the callers' own, never user text)."""
        metrics = self.metrics(job_id)
        rows = self.query(
            f"SELECT * FROM trials WHERE job_id = ? AND ({where}) ORDER BY target, trial_number",
            [job_id],
        )
        return [
            TrialRecord.from_row(r, metrics.get((r["target"], r["trial_number"]))) for r in rows
        ]

    def metrics(self, job_id: str) -> dict[tuple[str, int], dict[str, float]]:
        """Every quality metric of the job's trials: (target, trial_number) -> {name: value}."""
        out: dict[tuple[str, int], dict[str, float]] = {}
        for r in self.query(
            "SELECT target, trial_number, name, value FROM metrics WHERE job_id = ?", [job_id]
        ):
            out.setdefault((r["target"], r["trial_number"]), {})[r["name"]] = r["value"]
        return out

    def evidence(self, job_id: str, target: str, trial_number: int) -> Evidence | None:
        """A trial's per-image evidence (None for a trial stored without it)."""
        from farm.store.evidence import read_evidence

        with connect(self.path, read_only=True) as con:
            return read_evidence(con, (job_id, target, trial_number))

    def comparisons(
        self, job_id: str, kpis: bool = False
    ) -> dict[tuple[Any, ...], tuple[Key, Comparison]]:
        """(target, trial_number) -> (its baseline's key, the paired comparison of its primary
        metric) of every candidate of the job that has one; with ``kpis``, keyed by (target,
        trial_number, metric) for every compared metric (per-class accuracy included)."""
        from farm.store.evidence import read_comparisons

        with connect(self.path, read_only=True) as con:
            return read_comparisons(con, job_id, kpis)

    def samples(self, job_id: str, target: str, trial_number: int) -> list[float]:
        rows = self.query(
            "SELECT latency_ms FROM latency_samples WHERE job_id = ? AND target = ? "
            "AND trial_number = ? ORDER BY seq",
            [job_id, target, trial_number],
        )
        return [r["latency_ms"] for r in rows]

    def jobs_named(self, name: str) -> list[JobRecord]:
        """The jobs of one name, oldest first (a release history)."""
        rows = self.query("SELECT * FROM jobs WHERE name = ? ORDER BY created_at, job_id", [name])
        return [JobRecord.from_row(r) for r in rows]

    def job_samples(self, job_id: str) -> dict[tuple[str, int], list[float]]:
        """Every trial's raw latency samples: (target, trial_number) -> ms, in order."""
        rows = self.query(
            "SELECT target, trial_number, list(latency_ms ORDER BY seq) AS s "
            "FROM latency_samples WHERE job_id = ? GROUP BY ALL",
            [job_id],
        )
        return {(r["target"], r["trial_number"]): list(r["s"]) for r in rows}

    def environments(self, job_id: str) -> dict[str, dict[str, Any]]:
        """The fingerprints of the environments the job's trials ran in: env_id -> fingerprint."""
        rows = self.query(
            "SELECT env_id, fingerprint FROM environments WHERE env_id IN "
            "(SELECT DISTINCT env_id FROM trials WHERE job_id = ?)",
            [job_id],
        )
        return {r["env_id"]: json_mapping(r["fingerprint"]) for r in rows}

    def environment(self, env_id: str | None) -> dict[str, Any]:
        """One environment's fingerprint (empty when unknown)."""
        if env_id is None:
            return {}
        rows = self.query("SELECT fingerprint FROM environments WHERE env_id = ?", [env_id])
        return json_mapping(rows[0]["fingerprint"]) if rows else {}

    def farm_commits(self, job_ids: list[str]) -> dict[str, str]:
        """The farm commit each job ran (from its trials' environments), where one is
        recorded."""
        if not job_ids:
            return {}
        rows = self.query(
            "SELECT DISTINCT t.job_id, e.fingerprint AS fp FROM trials t "
            "JOIN environments e USING (env_id) WHERE list_contains(?::VARCHAR[], t.job_id)",
            [job_ids],
        )
        out: dict[str, str] = {}
        for r in rows:
            commit = json_mapping(r["fp"]).get("farm_commit")
            if commit:
                out.setdefault(r["job_id"], str(commit))
        return out

    def trial_count(self, job_id: str) -> int:
        rows = self.query("SELECT count(*) AS n FROM trials WHERE job_id = ?", [job_id])
        return int(rows[0]["n"])

    def trial_times(self) -> dict[str, dict[str, Any]]:
        """Per job id, where its completed trials' time went: how many trials, the median and
        total trial time (``trial_s``, ask to record) and, per part (build, compile, quality
        evaluation, measurement, orchestration), the seconds summed over the trials and their
        share of the trials' time. Jobs stored before ``trial_s`` was recorded are left out."""
        with connect(self.path, read_only=True) as con:
            has_times = bool(
                con.execute(
                    "SELECT count(*) FROM information_schema.columns "
                    "WHERE table_name = 'trials' AND column_name = 'orchestration_s'"
                ).fetchone()[0]  # type: ignore[index]
            )
        if not has_times:
            return {}
        parts = ("build_s", "compile_s", "eval_s", "measure_s", "orchestration_s")
        sums = ", ".join(f"sum(coalesce({p}, 0)) AS {p}" for p in parts)
        rows = self.query(
            f"SELECT job_id, count(*) AS trials, median(trial_s) AS median_trial_s, "
            f"sum(trial_s) AS trial_s, {sums} FROM trials "
            "WHERE status = 'completed' AND trial_s IS NOT NULL GROUP BY job_id"
        )
        out = {}
        for r in rows:
            total = r["trial_s"] or 0.0
            out[r["job_id"]] = {
                "trials": r["trials"],
                "median_trial_s": r["median_trial_s"],
                "total_s": {"trial_s": total, **{p: r[p] for p in parts}},
                "share": {p: (r[p] / total if total else None) for p in parts},
            }
        return out

    # -- gate confirmations (migration 3) ------------------------------------------------------
    def record_confirmation(self, row: dict[str, Any]) -> None:
        """Store one ``farm gate`` confirmation (a row of ``confirmations``; lists stay lists)."""
        columns = list(row)
        values = [json.dumps(v, sort_keys=True) if isinstance(v, dict) else v for v in row.values()]
        with self.transaction() as con:
            con.execute(
                f"INSERT INTO confirmations ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' for _ in columns)})",
                values,
            )

    def confirmations(self, candidate_job_id: str) -> list[dict[str, Any]]:
        """The confirmations recorded for a candidate job, oldest first (none in a store that
        predates migration 3)."""
        tables = self.query(
            "SELECT 1 FROM information_schema.tables WHERE table_name = 'confirmations'"
        )
        if not tables:
            return []
        return self.query(
            "SELECT * FROM confirmations WHERE candidate_job_id = ? ORDER BY created_at, target",
            [candidate_job_id],
        )


def _to_db(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    if value is not None and hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value
