"""Release KPIs of one candidate, from its own outputs on the target runtime.

Called by the evaluate task after the primary quality (``farm/worker/evaluate.py``):

* calibration (the task's :meth:`calibration`: classifier ECE / Brier / NLL, detector D-ECE);
* slices: the primary metric on each user slice of the eval split (``slice/<name>``),
  ``worst_slice`` and ``slice_gap`` (best − worst);
* robustness (opt-in): the primary metric on each corrupted copy of the eval split
  (``robust/<corruption>/<severity>``) and ``robustness``, the mean over them of corrupted ÷
  clean quality;
* an operating point (classification): the score threshold reaching the target precision (or
  recall) on the *calibration* split, then ``fp_rate`` and ``fn_rate`` on the eval split at that
  threshold. The eval labels never choose the threshold.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from farm.errors import SpecError
from workloads.tasks.base import Calibrated, OperatingPoint

if TYPE_CHECKING:
    from workloads.data import Split, WorkloadData
    from workloads.kpis.spec import EvaluationSpec
    from workloads.tasks.base import Task

Predict = Callable[["Split"], Any]


def compute(
    task: Task,
    predictions: Any,
    split: Split,
    data: WorkloadData,
    spec: EvaluationSpec | None,
    reference: Any,
    clean: dict[str, float],
    predict: Predict,
) -> dict[str, float]:
    """Every KPI of a candidate whose eval-split ``predictions`` scored ``clean``; ``predict``
    runs the candidate on another split (corrupted copies, the calibration split)."""
    out: dict[str, float] = {}
    primary = task.primary_metric(data.has_labels)
    if data.has_labels and isinstance(task, Calibrated):
        out.update(task.calibration(predictions, split, data))
    if data.slices:
        out.update(slice_quality(task, predictions, split, data, primary))
    if spec is not None and spec.robustness and data.corrupted:
        out.update(robustness(task, data, reference, clean[primary], primary, predict))
    if spec is not None and spec.operating_point:
        if not isinstance(task, OperatingPoint):
            raise ValueError(f"an operating point is not defined for {task.name}")
        calib_scores = task.positive_scores(predict(data.calib), data.positive_classes)
        eval_scores = task.positive_scores(predictions, data.positive_classes)
        out.update(
            operating_point(
                calib_scores,
                positives(data.calib, data.positive_classes),
                eval_scores,
                positives(split, data.positive_classes),
                spec.target_precision,
                spec.target_recall,
            )
        )
    return out


def evidence_arrays(
    task: Task, predictions: Any, split: Split, data: WorkloadData, metrics: dict[str, float]
) -> dict[str, np.ndarray]:
    """What the KPIs add to a trial's per-image evidence (:mod:`workloads.evidence`): the images
    of each user slice, so that a slice's metric is resampled as the primary metric is, and the
    operating point's terms at the trial's own threshold (``metrics["threshold"]``): 1/0 per
    negative image for ``fp_rate``, per positive image for ``fn_rate``."""
    from workloads.evidence import KPI_TERMS, SLICES

    out: dict[str, np.ndarray] = {}
    for name, index in sorted((data.slices or {}).items()):
        if len(index):
            mask = np.zeros(len(split), dtype=bool)
            mask[index] = True
            out[SLICES + name] = mask
    if "threshold" in metrics and data.positive_classes and isinstance(task, OperatingPoint):
        scores = task.positive_scores(predictions, data.positive_classes)
        flagged = (scores >= metrics["threshold"]).astype(np.float64)
        positive = positives(split, data.positive_classes)
        out[KPI_TERMS + "fp_rate"] = np.where(positive, np.nan, flagged)
        out[KPI_TERMS + "fn_rate"] = np.where(positive, 1.0 - flagged, np.nan)
    return out


def slice_quality(
    task: Task, predictions: Any, split: Split, data: WorkloadData, primary: str
) -> dict[str, float]:
    out = {}
    for name, index in sorted((data.slices or {}).items()):
        if len(index) == 0:
            continue
        sub = task.select(predictions, index)
        value = task.quality(sub, split.subset(index), None, data).get(primary)
        if value is not None:
            out[f"slice/{name}"] = float(value)
    if out:
        from workloads.tasks import higher_is_better

        values = list(out.values())
        # the worst slice of an error rate (CER) is the one with the highest rate
        out["worst_slice"] = min(values) if higher_is_better(primary) else max(values)
        out["slice_gap"] = max(values) - min(values)
    return out


def robustness(
    task: Task,
    data: WorkloadData,
    reference: Any,
    clean: float,
    primary: str,
    predict: Predict,
) -> dict[str, float]:
    """Per corruption and severity the primary metric, and ``robustness``: the mean share of
    the clean quality kept (corrupted / clean; for an error rate such as CER, the share of the
    clean accuracy 1 - rate kept: (1 - corrupted) / (1 - clean))."""
    from workloads.tasks import higher_is_better

    out: dict[str, float] = {}
    ratios = []
    higher = higher_is_better(primary)
    for (name, severity), split in sorted((data.corrupted or {}).items()):
        value = float(task.quality(predict(split), split, reference, data)[primary])
        out[f"robust/{name}/{severity}"] = value
        if higher:
            ratios.append(value / clean if clean > 0 else 0.0)
        else:
            ratios.append((1.0 - value) / (1.0 - clean) if clean < 1 else 0.0)
    if ratios:
        out["robustness"] = float(np.mean(ratios))
    return out


def positives(split: Split, classes: tuple[int, ...]) -> np.ndarray:
    """Whether each sample's label is one of the positive ``classes``."""
    if split.y is None:
        raise ValueError("an operating point needs labelled calibration and eval splits")
    return np.isin(split.y, np.asarray(classes, dtype=np.int64))


