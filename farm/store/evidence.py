"""Per-image evidence and paired comparisons in the store (tables ``image_sets``,
``evidence``, ``comparisons``; docs/store.md shows how to read them in SQL).

Compact: an eval image set's ids are stored once (keyed by their hash); a trial's per-image
scores, confidences, outcomes and predictions are lists in that order, and the task's arrays
one ``.npz`` blob.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import numpy as np

from farm._io import hash_json
from farm.evidence.paired import Comparison
from workloads.evidence import Evidence

if TYPE_CHECKING:
    import duckdb

#: (job_id, target, trial_number)
Key = tuple[str, str, int]


def image_set_id(ids: tuple[str, ...]) -> str:
    return hash_json(list(ids))[:16]


def write_evidence(con: duckdb.DuckDBPyConnection, key: Key, metric: str, ev: Evidence) -> None:
    image_set = image_set_id(ev.ids)
    con.execute(
        "INSERT INTO image_sets VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        [image_set, len(ev.ids), list(ev.ids)],
    )
    buffer = io.BytesIO()
    arrays: dict[str, Any] = {k: np.asarray(v) for k, v in ev.arrays.items()}
    np.savez_compressed(buffer, **arrays)
    con.execute(
        "INSERT INTO evidence VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            *key,
            image_set,
            metric,
            [_num(v) for v in ev.score],
            [_num(v) for v in ev.confidence],
            None if ev.correct is None else [bool(v) for v in ev.correct],
            list(ev.predicted),
            buffer.getvalue(),
        ],
    )


def _num(v: Any) -> float | None:
    v = float(v)
    return v if np.isfinite(v) else None


def read_evidence(con: duckdb.DuckDBPyConnection, key: Key) -> Evidence | None:
    row = con.execute(
        "SELECT s.ids, e.score, e.confidence, e.correct, e.predicted, e.arrays "
        "FROM evidence e JOIN image_sets s USING (image_set) "
        "WHERE e.job_id = ? AND e.target = ? AND e.trial_number = ?",
        list(key),
    ).fetchone()
    if row is None:
        return None
    ids, score, confidence, correct, predicted, blob = row
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}

    def floats(values: list[Any] | None) -> np.ndarray:
        return np.array([np.nan if v is None else v for v in values or []], dtype=np.float64)

    return Evidence(
        ids=tuple(ids),
        score=floats(score),
        predicted=tuple(predicted or ("",) * len(ids)),
        confidence=floats(confidence) if confidence else np.full(len(ids), np.nan),
        correct=None if correct is None else np.asarray(correct, dtype=bool),
        arrays=arrays,
    )


def write_comparison(
    con: duckdb.DuckDBPyConnection, key: Key, baseline: Key, c: Comparison
) -> None:
    row = c.to_dict()
    names = [
        "metric", "higher_is_better", "baseline", "value", "delta", "low", "high",
        "confidence", "resamples", "seed", "significant", "n_images", "broken", "fixed",
        "flip_threshold", "p_value", "seconds",
    ]  # fmt: skip
    values = [
        None if isinstance(row[n], float) and not np.isfinite(row[n]) else row[n] for n in names
    ]
    con.execute(
        f"INSERT OR REPLACE INTO comparisons (job_id, target, trial_number, baseline_job_id, "
        f"baseline_target, baseline_trial_number, {', '.join(names)}) "
        f"VALUES ({', '.join('?' for _ in range(6 + len(names)))})",
        [*key, *baseline, *values],
    )


def read_comparisons(
    con: duckdb.DuckDBPyConnection, job_id: str, kpis: bool = False
) -> dict[Any, tuple[Key, Comparison]]:
    """(target, trial_number) -> (the baseline's key, the comparison of the primary metric) of
    the job's candidates; with ``kpis`` every compared metric, keyed (target, trial, metric)."""
    primary = (
        ""
        if kpis
        else "AND c.metric = (SELECT quality_metric FROM trials t WHERE t.job_id = "
        "c.job_id AND t.target = c.target AND t.trial_number = c.trial_number)"
    )
    cur = con.execute(
        f"SELECT * FROM comparisons c WHERE job_id = ? {primary} "
        "ORDER BY target, trial_number, metric",
        [job_id],
    )
    names = [d[0] for d in cur.description]
    out: dict[Any, tuple[Key, Comparison]] = {}
    for values in cur.fetchall():
        row = dict(zip(names, values, strict=True))
        row = {k: (np.nan if v is None and k in ("low", "high") else v) for k, v in row.items()}
        base = (row["baseline_job_id"], row["baseline_target"], int(row["baseline_trial_number"]))
        key = (row["target"], int(row["trial_number"]))
        out[(*key, row["metric"]) if kpis else key] = (base, Comparison.from_dict(row))
    return out
