"""What a study optimises: a short list of objectives, each a trial's field or quality metric
and a direction. One list feeds the studies' directions, the values told to them and the Pareto
fronts, so that they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from farm.store.records import TrialRecord


@dataclass(frozen=True)
class Objective:
    """One objective: a :class:`~farm.store.records.TrialRecord` field (``quality``,
    ``latency_p95_ms``…) or the name of a quality metric the trial records, and whether more or
    less of it is better."""

    name: str
    direction: Literal["maximize", "minimize"]

    @property
    def sense(self) -> int:
        """+1 when larger is better, -1 when smaller is (what ``pareto_mask`` takes)."""
        return 1 if self.direction == "maximize" else -1

    def value(self, record: TrialRecord) -> float:
        """The objective's value for a completed trial."""
        value = getattr(record, self.name, None)
        if value is None:
            value = record.metric(self.name)
        if value is None:
            raise KeyError(f"trial {record.key} has no value for objective {self.name!r}")
        return float(value)


#: The farm's objectives: the task's primary quality metric (max), p95 latency and cost per
#: 1,000 inferences (min).
OBJECTIVES: tuple[Objective, ...] = (
    Objective("quality", "maximize"),
    Objective("latency_p95_ms", "minimize"),
    Objective("cost_per_1k_usd", "minimize"),
)


def objectives_for(quality_metric: str, higher_is_better: bool) -> tuple[Objective, ...]:
    """:data:`OBJECTIVES` with the quality objective's direction that of the job's primary
    metric (an error rate such as CER is minimised)."""
    quality = Objective("quality", "maximize" if higher_is_better else "minimize")
    return tuple(quality if o.name == "quality" else o for o in OBJECTIVES)


def directions(objectives: Sequence[Objective]) -> list[Literal["maximize", "minimize"]]:
    """The study directions, in objective order."""
    return [o.direction for o in objectives]
