"""Workloads: the model a job optimizes, the data it is judged on, and the task that judges it.

The folders are the concepts: ``sources/`` (where a model comes from: torchvision, an ONNX file,
the builders that rebuild torch modules), ``datasets/`` (a user's images and ground truth),
``tasks/`` (what outputs mean and how they are scored), ``kpis/`` (release KPIs beyond the
primary metric) and ``demos/`` (the embedded, offline demos). :func:`load_workload` turns a job
file's ``[workload]`` table into a :class:`Workload` (see :mod:`workloads.loader`).

Importing this package does not import torch: validating a job file stays cheap.
"""

from __future__ import annotations

from workloads.base import Workload, WorkloadTraits
from workloads.data import Split, WorkloadData, channels_last, resize_data, resize_split
from workloads.datasets.config import DataConfig, parse_data_config
from workloads.demos.digits import DigitsWorkload
from workloads.loader import EMBEDDED, load_workload
from workloads.sources.builders import (
    build_module,
    get_builder,
    register_builder,
    state_dict_bytes,
)

__all__ = [
    "EMBEDDED",
    "DataConfig",
    "DigitsWorkload",
    "Split",
    "Workload",
    "WorkloadData",
    "WorkloadTraits",
    "build_module",
    "channels_last",
    "get_builder",
    "load_workload",
    "parse_data_config",
    "register_builder",
    "resize_data",
    "resize_split",
    "state_dict_bytes",
]
