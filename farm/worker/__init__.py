"""What runs on a node for one candidate: building its artifact (:mod:`~farm.worker.build`),
evaluating it on the target's runtime (:mod:`~farm.worker.evaluate`: quality on the eval split,
then the latency measurement), and the Ray tasks around both (:mod:`~farm.worker.remote`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from farm._lazy import lazy_exports

if TYPE_CHECKING:
    from farm.worker.evaluate import EvaluationRequest

#: Public name -> the module that defines it (imported on first use).
_EXPORTS = {
    "EvaluationRequest": "farm.worker.evaluate",
}
__all__ = ["EvaluationRequest"]
__getattr__, __dir__ = lazy_exports("farm.worker", _EXPORTS)
