"""Workload jobs end to end through the engine: pruning jobs, user models and data, user ONNX
files, the artifact cache on reruns, and bad input refused with exit code 2 before the store is
touched, the message naming the job file and the field.

Every job here is real: real Ray, real builds (torch-pruning + fine-tune, export, ORT / NNCF
quantization), real runtimes and a real DuckDB store.
"""

from __future__ import annotations

import json
import pickle
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest
from support.jobs import run_refused

from farm.engine.runner import JobRunner
from farm.spec.job import parse_job
from farm.store.db import Store
from farm.store.records import TrialRecord

#: A short measurement contract: these tests check what is stored, not how fast it runs.
FAST_MEASUREMENT = {"min_duration_s": 0.1, "max_duration_s": 0.4, "min_samples": 16}


def run_job(raw: dict[str, Any], db: Path) -> tuple[Store, str]:
    """Run a job given as a parsed TOML table; return its store and job id."""
    store = Store(db)
    runner = JobRunner(parse_job(raw, source=f"{raw['name']}.toml"), store)
    assert runner.run() == "completed"
    return store, runner.job_id


def metric_names(db: Path, job_id: str, target: str, trial: int) -> set[str]:
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(
            "SELECT name FROM metrics WHERE job_id = ? AND target = ? AND trial_number = ?",
            [job_id, target, trial],
        ).fetchall()
    return {r[0] for r in rows}


# -- 1. digits + structured pruning ----------------------------------------------------------

PRUNE_RATIOS = [0.0, 0.25, 0.5, 0.7]


def prune_job() -> dict[str, Any]:
    return {
        "name": "digits-prune-test",
        "targets": ["cpu-onnxruntime", "cpu-openvino"],
        "workload": {"name": "digits"},
        "search": {
            # 4 ratios x {fp32, int8} = 8 points per target; 6 trials leave the sampler room.
            "trials_per_target": 6,
            "seed": 0,
            "precision": ["fp32", "int8"],
            "batch_size": [1],
            "threads": [1],
            "transforms": ["prune"],
            "knobs": {
                "prune.ratio": PRUNE_RATIOS,
                "prune.importance": ["l2"],
                "prune.finetune_steps": [80],
                "quantize_ort.calibration_method": ["MinMax"],
                "quantize_ort.activation_type": ["U8"],
                "quantize_ort.keep_float_layers": [0],
                "quantize_nncf.preset": ["performance"],
                "quantize_nncf.fast_bias_correction": [True],
                "quantize_nncf.keep_float_layers": [0],
            },
        },
        "constraints": {"max_accuracy_drop": 0.1},
        "measurement": FAST_MEASUREMENT,
    }


@pytest.mark.slow
def test_digits_prune_job_searches_ratios_with_fine_tuned_accuracy(results_dir: Path) -> None:
    store, job = run_job(prune_job(), results_dir / "workload-jobs-prune.duckdb")
    trials = store.trials(job)
    done = [t for t in trials if t.status == "completed"]
    assert len(done) == len(trials), [t.error for t in trials if t.error]

    def ratio(t: TrialRecord) -> float:
        return float(t.params["prune.ratio"])

    feasible = [t for t in done if t.feasible]
    assert len({ratio(t) for t in feasible}) >= 3, Counter(ratio(t) for t in feasible)
    for t in done:
        if ratio(t) > 0:
            # 70 % channel pruning without fine-tuning leaves digits at ~0.10 accuracy
            assert t.quality >= 0.9, (t.target, t.params, t.quality)
            assert t.quality_metric == "accuracy"
    for target in ("cpu-onnxruntime", "cpu-openvino"):
        int8 = [t for t in done if t.target == target and t.precision == "int8"]
        assert int8, f"no int8 candidate on {target}"
        assert all(t.precision_actual.startswith("int8") for t in int8)
        assert any(ratio(t) > 0 for t in int8), "no pruned + quantized candidate"
    front = [t for t in done if t.on_front]
    assert front, "the job has a front"


