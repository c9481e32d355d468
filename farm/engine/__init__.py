"""The driver of a job: one Optuna study per target, trials submitted through an executor
(Ray), results recorded in the store. The store's only writer.

- :mod:`~farm.engine.prepare`: everything that can fail on bad input, before the store is
  written (a frozen :class:`PreparedJob`);
- :mod:`~farm.engine.studies`: the studies, what they ask, and a resumed job's replay;
- :mod:`~farm.engine.scheduler`: node leases, capacity, lost nodes;
- :mod:`~farm.engine.executor`: the seam in front of Ray, and the outcomes it reports;
- :mod:`~farm.engine.recorder`: prices, constraints, records, fronts, store writes;
- :mod:`~farm.engine.runner`: :class:`JobRunner`, the state machine over those;
- :mod:`~farm.engine.single`: one candidate outside a job (:func:`run_candidate`);
- :mod:`~farm.engine.pricing`: what a trial is charged.

The names below are imported on first use (a module ``__getattr__``): ``farm.engine.pricing``
stays importable where Optuna and DuckDB are not installed (the GPU check script).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from farm._lazy import lazy_exports

if TYPE_CHECKING:
    from farm.engine.executor import Executor, RayExecutor
    from farm.engine.prepare import PreparedJob, prepare_job, reference_predictions
    from farm.engine.runner import JobRunner
    from farm.engine.single import CandidateResult, CandidateRunner, run_candidate

#: Public name -> the module that defines it.
_EXPORTS = {
    "CandidateResult": "farm.engine.single",
    "CandidateRunner": "farm.engine.single",
    "Executor": "farm.engine.executor",
    "JobRunner": "farm.engine.runner",
    "PreparedJob": "farm.engine.prepare",
    "RayExecutor": "farm.engine.executor",
    "prepare_job": "farm.engine.prepare",
    "reference_predictions": "farm.engine.prepare",
    "run_candidate": "farm.engine.single",
}
__all__ = [
    "CandidateResult",
    "CandidateRunner",
    "Executor",
    "JobRunner",
    "PreparedJob",
    "RayExecutor",
    "prepare_job",
    "reference_predictions",
    "run_candidate",
]


__getattr__, __dir__ = lazy_exports("farm.engine", _EXPORTS)
