"""Calibration of confidence scores: ECE (equal-width and equal-mass bins), Brier score, NLL.

Numpy only. The definitions are the usual ones (Guo et al. 2017 for ECE; the tests check them
against torchmetrics and netcal):

* ``ece``: top-label expected calibration error over 15 equal-width confidence bins:
  ``sum_b |B_b| / n * |accuracy(B_b) - confidence(B_b)|``.
* ``ece_adaptive``: the same over 15 equal-mass bins (edges at the confidences' quantiles),
  less dominated by the few very-confident bins.
* ``brier``: mean over samples of the squared distance between the probability vector and the
  one-hot label (multi-class Brier score, range [0, 2]).
* ``nll``: mean negative log-likelihood of the true class.
"""

from __future__ import annotations

import numpy as np

BINS = 15


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def ece(confidence: np.ndarray, correct: np.ndarray, bins: int = BINS) -> float:
    """Expected calibration error with equal-width bins on [0, 1] (right-closed, as
    torchmetrics: a confidence of exactly 1 falls in the last bin)."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    if confidence.size == 0:
        return 0.0
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        in_bin = index == b
        if in_bin.any():
            total += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(total)


def adaptive_ece(confidence: np.ndarray, correct: np.ndarray, bins: int = BINS) -> float:
    """Expected calibration error with equal-mass bins: the bin edges are the confidences'
    quantiles (the outer ones widened to 0 and 1), so each bin holds about n / ``bins``
    samples; as netcal's ``ECE(equal_intervals=False)``."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    if confidence.size == 0:
        return 0.0
    edges = np.quantile(confidence, np.linspace(0.0, 1.0, bins + 1))
    edges[0], edges[-1] = 0.0, 1.0
    # [e_i, e_i+1) with the last bin closed, as numpy's histograms
    index = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        in_bin = index == b
        if in_bin.any():
            total += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(total)


def classification_calibration(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """``ece``, ``ece_adaptive``, ``brier`` and ``nll`` of a classifier's logits."""
    probs = softmax(np.asarray(logits))
    labels = np.asarray(labels, dtype=np.int64)
    top = probs.argmax(axis=1)
    confidence = probs[np.arange(len(probs)), top]
    correct = top == labels
    terms = per_image_terms(probs, labels)
    return {
        "ece": ece(confidence, correct),
        "ece_adaptive": adaptive_ece(confidence, correct),
        "brier": float(terms["brier"].mean()),
        "nll": float(terms["nll"].mean()),
    }


def per_image_terms(probs: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Each image's Brier score and negative log-likelihood of its true class (``brier`` and
    ``nll`` are their means; ECE is not a mean over images, it bins them)."""
    labels = np.asarray(labels, dtype=np.int64)
    onehot = np.zeros_like(probs)
    onehot[np.arange(len(labels)), labels] = 1.0
    p_true = probs[np.arange(len(labels)), labels]
    return {
        "brier": ((probs - onehot) ** 2).sum(axis=1),
        "nll": -np.log(np.clip(p_true, 1e-12, None)),
    }
