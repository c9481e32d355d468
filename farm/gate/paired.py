"""The gate's quality and KPI checks image by image, where both jobs were judged on the same
images.

Two jobs of the same workload that stored per-image evidence of the same eval image set (the
same ids, in order) are compared as a candidate is compared with its fp32 baseline inside a
job: the change of the primary metric with its seeded paired bootstrap interval, the images it
broke and fixed, McNemar's exact test for right/wrong outcomes. A regression is a drop whose
whole interval lies beyond the tolerance: a change the images cannot tell from noise is not
one. Where the evidence is missing (an export file, a store written before it was kept, other
images), the fixed tolerance on the point estimates decides, and the check says so. The KPIs
that are means over images (Brier, NLL, the operating point's rates) or the primary metric on
slices of them are judged the same way; ECE and robustness keep their fixed tolerance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from farm.evidence.paired import Comparison
    from farm.gate.snapshot import Snapshot
    from farm.store.records import TrialRecord
    from workloads.evidence import Evidence, PerImage

#: How the quality check's verdict was reached (the check's message says it).
PAIRED = "paired over the same images"
FIXED = "fixed tolerance: the two jobs were not judged on the same images with evidence stored"
#: Why a KPI is judged on a fixed tolerance although both jobs kept evidence.
NOT_A_MEAN = "fixed tolerance: no per-image terms of it are kept"


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


def paired_evidence(
    candidate: Snapshot, baseline: Snapshot, cand: TrialRecord, base: TrialRecord
) -> tuple[PerImage, Evidence, Evidence] | None:
    """The task and the stored evidence of ``base`` (of the baseline job) and ``cand`` (of the
    candidate job); None when either side has none or they were judged on other images."""
    if candidate.store is None or baseline.store is None:
        return None
    a = baseline.store.evidence(baseline.job_id, base.target, base.trial_number)
    b = candidate.store.evidence(candidate.job_id, cand.target, cand.trial_number)
    task = evidence_task(candidate.job.task)
    if a is None or b is None or task is None or not a.same_images(b):
        return None
    return task, a, b


def paired_comparison(
    evidence: tuple[PerImage, Evidence, Evidence] | None,
    cand: TrialRecord,
    confidence: float = 0.95,
) -> Comparison | None:
    """The primary metric of ``cand`` against the baseline's, image by image (None without
    :func:`paired_evidence`)."""
    from farm.evidence.paired import compare
    from farm.evidence.settings import EvidenceSettings

    if evidence is None:
        return None
    task, a, b = evidence
    return compare(
        task,
        a,
        b,
        metric=cand.metric_name,
        higher_is_better=cand.quality_sense > 0,
        settings=EvidenceSettings(confidence=confidence),
    )


def paired_kpis(
    evidence: tuple[PerImage, Evidence, Evidence] | None,
    cand: TrialRecord,
    confidence: float = 0.95,
) -> dict[str, Comparison]:
    """KPI name -> its paired comparison, for the KPIs the evidence recomputes (the per-image
    terms: Brier, NLL, the operating point's rates; the slices, the worst slice, the gap)."""
    from farm.evidence.kpis import compare_slices, compare_terms
    from farm.evidence.settings import EvidenceSettings

    if evidence is None:
        return {}
    task, a, b = evidence
    settings = EvidenceSettings(confidence=confidence)
    higher = cand.quality_sense > 0
    found = [
        *compare_terms(a, b, settings=settings),
        *compare_slices(task, a, b, higher_is_better=higher, settings=settings),
    ]
    return {c.metric: c for c in found}
