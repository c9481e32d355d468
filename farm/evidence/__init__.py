"""Paired judgements of a candidate against its target's fp32 baseline, image by image.

A quality number on a few hundred eval images is a point estimate. Both trials were judged on
the same images, so their difference is judged by the images that changed:

* :mod:`farm.evidence.stats`: seeded bootstrap weights, the percentile interval and the
  interval centred on the estimate (for ranking metrics such as COCO mAP), McNemar's exact
  test;
* :mod:`farm.evidence.paired`: :func:`compare` (the change of the primary metric with its
  paired bootstrap interval, flips, McNemar's p-value) returning a :class:`Comparison`;
* :mod:`farm.evidence.kpis`: the release KPIs that are means over images (each class's
  accuracy, Brier, NLL, the operating point's rates) or the primary metric on slices, judged
  the same way from the same resamples;
* :mod:`farm.evidence.words`: the sentence a lead reads ("int8: accuracy −0.19 pt [−0.56,
  +0.19] at 95 %, 1 image broken, 0 fixed; no significant change").

The per-image evidence itself comes from the task (:mod:`workloads.evidence`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from farm._lazy import lazy_exports

if TYPE_CHECKING:
    from farm.evidence.paired import Comparison, compare
    from farm.evidence.settings import EvidenceSettings
    from farm.evidence.words import describe

_EXPORTS = {
    "Comparison": "farm.evidence.paired",
    "EvidenceSettings": "farm.evidence.settings",
    "compare": "farm.evidence.paired",
    "describe": "farm.evidence.words",
}
__all__ = ["Comparison", "EvidenceSettings", "compare", "describe"]
__getattr__, __dir__ = lazy_exports("farm.evidence", _EXPORTS)
