"""Building a candidate's artifact: its transform chain applied to the workload's model.

The steps travel as resolved :class:`~optimizers.Transform` objects (:func:`resolve`, on the
driver), not as names: a transform registered in the driver's process (a plug-in, a test) then
builds on a worker that never imported it.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farm.measure.bench import input_size, trial_step

if TYPE_CHECKING:
    from farm.artifact import Artifact
    from farm.search.candidate import Step
    from optimizers import Transform
    from workloads import WorkloadData
    from workloads.tasks import Task


@dataclass(frozen=True)
class BuildStep:
    """One step of a chain: a registered transform and its config."""

    transform: Transform
    config: tuple[tuple[str, Any], ...] = ()


def resolve(chain: Sequence[Step]) -> tuple[BuildStep, ...]:
    """A candidate's chain (transform names and configs) as the transforms registered here."""
    import optimizers

    return tuple(BuildStep(optimizers.get_transform(name), config) for name, config in chain)


def node_cache_dir() -> Path:
    """Where builds on this node keep one-time analyses (quantization sensitivity rankings)."""
    return Path(os.environ.get("FARM_NODE_CACHE", Path(tempfile.gettempdir()) / "farm-node"))


def build(
    source: Artifact,
    steps: Sequence[BuildStep],
    data: WorkloadData,
    seed: int,
    task: Task | None,
) -> list[Artifact]:
    """Apply ``steps`` to ``source``; return the artifact after each step (for the cache).

    Each step sees the workload's data at its input artifact's input size (a resolution
    step changes it): quantizers calibrate and pruning fine-tunes at the resolution served.
    ``task`` is the workload's (the engine always gives it): transforms that fine-tune
    (pruning, input resize) train with its loss, and refuse to run without one. A failure names
    the step's stage and transform (``quantize failed (quantize_ort): …``)."""
    from optimizers import BuildContext

    out = []
    artifact = source
    resized: dict[Any, WorkloadData] = {}  # the data at each input size the chain goes through
    for step in steps:
        start = time.perf_counter()
        size = input_size(artifact)
        if size not in resized:
            resized[size] = data_for(artifact, data)
        ctx = BuildContext(resized[size], seed, node_cache_dir(), task)
        with trial_step(step.transform.stage, step.transform.name):
            artifact = step.transform.apply(dict(step.config), artifact, ctx)
        artifact.meta["build_s"] = time.perf_counter() - start
        out.append(artifact)
    return out


def data_for(artifact: Artifact, data: WorkloadData) -> WorkloadData:
    """``data`` resized to the artifact's input H×W when they differ."""
    size = input_size(artifact)
    if size is None or size == data.image_size:
        return data
    from workloads import resize_data

    return resize_data(data, size)
