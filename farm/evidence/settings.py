"""How paired intervals are computed: cheap to import (job specs and the engine's prepared job
hold one)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EvidenceSettings:
    """How intervals are computed (``[constraints] quality_confidence``, ``[evidence]``)."""

    #: The interval's coverage.
    confidence: float = 0.95
    #: Bootstrap resamples.
    resamples: int = 1000
    #: The resampling seed (stored with each interval: it reproduces it exactly).
    seed: int = 0
