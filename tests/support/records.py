"""Reading a store's trials as typed records in tests (one place that names the store's
reader)."""

from __future__ import annotations

from farm.store.db import Store
from farm.store.records import TrialRecord


def trials(store: Store, job_id: str, where: str = "TRUE") -> list[TrialRecord]:
    """The job's trials, by target and number, each with its metrics."""
    return store.trial_records(job_id, where)
