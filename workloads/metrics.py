"""Quality metrics computed from a target runtime's own outputs.

With labels: top-1 ``accuracy``. With a reference (the fp32 model's logits on the same inputs):
fidelity — ``top1_agreement`` (share of inputs whose top-1 class matches the reference) and the
``max_abs_logit_diff`` / ``mean_abs_logit_diff``. Both are recorded when both are available.
"""

from __future__ import annotations

import numpy as np


def quality_metrics(
    logits: np.ndarray, labels: np.ndarray | None, reference_logits: np.ndarray | None
) -> dict[str, float]:
    if logits.ndim != 2:
        raise ValueError(f"logits must be (N, classes), got shape {logits.shape}")
    top1 = logits.argmax(axis=1)
    out: dict[str, float] = {}
    if labels is not None:
        if len(labels) != len(logits):
            raise ValueError(f"{len(labels)} labels for {len(logits)} outputs")
        out["accuracy"] = float((top1 == labels).mean())
    if reference_logits is not None:
        if reference_logits.shape != logits.shape:
            raise ValueError(
                f"reference logits {reference_logits.shape} do not match outputs {logits.shape}"
            )
        diff = np.abs(logits.astype(np.float64) - reference_logits.astype(np.float64))
        out["top1_agreement"] = float((top1 == reference_logits.argmax(axis=1)).mean())
        out["max_abs_logit_diff"] = float(diff.max())
        out["mean_abs_logit_diff"] = float(diff.mean())
    return out
