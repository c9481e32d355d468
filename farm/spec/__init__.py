"""The job as data: a job file parsed and validated into a frozen, hashable
:class:`~farm.spec.job.JobSpec`, and its ``[constraints]``. Imports the standard library and
numpy only: validating a job file never loads a runtime.
"""

from __future__ import annotations

from farm.spec.job import JobSpec, SearchSpec, load_job, parse_job

__all__ = ["JobSpec", "SearchSpec", "load_job", "parse_job"]
