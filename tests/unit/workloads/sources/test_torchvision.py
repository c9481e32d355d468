"""Torchvision classifiers as model sources: the user's weights (checked against the
architecture, named in every error) or seeded random ones, on ImageFolder data or synthetic
inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.images import make_imagefolder

from farm.errors import SpecError
from workloads import Workload, load_workload

CROP = 32


def load(section: dict, base: Path) -> Workload:
    return load_workload(section, base, source="job.toml")


def data_table(**dirs: str) -> dict:
    return {**dirs, "resize": CROP, "crop": CROP}


def save_resnet18_weights(path: Path, num_classes: int) -> Path:
    import torch
    import torchvision

    torch.manual_seed(1)
    torch.save(torchvision.models.resnet18(num_classes=num_classes).state_dict(), path)
    return path


def test_resnet18_with_weights_and_imagefolder_builds_and_exports(tmp_path: Path) -> None:
    import optimizers

    make_imagefolder(tmp_path / "val", classes=3, per_class=4)
    make_imagefolder(tmp_path / "train", classes=3, per_class=3)
    save_resnet18_weights(tmp_path / "w.pt", 3)
    section = {
        "model": "resnet18",
        "weights": "w.pt",
        "data": data_table(eval="val", train="train"),
    }
    wl = load(section, tmp_path)
    data = wl.data()
    assert data.num_classes == 3 and data.has_labels
    assert data.input_shape == (3, CROP, CROP)
    assert len(data.eval) + len(data.calib) == 12 and len(data.calib) >= 1
    assert data.train is not None and len(data.train) == 9
    assert data.eval.x.dtype == np.float32 and data.eval.x.shape[1:] == (3, CROP, CROP)
    art = wl.source_artifact(tmp_path / "cache")
    assert art.meta["builder"] == "torchvision" and art.meta["num_classes"] == 3
    ctx = optimizers.BuildContext(data, seed=0)
    onnx_art = optimizers.apply("export_onnx", {}, art, ctx)
    q = optimizers.apply("quantize_ort", {}, onnx_art, ctx)
    assert q.meta["precision"] == "int8"
    assert wl.recipe_hash == load(section, tmp_path).recipe_hash


def test_torchvision_without_weights_is_seeded_and_synthetic(tmp_path: Path) -> None:
    wl = load({"model": "mobilenet_v3_small", "data": {"crop": CROP, "resize": CROP}}, tmp_path)
    data = wl.data()
    assert not data.has_labels and data.train is None
    assert data.eval.y is None and data.eval.x.shape == (64, 3, CROP, CROP)
    assert not np.array_equal(data.eval.x, data.calib.x)
    a = wl.source_artifact(tmp_path)
    b = load({"model": "mobilenet_v3_small"}, tmp_path).source_artifact(tmp_path)
    assert a.meta["num_classes"] == 1000
    assert a.files == b.files  # seeded random init


def test_weights_that_do_not_match_the_architecture(tmp_path: Path) -> None:
    import torch
    import torchvision

    torch.save(
        torchvision.models.mobilenet_v3_small(num_classes=10).state_dict(), tmp_path / "w.pt"
    )
    wl = load({"model": "resnet18", "weights": "w.pt"}, tmp_path)
    with pytest.raises(
        SpecError, match=r"architecture 'resnet18'.*does not match.*missing keys"
    ) as err:
        wl.source_artifact(tmp_path)
    assert err.value.field == "workload.weights" and err.value.path == "job.toml"


def test_weights_with_wrong_shapes_name_the_first_mismatch(tmp_path: Path) -> None:
    import torch
    import torchvision

    state = torchvision.models.resnet18(num_classes=10).state_dict()
    state["conv1.weight"] = torch.zeros(32, 3, 7, 7)
    torch.save(state, tmp_path / "w.pt")
    wl = load({"model": "resnet18", "weights": "w.pt"}, tmp_path)
    with pytest.raises(
        SpecError, match=r"conv1.weight: file \(32, 3, 7, 7\) vs model \(64, 3, 7, 7\)"
    ):
        wl.source_artifact(tmp_path)


def test_a_pickled_module_is_not_a_state_dict(tmp_path: Path) -> None:
    import torch

    torch.save(torch.nn.Linear(2, 2), tmp_path / "model.pt")
    wl = load({"model": "resnet18", "weights": "model.pt"}, tmp_path)
    with pytest.raises(SpecError, match=r"a plain state_dict .*model.pt"):
        wl.source_artifact(tmp_path)


def test_a_dict_of_non_tensors_is_not_a_state_dict(tmp_path: Path) -> None:
    import torch

    torch.save({"epoch": 3}, tmp_path / "ckpt.pt")
    wl = load({"model": "resnet18", "weights": "ckpt.pt"}, tmp_path)
    with pytest.raises(SpecError, match=r"a plain state_dict .*ckpt.pt: a dict"):
        wl.source_artifact(tmp_path)


def test_imagefolder_without_images(tmp_path: Path) -> None:
    (tmp_path / "val" / "cat").mkdir(parents=True)
    (tmp_path / "val" / "cat" / "notes.txt").write_text("no images here")
    wl = load({"model": "resnet18", "data": data_table(eval="val")}, tmp_path)
    with pytest.raises(SpecError, match=r"one sub-folder per class .*no images in") as err:
        wl.data()
    assert err.value.field == "workload.data.eval" and err.value.path == "job.toml"


def test_imagefolder_classes_must_match_the_model(tmp_path: Path) -> None:
    make_imagefolder(tmp_path / "val", classes=2, per_class=2)
    save_resnet18_weights(tmp_path / "w.pt", 5)
    wl = load({"model": "resnet18", "weights": "w.pt", "data": data_table(eval="val")}, tmp_path)
    with pytest.raises(SpecError, match=r"one class folder per model output \(5\), got '2 classes"):
        wl.data()


def test_train_classes_must_match_eval_classes(tmp_path: Path) -> None:
    make_imagefolder(tmp_path / "val", classes=2, per_class=2)
    make_imagefolder(tmp_path / "train", classes=3, per_class=1)
    wl = load(
        {"model": "resnet18", "num_classes": 2, "data": data_table(eval="val", train="train")},
        tmp_path,
    )
    with pytest.raises(SpecError, match=r"`workload.data.train`: expected the eval classes"):
        wl.data()


def test_explicit_num_classes_must_match_weights(tmp_path: Path) -> None:
    save_resnet18_weights(tmp_path / "w.pt", 4)
    wl = load({"model": "resnet18", "weights": "w.pt", "num_classes": 7}, tmp_path)
    with pytest.raises(
        SpecError, match=r"`workload.num_classes`: expected 4, the outputs of the weights"
    ):
        wl.source_artifact(tmp_path)
