"""`[workload]` → a workload: every mistake is a SpecError naming the job file, the field path
and what was expected, raised when the job is loaded; recipes (which key the artifact cache)
are what they were."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest

from farm._io import hash_json
from farm.errors import SpecError
from workloads import DigitsWorkload, load_workload
from workloads.demos.shapes import ShapesWorkload


@pytest.mark.parametrize(
    ("section", "field", "expected"),
    [
        ({}, "workload", "exactly one of `name`"),
        ({"name": "imagenet"}, "workload.name", "one of the embedded workloads"),
        ({"name": "digits", "weights": "w.pt"}, "workload.weights", "one of the known fields"),
        ({"name": "digits", "model": "resnet18"}, "workload", "exactly one of"),
        ({"name": "digits", "data": {"eval": "x"}}, "workload.data.eval", "only `slices`"),
        ({"model": "vgg11"}, "workload.model", "one of ['resnet18'"),
        ({"model": "resnet18", "weights": "missing.pt"}, "workload.weights", "an existing file"),
        ({"model": "resnet18", "num_classes": "ten"}, "workload.num_classes", "an integer"),
        ({"model": "resnet18", "task": "detection"}, "workload.task", "is a classifier"),
        ({"model": "resnet18", "nms_iou": 0.5}, "workload.nms_iou", "is a classifier"),
        ({"onnx": "missing.onnx"}, "workload.onnx", "an existing file"),
        ({"onnx": 3}, "workload.onnx", "an existing file (a string)"),
        ({"model": "resnet18", "data": {"eval": "nope"}}, "workload.data.eval", "directory"),
        ({"model": "resnet18", "data": {"crops": 3}}, "workload.data.crops", "known fields"),
        ({"model": "resnet18", "data": {"mean": [0.5]}}, "workload.data.mean", "3 numbers"),
        ({"model": "resnet18", "data": {"crop": 300}}, "workload.data.crop", "at most `resize`"),
        ({"model": "resnet18", "data": "val"}, "workload.data", "a table"),
        (
            {"name": "digits", "data": {"slices": "none.csv"}},
            "workload.data.slices",
            "an existing file",
        ),
    ],
)
def test_a_bad_section_names_the_job_file_the_field_and_what_was_expected(
    section: dict, field: str, expected: str, tmp_path: Path
) -> None:
    with pytest.raises(SpecError) as err:
        load_workload(section, tmp_path, source="job.toml")
    assert err.value.path == "job.toml" and err.value.field == field
    assert expected in err.value.expected


def test_a_section_that_is_not_a_table_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="expected a table") as err:
        load_workload("digits", tmp_path, source="job.toml")
    assert err.value.field == "workload"


def test_an_embedded_workload_takes_a_slices_file(tmp_path: Path) -> None:
    (tmp_path / "slices.csv").write_text("file,slice\ndigits/0001,a\n")
    wl = load_workload({"name": "digits", "data": {"slices": "slices.csv"}}, tmp_path)
    assert isinstance(wl, DigitsWorkload) and wl.slices_file == (tmp_path / "slices.csv").resolve()


def test_the_shapes_demos_write_their_data_under_the_results_folder(tmp_path: Path) -> None:
    wl = load_workload({"name": "shapes-detect"}, tmp_path, tmp_path / "results")
    assert isinstance(wl, ShapesWorkload) and wl.results_dir == tmp_path / "results"
    assert wl.task.name == "detection" and wl.task.params() == {
        "score_threshold": 0.001,
        "nms_iou": 0.7,
    }
    seg = load_workload({"name": "shapes-segment"}, tmp_path)
    assert seg.task.name == "segmentation" and seg.traits().fixed_shape_outputs


def test_the_digits_recipe_is_what_it_was() -> None:
    """Recipe hashes key the cached models and artifacts: a refactoring must not move them."""
    recipe = {
        "workload": "digits",
        "builder": "digits_cnn",
        "builder_kwargs": {"num_classes": 10, "width": 16},
        "image_size": 32,
        "normalise": {"mean": 0.306, "std": 0.324},
        "split": {"seed": 0, "fractions": [0.6, 0.1, 0.3]},
        "train": {
            "epochs": 8,
            "batch_size": 64,
            "lr": 5e-3,
            "weight_decay": 1e-4,
            "seed": 0,
            "optimizer": "AdamW+OneCycle",
        },
        "torch": version("torch"),
    }
    assert DigitsWorkload().recipe() == recipe
    assert DigitsWorkload().recipe_hash == hash_json(recipe)


def test_the_shapes_detection_recipe_is_what_it_was(tmp_path: Path) -> None:
    recipe = ShapesWorkload("shapes-detect", tmp_path).recipe()
    assert {k: v for k, v in recipe.items() if k not in ("torch", "train")} == {
        "workload": "shapes-detect",
        "generator": 1,
        "data": {"seed": 0, "image_size": 64, "n_train": 3000, "n_calib": 128, "n_eval": 200},
        "builder": "shapes_detector",
        "builder_kwargs": {"num_classes": 3, "width": 16},
    }
    assert recipe["train"] == {
        "seed": 0,
        "epochs": 8,
        "batch_size": 32,
        "lr": 4e-3,
        "weight_decay": 5e-4,
        "radius": 6.0,
        "threads": None,
    }
