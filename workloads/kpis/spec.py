"""The ``[evaluation]`` table: release KPIs beyond the primary metric (stdlib only).

```toml
[evaluation]
robustness = true                # opt-in: every candidate is also evaluated under corruptions
corruptions = ["gaussian_noise", "motion_blur"]   # optional subset (default: all seven)
severities = [1, 3, 5]           # optional (default 1, 3, 5 of ImageNet-C's 1..5)
positive_classes = [7, 9]        # an operating point: these classes are "positive" …
target_precision = 0.95          # … the threshold reaching this precision on the calibration
# target_recall = 0.98           #     split (or this recall) is applied to the eval split
```

Calibration (``ece``, ``ece_adaptive``, ``brier``, ``nll``) and per-class quality are always
recorded where the task has them; slices come from ``[workload.data] slices`` (a CSV).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from farm._validate import Fields

#: The corruption suite (see workloads/kpis/corruptions.py), in report order.
CORRUPTIONS = (
    "gaussian_noise",
    "motion_blur",
    "defocus_blur",
    "brightness",
    "contrast",
    "jpeg_compression",
    "pixelate",
)
SEVERITIES = (1, 3, 5)
FIELDS = {
    "robustness",
    "corruptions",
    "severities",
    "positive_classes",
    "target_precision",
    "target_recall",
}

#: KPI metric names a trial may record, and the prefixes of per-corruption / per-slice /
#: per-class ones; farm/spec/constraints.py accepts limits on all of them.
CALIBRATION_METRICS = ("ece", "ece_adaptive", "brier", "nll")
ROBUSTNESS_METRICS = ("robustness",)
SLICE_METRICS = ("worst_slice", "slice_gap")
OPERATING_METRICS = (
    "fp_rate",
    "fn_rate",
    "threshold",
    "precision_at_threshold",
    "recall_at_threshold",
)
KPI_PREFIXES = ("robust/", "slice/", "acc/")
#: KPIs where lower is better (the gate's regression direction).
LOWER_IS_BETTER = frozenset({*CALIBRATION_METRICS, "slice_gap", "fp_rate", "fn_rate"})


@dataclass(frozen=True)
class EvaluationSpec:
    robustness: bool = False
    corruptions: tuple[str, ...] = CORRUPTIONS
    severities: tuple[int, ...] = SEVERITIES
    #: Class indices or names (resolved against the data's class names when the job starts).
    positive_classes: tuple[Any, ...] = ()
    target_precision: float | None = None
    target_recall: float | None = None

    @property
    def operating_point(self) -> bool:
        return bool(self.positive_classes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "robustness": self.robustness,
            "corruptions": list(self.corruptions),
            "severities": list(self.severities),
            "positive_classes": list(self.positive_classes),
            "target_precision": self.target_precision,
            "target_recall": self.target_recall,
        }


def parse_evaluation(source: str | Path, table: Mapping[str, Any]) -> EvaluationSpec:
    """Validate ``[evaluation]``; every error names the file and ``evaluation.<field>``."""
    f = Fields(table, source, "evaluation")
    f.only(FIELDS)
    robustness = f.flag("robustness", False)
    corruptions = f.strings("corruptions", CORRUPTIONS, choices=CORRUPTIONS, unique=False)
    severities = f.numbers(
        "severities",
        SEVERITIES,
        integers=True,
        low=1,
        expected="a non-empty list of integers from 1 to 5",
    )
    if any(s > 5 for s in severities):
        raise f.error("severities", "a non-empty list of integers from 1 to 5", list(severities))
    positives = table.get("positive_classes", [])
    if not isinstance(positives, list) or any(
        isinstance(p, bool) or not isinstance(p, int | str) for p in positives
    ):
        raise f.error("positive_classes", "a list of class indices or class names", positives)
    precision = f.number("target_precision", None, low=0, high=1, low_open=True)
    recall = f.number("target_recall", None, low=0, high=1, low_open=True)
    if positives and (precision is None) == (recall is None):
        raise f.error(
            "target_precision",
            "exactly one of target_precision and target_recall with positive_classes",
        )
    if not positives and (precision is not None or recall is not None):
        raise f.error("positive_classes", "the positive classes the operating point is about")
    return EvaluationSpec(
        robustness=robustness,
        corruptions=tuple(dict.fromkeys(corruptions)),
        severities=tuple(sorted(set(severities))),
        positive_classes=tuple(positives),
        target_precision=precision,
        target_recall=recall,
    )


def kpi_names(spec: EvaluationSpec, calibration: bool, slices: bool) -> set[str]:
    """The KPI metric names a trial of this job records (besides per-class/per-slice ones)."""
    names: set[str] = set()
    if calibration:
        names.update(CALIBRATION_METRICS)
    if spec.robustness:
        names.update(ROBUSTNESS_METRICS)
        names.update(f"robust/{c}/{s}" for c in spec.corruptions for s in spec.severities)
    if slices:
        names.update(SLICE_METRICS)
    if spec.operating_point:
        names.update(OPERATING_METRICS)
    return names
