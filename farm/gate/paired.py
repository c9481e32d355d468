"""The gate's quality check image by image, where both jobs were judged on the same images.

Two jobs of the same workload that stored per-image evidence of the same eval image set (the
same ids, in order) are compared as a candidate is compared with its fp32 baseline inside a
job: the change of the primary metric with its seeded paired bootstrap interval, the images it
broke and fixed, McNemar's exact test for right/wrong outcomes. A regression is a drop whose
whole interval lies beyond the tolerance: a change the images cannot tell from noise is not
one. Where the evidence is missing (an export file, a store written before it was kept, other
images), the fixed tolerance on the point estimates decides, and the check says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from farm.evidence.paired import Comparison
    from farm.gate.snapshot import Snapshot
    from farm.store.records import TrialRecord
    from workloads.evidence import PerImage

#: How the quality check's verdict was reached (the check's message says it).
PAIRED = "paired over the same images"
FIXED = "fixed tolerance: the two jobs were not judged on the same images with evidence stored"


def evidence_task(name: str | None) -> PerImage | None:
    """The task that recomputes a metric from evidence (its arrays hold everything its
    resampled quality reads, so a default instance serves); None where it has none."""
    from workloads.evidence import PerImage
    from workloads.tasks import TASKS

    cls = TASKS.get(name or "classification")
    try:
        task = cls() if cls is not None else None
    except (TypeError, ValueError):
        return None
    return task if isinstance(task, PerImage) else None


def paired_comparison(
    candidate: Snapshot,
    baseline: Snapshot,
    cand: TrialRecord,
    base: TrialRecord,
    confidence: float = 0.95,
) -> Comparison | None:
    """``cand`` (of the candidate job) against ``base`` (of the baseline job), image by image;
    None when either side has no stored evidence or they were judged on other images."""
    from farm.evidence.paired import compare
    from farm.evidence.settings import EvidenceSettings

    if candidate.store is None or baseline.store is None:
        return None
    a = baseline.store.evidence(baseline.job_id, base.target, base.trial_number)
    b = candidate.store.evidence(candidate.job_id, cand.target, cand.trial_number)
    task = evidence_task(candidate.job.task)
    if a is None or b is None or task is None or not a.same_images(b):
        return None
    return compare(
        task,
        a,
        b,
        metric=cand.metric_name,
        higher_is_better=cand.quality_sense > 0,
        settings=EvidenceSettings(confidence=confidence),
    )
