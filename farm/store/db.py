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
from typing import Any

import duckdb

from farm.errors import UsageError

DEFAULT_DB = Path("results") / "farm.duckdb"
#: How long a reader waits for a write to finish, and how long the driver waits to write (a
#: reader holding the file, e.g. an open duckdb shell, must not kill a job after a few seconds).
LOCK_RETRY_S = 30.0
WRITE_LOCK_WAIT_S = 600.0

#: Ordered schema migrations; version i is MIGRATIONS[i - 1]. Never edit a released entry.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE jobs (
        job_id      VARCHAR PRIMARY KEY,
        name        VARCHAR NOT NULL,
        spec        JSON NOT NULL,
        status      VARCHAR NOT NULL,      -- running | completed | interrupted | failed
        created_at  TIMESTAMP NOT NULL,
        finished_at TIMESTAMP,
        message     VARCHAR                -- why it ended, lost capacity, …
    );
    CREATE TABLE environments (
        env_id      VARCHAR PRIMARY KEY,
        fingerprint JSON NOT NULL,
        first_seen  TIMESTAMP NOT NULL
    );
    CREATE TABLE trials (
        job_id            VARCHAR NOT NULL,
        target            VARCHAR NOT NULL,
        trial_number      INTEGER NOT NULL,   -- per (job, target) study, from 0 (the baseline)
        is_baseline       BOOLEAN NOT NULL,
        candidate_hash    VARCHAR NOT NULL,
        params            JSON NOT NULL,
        status            VARCHAR NOT NULL,   -- completed | failed
        error             VARCHAR,
        node_id           VARCHAR,
        node_host         VARCHAR,
        attempts          INTEGER NOT NULL,
        precision         VARCHAR,            -- requested: fp32 | bf16 | fp16 | int8
        precision_actual  VARCHAR,            -- read back from the runtime
        batch_size        INTEGER,
        threads           INTEGER,
        accuracy          DOUBLE,             -- the job's quality objective (accuracy or fidelity)
        accuracy_drop     DOUBLE,             -- baseline accuracy minus this one
        quality_metric    VARCHAR,            -- name of the metric in `accuracy`
        latency_p50_ms    DOUBLE,
        latency_p90_ms    DOUBLE,
        latency_p95_ms    DOUBLE,
        latency_p99_ms    DOUBLE,
        latency_mean_ms   DOUBLE,
        latency_std_ms    DOUBLE,
        latency_cv        DOUBLE,
        throughput_ips    DOUBLE,             -- images per second
        cost_per_1k_usd   DOUBLE,             -- price_per_hour / (throughput * 3600) * 1000
        price_per_hour_usd DOUBLE,
        n_samples         INTEGER,
        stable            BOOLEAN,
        unstable_reason   VARCHAR,
        cold_ms           DOUBLE,
        compile_s         DOUBLE,
        build_s           DOUBLE,
        measure_s         DOUBLE,
        cache_hit         BOOLEAN,
        artifact_hash     VARCHAR,
        artifact_bytes    BIGINT,
        peak_rss_mb       DOUBLE,
        env_id            VARCHAR,
        contract          JSON,
        feasible          BOOLEAN,
        on_front          BOOLEAN NOT NULL DEFAULT FALSE,
        on_global_front   BOOLEAN NOT NULL DEFAULT FALSE,
        started_at        TIMESTAMP,
        finished_at       TIMESTAMP,
        PRIMARY KEY (job_id, target, trial_number)
    );
    CREATE TABLE latency_samples (
        job_id       VARCHAR NOT NULL,
        target       VARCHAR NOT NULL,
        trial_number INTEGER NOT NULL,
        seq          INTEGER NOT NULL,
        latency_ms   DOUBLE NOT NULL
    );
    CREATE TABLE metrics (
        job_id       VARCHAR NOT NULL,
        target       VARCHAR NOT NULL,
        trial_number INTEGER NOT NULL,
        name         VARCHAR NOT NULL,
        value        DOUBLE,
        PRIMARY KEY (job_id, target, trial_number, name)
    );
    """,
    # 2: task layer, fleet, pricing by the hardware that ran, trial-time breakdown.
    """
    ALTER TABLE jobs ADD COLUMN label VARCHAR;
    ALTER TABLE jobs ADD COLUMN task VARCHAR;
    ALTER TABLE trials ADD COLUMN node_ip VARCHAR;
    ALTER TABLE trials ADD COLUMN build_key VARCHAR;
    ALTER TABLE trials ADD COLUMN gpu_model VARCHAR;
    ALTER TABLE trials ADD COLUMN priced_as VARCHAR;
    ALTER TABLE trials ADD COLUMN eval_s DOUBLE;
    ALTER TABLE trials ADD COLUMN trial_s DOUBLE;
    ALTER TABLE trials ADD COLUMN orchestration_s DOUBLE;
    ALTER TABLE trials ADD COLUMN infeasible_reason VARCHAR;
    ALTER TABLE trials ADD COLUMN device_latency_p50_ms DOUBLE;
    ALTER TABLE trials ADD COLUMN device_latency_p95_ms DOUBLE;
    ALTER TABLE trials ADD COLUMN device_memory_mib DOUBLE;
    """,
    # 3: `farm gate`'s confirmations: both artifacts re-measured interleaved (docs/store.md).
    """
    CREATE TABLE confirmations (
        confirmation_id         VARCHAR PRIMARY KEY,
        created_at              TIMESTAMP NOT NULL,
        candidate_job_id        VARCHAR NOT NULL,
        target                  VARCHAR NOT NULL,
        candidate_trial_number  INTEGER NOT NULL,
        baseline_job_id         VARCHAR NOT NULL,
        baseline_trial_number   INTEGER NOT NULL,
        baseline_source         VARCHAR,
        params                  JSON,
        candidate_artifact_hash VARCHAR,
        baseline_artifact_hash  VARCHAR,
        node_id                 VARCHAR,
        node_host               VARCHAR,
        threads                 INTEGER,
        contract                JSON,
        inputs                  VARCHAR,
        statistic               VARCHAR,   -- per-measurement statistic the decision compares
        rounds                  INTEGER,
        orders                  VARCHAR[], -- per round: 'AB' (baseline first) or 'BA'
        baseline_ms             DOUBLE[],  -- per round, the statistic of each side
        candidate_ms            DOUBLE[],
        baseline_p50_ms         DOUBLE[],
        candidate_p50_ms        DOUBLE[],
        unstable_measurements   INTEGER,
        ratio                   DOUBLE,    -- median over rounds of candidate / baseline
        ratio_low               DOUBLE,    -- distribution-free (1 - alpha) interval of it
        ratio_high              DOUBLE,
        decided_by              VARCHAR,   -- 'interval' | 'median at the round cap'
        threshold               DOUBLE,
        alpha                   DOUBLE,
        regression              BOOLEAN,
        store_ratio             DOUBLE,    -- what the store-only test said
        store_p_value           DOUBLE,
        store_regression        BOOLEAN,
        wall_s                  DOUBLE
    );
    """,
]

TRIAL_COLUMNS = [
    "job_id",
    "target",
    "trial_number",
    "is_baseline",
    "candidate_hash",
    "params",
    "status",
    "error",
    "node_id",
    "node_host",
    "attempts",
    "precision",
    "precision_actual",
    "batch_size",
    "threads",
    "accuracy",
    "accuracy_drop",
    "quality_metric",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "latency_mean_ms",
    "latency_std_ms",
    "latency_cv",
    "throughput_ips",
    "cost_per_1k_usd",
    "price_per_hour_usd",
    "n_samples",
    "stable",
    "unstable_reason",
    "cold_ms",
    "compile_s",
    "build_s",
    "measure_s",
    "cache_hit",
    "artifact_hash",
    "artifact_bytes",
    "peak_rss_mb",
    "env_id",
    "contract",
    "feasible",
    "started_at",
    "finished_at",
    "node_ip",
    "build_key",
    "gpu_model",
    "priced_as",
    "eval_s",
    "trial_s",
    "orchestration_s",
    "infeasible_reason",
    "device_latency_p50_ms",
    "device_latency_p95_ms",
    "device_memory_mib",
]


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
    """Open the store, retrying while another process holds the file for a write."""
    if read_only and not path.exists():
        raise UsageError(f"{path}: no farm store here (run a job first, or pass --db PATH)")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    limit = LOCK_RETRY_S if read_only else WRITE_LOCK_WAIT_S
    warned = False
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
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
    try:
        yield con
    finally:
        con.close()


class Store:
    """Typed access to the store. Each method opens and closes the file."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = db_path(path)

    # -- writing (driver only) -------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with connect(self.path) as con:
            self._migrate(con)
            con.execute("BEGIN")
            try:
                yield con
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    @staticmethod
    def _migrate(con: duckdb.DuckDBPyConnection) -> None:
        con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = con.execute("SELECT max(version) FROM schema_version").fetchone()
        current = row[0] if row and row[0] is not None else 0
        for version in range(current + 1, len(MIGRATIONS) + 1):
            con.execute("BEGIN")
            con.execute(MIGRATIONS[version - 1])
            con.execute("INSERT INTO schema_version VALUES (?)", [version])
            con.execute("COMMIT")

    def create_job(
        self,
        job_id: str,
        name: str,
        spec_json: str,
        *,
        task: str = "classification",
        label: str | None = None,
    ) -> None:
        with self.transaction() as con:
            con.execute(
                "INSERT INTO jobs (job_id, name, spec, status, created_at, task, label) "
                "VALUES (?, ?, ?, 'running', now(), ?, ?)",
                [job_id, name, spec_json, task, label],
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
        row: dict[str, Any],
        samples_ms: Sequence[float] = (),
        metrics: dict[str, float] | None = None,
        environment: tuple[str, dict[str, Any]] | None = None,
    ) -> None:
        """Store one finished trial, its raw samples, metrics and environment atomically."""
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
            key = [row["job_id"], row["target"], row["trial_number"]]
            if len(samples_ms):
                con.execute(
                    "INSERT INTO latency_samples SELECT ?, ?, ?, s.i - 1, s.x FROM "
                    "(SELECT unnest(?::DOUBLE[]) AS x, generate_subscripts(?::DOUBLE[], 1) AS i) s",
                    [*key, list(map(float, samples_ms)), list(map(float, samples_ms))],
                )
            for name, value in (metrics or {}).items():
                con.execute("INSERT INTO metrics VALUES (?, ?, ?, ?, ?)", [*key, name, value])

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

    def jobs(self) -> list[dict[str, Any]]:
        return self.query(
            "SELECT j.job_id, j.name, j.status, j.created_at, j.finished_at, j.message, "
            "count(t.trial_number) AS trials, "
            "count(*) FILTER (WHERE t.status = 'completed') AS completed, "
            "count(*) FILTER (WHERE t.status = 'failed') AS failed "
            "FROM jobs j LEFT JOIN trials t USING (job_id) "
            "GROUP BY ALL ORDER BY j.created_at DESC, j.job_id DESC"
        )

    def resolve_job(self, ref: str) -> dict[str, Any]:
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
        return (exact or rows)[0]

    def trials(self, job_id: str, where: str = "TRUE") -> list[dict[str, Any]]:
        return self.query(
            f"SELECT * FROM trials WHERE job_id = ? AND ({where}) ORDER BY target, trial_number",
            [job_id],
        )

    def metrics(self, job_id: str) -> dict[tuple[str, int], dict[str, float]]:
        """Every quality metric of the job's trials: (target, trial_number) -> {name: value}."""
        out: dict[tuple[str, int], dict[str, float]] = {}
        for r in self.query(
            "SELECT target, trial_number, name, value FROM metrics WHERE job_id = ?", [job_id]
        ):
            out.setdefault((r["target"], r["trial_number"]), {})[r["name"]] = r["value"]
        return out

    def trials_with_metrics(self, job_id: str) -> list[dict[str, Any]]:
        """:meth:`trials`, each row with its quality metrics under ``"metrics"``."""
        metrics = self.metrics(job_id)
        rows = self.trials(job_id)
        for r in rows:
            r["metrics"] = metrics.get((r["target"], r["trial_number"]), {})
        return rows

    def samples(self, job_id: str, target: str, trial_number: int) -> list[float]:
        rows = self.query(
            "SELECT latency_ms FROM latency_samples WHERE job_id = ? AND target = ? "
            "AND trial_number = ? ORDER BY seq",
            [job_id, target, trial_number],
        )
        return [r["latency_ms"] for r in rows]

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
