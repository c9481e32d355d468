"""Quality metrics computed from a target runtime's outputs (numpy only)."""

from __future__ import annotations

import numpy as np


def quality_metrics(
    logits: np.ndarray, labels: np.ndarray | None, reference_logits: np.ndarray | None
) -> dict[str, float]:
    """Accuracy (when there are labels) and fidelity to the fp32 reference (when given).

    ``top1_agreement`` is the fraction of samples whose top-1 class equals the reference's;
    ``max_abs_logit_diff`` / ``mean_abs_logit_diff`` compare the raw logits. Without labels
    (synthetic inputs) fidelity is the only quality there is.
    """
    logits = np.asarray(logits, dtype=np.float32)
    if logits.ndim != 2:
        raise ValueError(f"logits must be (N, classes), got shape {logits.shape}")
    out: dict[str, float] = {}
    if not np.all(np.isfinite(logits)):
        raise ValueError("logits contain NaN or infinite values")
    top1 = logits.argmax(axis=1)
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (len(logits),):
            raise ValueError(f"labels must be ({len(logits)},), got shape {labels.shape}")
        out["accuracy"] = float((top1 == labels).mean())
    if reference_logits is not None:
        ref = np.asarray(reference_logits, dtype=np.float32)
        if ref.shape != logits.shape:
            raise ValueError(f"reference logits {ref.shape} differ from logits {logits.shape}")
        diff = np.abs(logits - ref)
        out["top1_agreement"] = float((top1 == ref.argmax(axis=1)).mean())
        out["max_abs_logit_diff"] = float(diff.max())
        out["mean_abs_logit_diff"] = float(diff.mean())
    return out