def choose_threshold(
    scores: np.ndarray,
    positive: np.ndarray,
    target_precision: float | None,
    target_recall: float | None,
) -> float:
    """The score threshold (predict positive when ``score >= threshold``) that reaches the
    target on these samples: the lowest threshold whose precision is at least the target (the
    most recall at that precision), or the highest whose recall is at least the target (the most
    precision at that recall). When no threshold reaches a precision target, the highest score
    (the most precise setting there is)."""
    order = np.argsort(-scores, kind="stable")
    s, p = scores[order], positive[order].astype(np.int64)
    tp = np.cumsum(p)
    fp = np.cumsum(1 - p)
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]  # last index of each score value
    thresholds = s[last]
    precision = tp[last] / (tp[last] + fp[last])
    recall = tp[last] / max(int(p.sum()), 1)
    if target_precision is not None:
        ok = np.flatnonzero(precision >= target_precision)
        return float(thresholds[ok[-1]] if ok.size else thresholds[0])
    assert target_recall is not None
    ok = np.flatnonzero(recall >= target_recall)
    return float(thresholds[ok[0]] if ok.size else thresholds[-1])


def operating_point(
    calib_scores: np.ndarray,
    calib_positive: np.ndarray,
    eval_scores: np.ndarray,
    eval_positive: np.ndarray,
    target_precision: float | None,
    target_recall: float | None,
) -> dict[str, float]:
    """The threshold chosen on the calibration split, and the eval split's rates at it."""
    threshold = choose_threshold(calib_scores, calib_positive, target_precision, target_recall)
    predicted = eval_scores >= threshold
    tp = int((predicted & eval_positive).sum())
    fp = int((predicted & ~eval_positive).sum())
    fn = int((~predicted & eval_positive).sum())
    tn = int((~predicted & ~eval_positive).sum())
    return {
        "threshold": threshold,
        "fp_rate": fp / (fp + tn) if fp + tn else 0.0,
        "fn_rate": fn / (fn + tp) if fn + tp else 0.0,
        "precision_at_threshold": tp / (tp + fp) if tp + fp else 1.0,
        "recall_at_threshold": tp / (tp + fn) if tp + fn else 1.0,
    }


