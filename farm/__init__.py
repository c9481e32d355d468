"""The farm's engine: job specs, the search driver, scheduling on Ray, the DuckDB store.

It knows no runtime by name: targets, workloads and optimizers are reached through the small
interfaces in ``targets/``, ``workloads/`` and ``optimizers/`` (see docs/INTERFACES.md).

From Python (a notebook), the functions of :mod:`farm.api` are here too::

    import farm
    job = farm.run("farm/jobs/digits.toml")
    job.trials, job.front("cpu-openvino"), farm.open_store().jobs()

They are imported on first use (a module ``__getattr__``), so ``import farm`` and ``farm --help``
stay cheap: no torch, Ray or DuckDB until a job is loaded, run or read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Names re-exported from farm.api on first access.
_API = ("Job", "StoreView", "load_job", "open_store", "resume", "run")
__all__ = ["Job", "StoreView", "__version__", "load_job", "open_store", "resume", "run"]

if TYPE_CHECKING:
    from farm.api import Job, StoreView, load_job, open_store, resume, run


def __getattr__(name: str) -> Any:
    if name in _API:
        from farm import api

        return getattr(api, name)
    raise AttributeError(f"module 'farm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
