"""Calibration data shared by the quantizers."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from workloads.base import WorkloadTraits
    from workloads.data import Split


def sensitivity_ranking_offered(traits: WorkloadTraits | None) -> bool:
    """Mixed precision ranks layers by how far quantizing each moves the model's outputs; that
    needs outputs of a fixed shape (not a detector's post-NMS boxes, whose count varies)."""
    return traits is None or traits.fixed_shape_outputs


def calibration_batches(split: Split, size: int, batch_size: int = 1) -> list[np.ndarray]:
    """The first ``size`` samples of ``split`` (all when ``size`` is 0) in batches.

    The calibration split is already a seeded, stratified sample, so its head is a fair subset
    and the same on every run. Only full batches are returned (the remainder is dropped unless
    it is all there is): ONNX Runtime's histogram calibrators (Entropy, Percentile) stack the
    batches and fail on a short last one.
    """
    batches = split.head(size).batches(batch_size)
    full = [b for b in batches if len(b) == batch_size]
    return full or batches