# -- the data KPIs need, prepared once when a job starts -----------------------------------


def with_kpi_data(
    data: WorkloadData,
    spec: EvaluationSpec,
    slices_file: Path | None,
    seed: int = 0,
    *,
    source: str | Path = "<memory>",
) -> WorkloadData:
    """``data`` with what the job's KPIs need: user slices (from ``slices_file``), corrupted
    copies of the eval split (robustness), the positive class indices (operating point).
    ``source``: the job file, named by every error."""
    from dataclasses import replace

    slices = read_slices(slices_file, data, source) if slices_file is not None else None
    corrupted = None
    if spec.robustness:
        from workloads.kpis.corruptions import corrupt_split

        if data.normalization is None:
            raise SpecError(
                source,
                "evaluation.robustness",
                "a workload that says how its images are normalised (else they cannot be "
                "corrupted)",
                True,
            )
        mean, std = data.normalization
        corrupted = {
            (name, severity): corrupt_split(
                data.eval, name, severity, mean, std, seed, channels_last=data.layout == "NHWC"
            )
            for name in spec.corruptions
            for severity in spec.severities
        }
    positive = resolve_classes(spec.positive_classes, data, source) if spec.operating_point else ()
    if positive and (data.eval.y is None or data.calib.y is None):
        raise SpecError(
            source,
            "evaluation.positive_classes",
            "labelled calibration and eval images (an operating point's threshold is chosen on "
            "the calibration split)",
            list(spec.positive_classes),
        )
    return replace(data, slices=slices, corrupted=corrupted, positive_classes=positive)


def resolve_classes(
    classes: tuple[Any, ...], data: WorkloadData, source: str | Path = "<memory>"
) -> tuple[int, ...]:
    """Class names or indices → indices; an unknown class is an error naming the field."""
    names = list(data.class_names) if isinstance(data.class_names, tuple | list) else []
    out = []
    for c in classes:
        if isinstance(c, int) and 0 <= c < data.num_classes:
            out.append(c)
        elif isinstance(c, str) and c in names:
            out.append(names.index(c))
        else:
            known = f"class indices 0..{data.num_classes - 1}" + (
                f" or names {names}" if names else ""
            )
            raise SpecError(
                source, "evaluation.positive_classes", f"classes of this workload ({known})", c
            )
    return tuple(dict.fromkeys(out))


def read_slices(
    path: Path, data: WorkloadData, source: str | Path = "<memory>"
) -> dict[str, np.ndarray]:
    """A slices CSV (columns ``file,slice``; a file may be in several slices) → slice name ->
    indices into the eval split. Files the workload set aside for calibration are skipped; a
    file that is in neither split is an error naming the CSV and the first such files."""
    import csv

    path = Path(path)
    where = f"{path} (`workload.data.slices` in {source})"
    files = {info.get("file"): i for i, info in enumerate(data.eval.info or ())}
    calib = {info.get("file") for info in (data.calib.info or ())}
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SpecError(where, "<file>", f"a readable CSV ({exc})") from None
    if not rows or not {"file", "slice"} <= set(rows[0]):
        raise SpecError(
            where, "<header>", "a CSV with columns `file,slice`", list(rows[0]) if rows else None
        )
    slices: dict[str, list[int]] = {}
    unknown = []
    for n, row in enumerate(rows, start=2):
        name, file = (row.get("slice") or "").strip(), (row.get("file") or "").strip()
        if not name or not file:
            raise SpecError(where, f"line {n}", "a file and a slice name", row)
        if file in files:
            slices.setdefault(name, []).append(files[file])
        elif file not in calib:
            unknown.append(file)
    if unknown:
        raise SpecError(
            where,
            "file",
            f"images of the eval split (eval files look like {list(files)[:2]}); "
            f"{len(unknown)} file(s) are not, e.g.",
            unknown[:3],
        )
    if not slices:
        raise SpecError(where, "file", "at least one row naming an image of the eval split")
    return {k: np.asarray(sorted(set(v)), dtype=np.int64) for k, v in slices.items()}
