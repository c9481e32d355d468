"""The DuckDB store (the farm's one source of truth), its schema and migrations, the typed
records it returns, the Pareto fronts it marks and the content-addressed artifact cache.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from farm._lazy import lazy_exports

if TYPE_CHECKING:
    from farm.store.artifacts import ArtifactCache
    from farm.store.db import Store, connect, db_path
    from farm.store.records import JobRecord, TrialRecord

#: Public name -> the module that defines it (imported on first use).
_EXPORTS = {
    "ArtifactCache": "farm.store.artifacts",
    "JobRecord": "farm.store.records",
    "Store": "farm.store.db",
    "TrialRecord": "farm.store.records",
    "connect": "farm.store.db",
    "db_path": "farm.store.db",
}
__all__ = ["ArtifactCache", "JobRecord", "Store", "TrialRecord", "connect", "db_path"]
__getattr__, __dir__ = lazy_exports("farm.store", _EXPORTS)