def test_a_study_whose_space_is_exhausted_stops_cleanly(results_dir: Path) -> None:
    # Three importance criteria at ratio 0 are one candidate (pruning is skipped): the space
    # has 3 points but 1 distinct configuration, so the second ask can only find duplicates.
    raw = prune_job()
    raw["name"] = "digits-exhausted-test"
    raw["targets"] = ["cpu-onnxruntime"]
    raw["search"].update(trials_per_target=3, precision=["fp32"], batch_size=[1])
    raw["search"]["knobs"] = {"prune.ratio": [0.0], "prune.importance": ["l2", "l1", "bn_scale"]}
    store, job = run_job(raw, results_dir / "workload-jobs-exhausted.duckdb")
    assert [t.status for t in store.trials(job)] == ["completed"]


# -- 2. ResNet-18 from a user weights file + ImageFolder ---------------------------------------

CLASSES = ("cat", "dog", "fox")


def make_image_folder(root: Path, per_class: int, seed: int, size: int = 40) -> Path:
    """A tiny ImageFolder of coloured noise PNGs, one sub-folder per class."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            img[..., c] = np.clip(img[..., c].astype(int) + 80, 0, 255)  # a class-coloured cast
            Image.fromarray(img).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def user_resnet(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import torch
    import torchvision

    root = tmp_path_factory.mktemp("user-resnet")
    torch.manual_seed(0)
    weights = root / "resnet18-3cls.pt"
    torch.save(torchvision.models.resnet18(num_classes=len(CLASSES)).state_dict(), weights)
    return {
        "root": root,
        "weights": weights,
        "eval": make_image_folder(root / "val", per_class=4, seed=1),
        "calib": make_image_folder(root / "calib", per_class=2, seed=2),
    }


def resnet_job(paths: dict[str, Path], **workload: Any) -> dict[str, Any]:
    section: dict[str, Any] = {
        "model": "resnet18",
        "weights": str(paths["weights"]),
        "data": {
            "eval": str(paths["eval"]),
            "calib": str(paths["calib"]),
            "resize": 32,
            "crop": 32,
        },
    }
    section.update(workload)
    return {
        "name": "resnet18-imagefolder-test",
        "targets": ["cpu-onnxruntime"],
        "workload": section,
        "search": {
            "trials_per_target": 2,
            "seed": 0,
            "precision": ["fp32", "int8"],
            "batch_size": [1, 4],
            "threads": [1],
            "knobs": {"quantize_ort.keep_float_layers": [0]},
        },
        "measurement": FAST_MEASUREMENT,
    }


@pytest.mark.slow
def test_resnet18_job_from_user_weights_and_image_folder(
    user_resnet: dict[str, Path], tmp_path: Path
) -> None:
    db = tmp_path / "farm.duckdb"
    store, job = run_job(resnet_job(user_resnet), db)
    trials = store.trials(job)
    assert len(trials) == 2
    for t in trials:
        assert t.status == "completed", t.error
        assert t.quality_metric == "accuracy" and 0.0 <= t.quality <= 1.0
        assert t.latency_p50_ms > 0
        names = metric_names(db, job, t.target, t.trial_number)
        assert {"accuracy", "top1_agreement", "max_abs_logit_diff", "mean_abs_logit_diff"} <= names
    baseline = next(t for t in trials if t.is_baseline)
    with duckdb.connect(str(db), read_only=True) as con:
        agreement, max_diff = con.execute(
            "SELECT max(value) FILTER (name = 'top1_agreement'), "
            "max(value) FILTER (name = 'max_abs_logit_diff') FROM metrics "
            "WHERE job_id = ? AND trial_number = ?",
            [job, baseline.trial_number],
        ).fetchone()
    # fp32 ONNX Runtime against the fp32 torch reference: the same model
    assert agreement == 1.0 and max_diff < 1e-3


# -- 3. a user ONNX file, synthetic inputs -----------------------------------------------------


@pytest.fixture(scope="module")
def user_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 5),
    ).eval()
    path = tmp_path_factory.mktemp("user-onnx") / "tiny.onnx"
    torch.onnx.export(
        model,
        (torch.zeros(1, 3, 24, 24),),
        str(path),
        input_names=["pixels"],
        output_names=["scores"],
        dynamic_axes={"pixels": {0: "n"}, "scores": {0: "n"}},
        dynamo=False,
    )
    return path


def onnx_job(path: Path, targets: list[str]) -> dict[str, Any]:
    return {
        "name": "user-onnx-test",
        "targets": targets,
        "workload": {"onnx": str(path)},
        "search": {
            "trials_per_target": 2,
            "seed": 0,
            "precision": ["fp32", "int8"],
            "batch_size": [1, 8],
            "threads": [1],
        },
        "measurement": FAST_MEASUREMENT,
    }


def test_job_on_a_user_onnx_file_with_synthetic_inputs(user_onnx: Path, tmp_path: Path) -> None:
    db = tmp_path / "farm.duckdb"
    store, job = run_job(onnx_job(user_onnx, ["cpu-onnxruntime", "cpu-openvino"]), db)
    trials = store.trials(job)
    assert {t.target for t in trials} == {"cpu-onnxruntime", "cpu-openvino"}
    for t in trials:
        assert t.status == "completed", t.error
        assert t.quality_metric == "top1_agreement"  # no labels: fidelity is the quality
        assert 0.0 <= t.quality <= 1.0
        names = metric_names(db, job, t.target, t.trial_number)
        assert "top1_agreement" in names and "accuracy" not in names
        assert not any(k.startswith("prune.") for k in t.params)
        if t.is_baseline:
            assert t.quality == 1.0


def test_cpu_torch_on_a_user_onnx_file_is_refused(
    user_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = tmp_path / "onnx-torch.toml"
    job.write_text(
        f'name = "onnx-on-torch"\ntargets = ["cpu-torch", "cpu-onnxruntime"]\n'
        f"[workload]\nonnx = {json.dumps(str(user_onnx))}\n"
    )
    err = run_refused(job, capsys)
    assert "`targets`" in err and "cpu-torch" in err and str(job) in err


# -- 4. a rerun is served by the artifact cache ------------------------------------------------


def cache_job() -> dict[str, Any]:
    return {
        "name": "digits-cache-test",
        "targets": ["cpu-onnxruntime", "cpu-openvino"],
        "workload": {"name": "digits"},
        "search": {
            # fp32/int8 x batch 1/8 = 4 points per target, all of them run
            "trials_per_target": 4,
            "seed": 3,
            "precision": ["fp32", "int8"],
            "batch_size": [1, 8],
            "threads": [1],
            "knobs": {
                "quantize_ort.calibration_method": ["MinMax"],
                "quantize_ort.activation_type": ["S8"],
                "quantize_ort.keep_float_layers": [0],
                "quantize_nncf.preset": ["mixed"],
                "quantize_nncf.fast_bias_correction": [True],
                "quantize_nncf.keep_float_layers": [0],
            },
        },
        "measurement": FAST_MEASUREMENT,
    }


@pytest.mark.slow
def test_rerun_of_a_finished_job_rebuilds_nothing(results_dir: Path) -> None:
    # Own results folder (own artifact cache); the digits model comes from the session's.
    root = results_dir / "workload-jobs-cache"
    db = root / "farm.duckdb"
    first_store, first = run_job(cache_job(), db)
    trials1 = first_store.trials(first)
    assert all(t.status == "completed" for t in trials1), [t.error for t in trials1]
    assert any(not t.cache_hit and t.build_s > 0 for t in trials1), "nothing was built"
    for target in ("cpu-onnxruntime", "cpu-openvino"):
        mine = [t for t in trials1 if t.target == target]
        assert len(mine) == 4
        # Trials that differ only in batch size share an artifact: built once, then a hit.
        misses = Counter(t.artifact_hash for t in mine if not t.cache_hit)
        assert all(n == 1 for n in misses.values()), misses
        assert len({t.artifact_hash for t in mine}) == 2  # fp32 and int8
        for t in mine:
            assert (t.build_s == 0) == t.cache_hit, t

    second_store, second = run_job(cache_job(), db)
    trials2 = second_store.trials(second)
    assert len(trials2) == len(trials1)
    assert all(t.status == "completed" for t in trials2)
    assert all(t.cache_hit for t in trials2), [t.params for t in trials2 if not t.cache_hit]
    assert all(t.build_s == 0 for t in trials2)
    assert "(100% hits; 0 built)" in second_store.resolve_job(second).message
    assert {t.artifact_hash for t in trials2} <= {t.artifact_hash for t in trials1}


# -- 5. bad input: exit code 2, a message naming the file and field, nothing stored ------------


def write_job(path: Path, workload_toml: str) -> Path:
    path.write_text(
        'name = "bad-input"\ntargets = ["cpu-onnxruntime"]\n'
        f"[workload]\n{workload_toml}\n[search]\ntrials_per_target = 1\n"
    )
    return path


class NotAStateDict:
    """A custom class: unpickling it would run arbitrary code paths."""

    def __init__(self) -> None:
        self.payload = [1, 2, 3]


def _bad_weights_mismatch(root: Path, paths: dict[str, Path]) -> tuple[str, list[str]]:
    import torch
    import torchvision

    bad = root / "mobilenet.pt"
    torch.save(torchvision.models.mobilenet_v3_small(num_classes=3).state_dict(), bad)
    return _model_toml(bad, paths["eval"]), ["`workload.weights`", str(bad), "resnet18"]


def _bad_full_module(root: Path, paths: dict[str, Path]) -> tuple[str, list[str]]:
    import torch
    import torchvision

    bad = root / "full-module.pt"
    torch.save(torchvision.models.resnet18(num_classes=3), bad)
    return _model_toml(bad, paths["eval"]), ["`workload.weights`", str(bad), "state_dict"]


def _bad_custom_pickle(root: Path, paths: dict[str, Path]) -> tuple[str, list[str]]:
    bad = root / "custom.pkl"
    bad.write_bytes(pickle.dumps(NotAStateDict()))
    return _model_toml(bad, paths["eval"]), ["`workload.weights`", str(bad), "state_dict"]


def _bad_empty_folder(root: Path, paths: dict[str, Path]) -> tuple[str, list[str]]:
    empty = root / "empty"
    (empty / "cat").mkdir(parents=True)
    (empty / "cat" / "notes.txt").write_text("no images here")
    return _model_toml(paths["weights"], empty), ["`workload.data.eval`", str(empty), "no images"]


def _bad_class_count(root: Path, paths: dict[str, Path]) -> tuple[str, list[str]]:
    two = root / "two-classes"
    for name in CLASSES[:2]:
        (two / name).mkdir(parents=True)
        src = paths["eval"] / name
        for png in sorted(src.iterdir()):
            (two / name / png.name).write_bytes(png.read_bytes())
    return _model_toml(paths["weights"], two), [
        "`workload.data.eval`",
        "2 classes",
        "one class folder per model output (3)",
    ]


def _model_toml(weights: Path, eval_dir: Path) -> str:
    return (
        f'model = "resnet18"\nweights = {json.dumps(str(weights))}\n'
        f"[workload.data]\neval = {json.dumps(str(eval_dir))}\nresize = 32\ncrop = 32\n"
    )


@pytest.mark.parametrize(
    "make_bad",
    [
        _bad_weights_mismatch,
        _bad_full_module,
        _bad_custom_pickle,
        _bad_empty_folder,
        _bad_class_count,
    ],
    ids=["weights-mismatch", "full-module-pickle", "custom-pickle", "empty-folder", "class-count"],
)
def test_bad_user_input_exits_2_and_writes_nothing(
    make_bad: Any,
    user_resnet: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from farm.cli import main

    workload, expected = make_bad(tmp_path, user_resnet)
    job = write_job(tmp_path / "job.toml", workload)
    db = tmp_path / "farm.duckdb"
    assert main(["run", str(job), "--db", str(db)]) == 2
    err = capsys.readouterr().err
    for text in [str(job), *expected]:
        assert text in err, (text, err)
    assert "Traceback" not in err
    assert not db.exists() or not Store(db).jobs()
