"""The farm's engine: job specs, the search driver, scheduling on Ray, the DuckDB store.

It knows no runtime by name: targets, workloads and optimizers are reached through the small
interfaces in ``targets/``, ``workloads/`` and ``optimizers/`` (see docs/INTERFACES.md).
"""

__version__ = "0.1.0"
