"""The driver of a job: one Optuna study per target, trials submitted through an executor
(Ray), results recorded in the store. The store's only writer.

- :mod:`~farm.engine.prepare`: everything that can fail on bad input, before the store is
  written (a frozen :class:`PreparedJob`);
- :mod:`~farm.engine.studies`: the studies, what they ask, and a resumed job's replay;
- :mod:`~farm.engine.scheduler`: node leases, capacity, lost nodes;
- :mod:`~farm.engine.executor`: the seam in front of Ray, and the outcomes it reports;
- :mod:`~farm.engine.recorder`: prices, constraints, records, fronts, store writes;
- :mod:`~farm.engine.runner`: :class:`JobRunner`, the state machine over those;
- :mod:`~farm.engine.single`: one candidate outside a job (:func:`run_candidate`).
"""

from __future__ import annotations

from farm.engine.executor import Executor, RayExecutor
from farm.engine.prepare import PreparedJob, prepare_job, reference_predictions
from farm.engine.runner import JobRunner
from farm.engine.single import CandidateResult, CandidateRunner, run_candidate

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
