"""Release KPIs: each metric against an independent implementation, and the rules around them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from farm.errors import SpecError
from workloads import Split, WorkloadData
from workloads.kpis.calibration import classification_calibration, softmax
from workloads.kpis.compute import choose_threshold, operating_point, read_slices, slice_quality
from workloads.kpis.spec import parse_evaluation
from workloads.tasks import Classification


def _logits(seed: int, n: int = 600, k: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), y] += rng.normal(1.5, 1.5, n)
    return logits.astype(np.float32), y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_calibration_matches_netcal_torchmetrics_and_sklearn(seed: int) -> None:
    import torch
    from netcal.metrics import ECE
    from sklearn.metrics import brier_score_loss, log_loss
    from torchmetrics.functional.classification import multiclass_calibration_error

    logits, y = _logits(seed)
    probs = softmax(logits)
    got = classification_calibration(logits, y)
    tm = multiclass_calibration_error(
        torch.from_numpy(probs).float(), torch.from_numpy(y), num_classes=6, n_bins=15, norm="l1"
    )
    assert got["ece"] == pytest.approx(float(tm), abs=1e-6)
    assert got["ece"] == pytest.approx(ECE(bins=15).measure(probs, y), abs=1e-9)
    adaptive = ECE(bins=15, equal_intervals=False).measure(probs, y)
    assert got["ece_adaptive"] == pytest.approx(adaptive, abs=1e-9)
    assert got["brier"] == pytest.approx(
        brier_score_loss(y, probs, labels=range(6), scale_by_half=False), abs=1e-9
    )
    assert got["nll"] == pytest.approx(log_loss(y, probs, labels=range(6)), abs=1e-9)


def test_thresholds_and_rates_match_sklearn() -> None:
    from sklearn.metrics import confusion_matrix, precision_recall_curve

    rng = np.random.default_rng(0)
    positive = rng.random(400) < 0.3
    scores = np.clip(positive * 0.35 + rng.random(400) * 0.65, 0, 1)
    t = choose_threshold(scores, positive, 0.9, None)
    precision, recall, thresholds = precision_recall_curve(positive, scores)
    ok = precision[:-1] >= 0.9
    assert t == pytest.approx(thresholds[ok].min())  # the most recall at that precision
    t_rec = choose_threshold(scores, positive, None, 0.8)
    assert t_rec == pytest.approx(thresholds[recall[:-1] >= 0.8].max())
    eval_pos = rng.random(300) < 0.3
    eval_scores = np.clip(eval_pos * 0.35 + rng.random(300) * 0.65, 0, 1)
    got = operating_point(scores, positive, eval_scores, eval_pos, 0.9, None)
    tn, fp, fn, tp = confusion_matrix(eval_pos, eval_scores >= got["threshold"]).ravel()
    assert got["fp_rate"] == pytest.approx(fp / (fp + tn))
    assert got["fn_rate"] == pytest.approx(fn / (fn + tp))


def test_the_threshold_never_sees_eval_labels() -> None:
    rng = np.random.default_rng(1)
    calib_pos = rng.random(300) < 0.4
    calib_scores = np.clip(calib_pos * 0.3 + rng.random(300) * 0.7, 0, 1)
    eval_scores = rng.random(200)
    a = operating_point(calib_scores, calib_pos, eval_scores, rng.random(200) < 0.4, 0.9, None)
    b = operating_point(calib_scores, calib_pos, eval_scores, rng.random(200) < 0.9, 0.9, None)
    assert a["threshold"] == b["threshold"]
    assert a["fn_rate"] != b["fn_rate"]  # the eval labels do change the rates


def test_per_slice_accuracy_matches_a_pandas_group_by(tmp_path: Path) -> None:
    import pandas as pd

    logits, y = _logits(3, n=90)
    info = tuple({"file": f"img{i:03d}.png"} for i in range(90))
    split = Split(np.zeros((90, 1, 1, 1), np.float32), y, None, info)
    data = WorkloadData(None, split, split, 6, (1, 1, 1), True)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"file": [i["file"] for i in info], "slice": rng.choice(["day", "night", "fog"], 90)}
    )
    frame.to_csv(tmp_path / "slices.csv", index=False)
    data = WorkloadData(
        None, split, split, 6, (1, 1, 1), True, slices=read_slices(tmp_path / "slices.csv", data)
    )
    got = slice_quality(Classification(), logits, split, data, "accuracy")
    frame["hit"] = logits.argmax(axis=1) == y
    want = frame.groupby("slice")["hit"].mean()
    for name, value in want.items():
        assert got[f"slice/{name}"] == pytest.approx(value)
    assert got["worst_slice"] == pytest.approx(want.min())
    assert got["slice_gap"] == pytest.approx(want.max() - want.min())


def test_the_evidence_keeps_each_kpi_that_is_a_mean_term_by_term(tmp_path: Path) -> None:
    """Brier and NLL per image (the classifier's evidence), slice masks and the operating
    point's 1/0 rates (the KPI layer): their means are the KPIs the trial records."""
    from workloads.evidence import kpi_terms, slice_masks, with_arrays
    from workloads.kpis.compute import evidence_arrays

    logits, y = _logits(4, n=120)
    info = tuple({"file": f"img{i:03d}.png"} for i in range(120))
    split = Split(np.zeros((120, 1, 1, 1), np.float32), y, None, info)
    (tmp_path / "s.csv").write_text(
        "file,slice\n" + "".join(f"img{i:03d}.png,{'a' if i % 3 else 'b'}\n" for i in range(120))
    )
    plain = WorkloadData(split, split, split, 6, (1, 1, 1), True, positive_classes=(1, 4))
    data = WorkloadData(
        split,
        split,
        split,
        6,
        (1, 1, 1),
        True,
        slices=read_slices(tmp_path / "s.csv", plain),
        positive_classes=(1, 4),
    )
    task = Classification()
    recorded = {
        **classification_calibration(logits, y),
        **slice_quality(task, logits, split, data, "accuracy"),
    }
    scores = task.positive_scores(logits, (1, 4))
    positive = np.isin(y, (1, 4))
    recorded.update(operating_point(scores, positive, scores, positive, 0.8, None))
    evidence = task.evidence(logits, split, None, data)
    evidence = with_arrays(evidence, evidence_arrays(task, logits, split, data, recorded))
    terms = kpi_terms(evidence)
    assert set(terms) == {"brier", "nll", "fp_rate", "fn_rate"}
    for name, values in terms.items():
        assert np.nanmean(values) == pytest.approx(recorded[name], abs=1e-6), name
    masks = slice_masks(evidence)
    assert set(masks) == {"slice/a", "slice/b"}
    for name, mask in masks.items():
        got = task.resampled_quality(evidence, mask[None, :].astype(float))[0]
        assert got == pytest.approx(recorded[name], abs=1e-12)


def test_a_slices_csv_naming_unknown_files_is_refused(tmp_path: Path) -> None:
    info = tuple({"file": f"img{i}.png"} for i in range(4))
    split = Split(np.zeros((4, 1, 1, 1), np.float32), np.zeros(4, np.int64), None, info)
    data = WorkloadData(None, split, split, 2, (1, 1, 1), True)
    (tmp_path / "s.csv").write_text("file,slice\nimg0.png,a\nnope.png,b\n")
    with pytest.raises(SpecError, match=r"`workload.data.slices` in job.toml.*'nope.png'") as err:
        read_slices(tmp_path / "s.csv", data, "job.toml")
    assert str(tmp_path / "s.csv") in err.value.path
    (tmp_path / "t.csv").write_text("name,group\nimg0.png,a\n")
    with pytest.raises(SpecError, match="columns `file,slice`"):
        read_slices(tmp_path / "t.csv", data)
    (tmp_path / "u.csv").write_text("file,slice\nimg0.png,a\nimg1.png,\n")
    with pytest.raises(SpecError, match="a file and a slice name") as err:
        read_slices(tmp_path / "u.csv", data)
    assert err.value.field == "line 3"


def test_an_unknown_positive_class_names_the_job_file_and_the_field() -> None:
    from workloads.kpis.compute import with_kpi_data

    split = Split(np.zeros((4, 1, 1, 1), np.float32), np.arange(4) % 2)
    data = WorkloadData(None, split, split, 2, (1, 1, 1), True, ("cat", "dog"))
    spec = parse_evaluation("job.toml", {"positive_classes": ["bird"], "target_recall": 0.9})
    with pytest.raises(SpecError, match="names \\['cat', 'dog'\\]") as err:
        with_kpi_data(data, spec, None, source="job.toml")
    assert err.value.field == "evaluation.positive_classes" and err.value.path == "job.toml"
    spec = parse_evaluation("job.toml", {"positive_classes": ["dog"], "target_recall": 0.9})
    assert with_kpi_data(data, spec, None).positive_classes == (1,)


@pytest.mark.parametrize(
    ("table", "field"),
    [
        ({"robustness": "yes"}, "evaluation.robustness"),
        ({"corruptions": ["snow"]}, "evaluation.corruptions"),
        ({"severities": [0, 6]}, "evaluation.severities"),
        ({"positive_classes": [1]}, "evaluation.target_precision"),
        ({"target_recall": 0.9}, "evaluation.positive_classes"),
        ({"positive_classes": [1], "target_precision": 1.5}, "evaluation.target_precision"),
        ({"thresholds": 3}, "evaluation.thresholds"),
    ],
)
def test_bad_evaluation_tables_name_the_field(table: dict, field: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_evaluation("job.toml", table)
    assert err.value.field == field and "job.toml" in str(err.value)


def test_corruptions_are_seeded_and_distinct_per_severity() -> None:
    from workloads.kpis.corruptions import corrupt_split

    x = np.random.default_rng(0).normal(0, 1, (3, 3, 32, 32)).astype(np.float32)
    split = Split(x, np.arange(3))
    norm = ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    for name in ("gaussian_noise", "motion_blur", "defocus_blur", "pixelate", "jpeg_compression"):
        a = corrupt_split(split, name, 1, *norm, seed=7).x
        b = corrupt_split(split, name, 5, *norm, seed=7).x
        np.testing.assert_array_equal(a, corrupt_split(split, name, 1, *norm, seed=7).x)
        assert not np.array_equal(a, b), name
        assert np.abs(b - x).mean() > np.abs(a - x).mean() * 0.9, name
