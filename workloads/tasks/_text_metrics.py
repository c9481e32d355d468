"""Edit-distance metrics of recognised text: CER, WER, exact match, 1 - NED.

The corpus definitions every OCR benchmark reports, on strings normalised the same way on both
sides (:func:`normalize`: surrounding whitespace stripped, as jiwer's default transform does,
because CTC recognisers emit spurious leading/trailing spaces; case folded when asked):

* ``cer``: Σ Levenshtein(hypothesis, reference) / Σ len(reference) over the lines, edits counted
  in characters (substitutions, deletions and insertions; it can exceed 1);
* ``wer``: the same over whitespace-separated words;
* ``exact_match``: the share of lines read exactly;
* ``one_minus_ned``: PaddleOCR's ``norm_edit_dis``, 1 - the mean over the lines of
  Levenshtein / max(len(hypothesis), len(reference)) (0 for two empty strings).

When every reference is empty the rate is 0 if every hypothesis is empty too, else 1. The edit
distance is rapidfuzz's (C++, MIT); the tests check it against jiwer and torchmetrics. rapidfuzz
is imported inside the functions: task modules import numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def normalize(text: str, case_sensitive: bool = True) -> str:
    """``text`` as it is scored: surrounding whitespace stripped, case folded unless
    ``case_sensitive``."""
    text = text.strip()
    return text if case_sensitive else text.casefold()


def rate(errors: float, total: float) -> float:
    """An error rate: ``errors / total``; with no reference characters at all, 0 when nothing
    was inserted either, else 1."""
    if total > 0:
        return float(errors / total)
    return 0.0 if errors == 0 else 1.0


def char_edits(hypotheses: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """Per line, the character edit distance between hypothesis and reference."""
    from rapidfuzz.distance import Levenshtein

    return np.asarray(
        [Levenshtein.distance(h, r) for h, r in zip(hypotheses, references, strict=True)],
        dtype=np.int64,
    )


def word_edits(hypotheses: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """Per line, the word edit distance (words: runs of non-whitespace)."""
    from rapidfuzz.distance import Levenshtein

    return np.asarray(
        [
            Levenshtein.distance(h.split(), r.split())
            for h, r in zip(hypotheses, references, strict=True)
        ],
        dtype=np.int64,
    )


def text_metrics(
    hypotheses: Sequence[str], references: Sequence[str], prefix: str = ""
) -> dict[str, float]:
    """``cer``, ``wer``, ``exact_match`` and ``one_minus_ned`` of normalised strings; with
    ``prefix`` only ``cer`` and ``exact_match`` (the fidelity pair), suffixed ``_vs_fp32``."""
    from rapidfuzz.distance import Levenshtein

    edits = char_edits(hypotheses, references)
    lengths = np.asarray([len(r) for r in references], dtype=np.int64)
    exact = float(np.mean(edits == 0)) if len(edits) else 1.0
    if prefix:
        return {f"cer{prefix}": rate(edits.sum(), lengths.sum()), f"exact_match{prefix}": exact}
    words = word_edits(hypotheses, references)
    ned = [
        Levenshtein.normalized_distance(h, r) for h, r in zip(hypotheses, references, strict=True)
    ]
    return {
        "cer": rate(edits.sum(), lengths.sum()),
        "wer": rate(words.sum(), sum(len(r.split()) for r in references)),
        "exact_match": exact,
        "one_minus_ned": 1.0 - float(np.mean(ned)) if ned else 1.0,
    }


def resampled_rate(edits: np.ndarray, lengths: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The error rate Σ w·edits / Σ w·lengths for each row of ``weights`` ([B, N] line
    multiplicities): a row of ones gives :func:`rate` of the whole split exactly."""
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    errors = w @ edits.astype(np.float64)
    total = w @ lengths.astype(np.float64)
    safe = np.where(total > 0, total, 1.0)
    return np.where(total > 0, errors / safe, np.where(errors == 0, 0.0, 1.0))
