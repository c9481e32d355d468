"""User workloads: torchvision models with user weights, ImageFolder data, ONNX files, metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from farm.errors import UsageError
from workloads import load_workload, quality_metrics

CROP = 32


def make_imagefolder(root: Path, classes: int, per_class: int, size: int = 40) -> Path:
    """A tiny ImageFolder of solid-colour-ish PNGs written with PIL."""
    from PIL import Image

    rng = np.random.default_rng(len(str(root)))
    for c in range(classes):
        folder = root / f"class_{c}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
            pixels[..., c % 3] = 200
            Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


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
    wl = load_workload(section, tmp_path)
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
    assert wl.recipe_hash == load_workload(section, tmp_path).recipe_hash


def test_torchvision_without_weights_is_seeded_and_synthetic(tmp_path: Path) -> None:
    wl = load_workload(
        {"model": "mobilenet_v3_small", "data": {"crop": CROP, "resize": CROP}}, tmp_path
    )
    data = wl.data()
    assert not data.has_labels and data.train is None
    assert data.eval.y is None and data.eval.x.shape == (64, 3, CROP, CROP)
    assert not np.array_equal(data.eval.x, data.calib.x)
    a = wl.source_artifact(tmp_path)
    b = load_workload({"model": "mobilenet_v3_small"}, tmp_path).source_artifact(tmp_path)
    assert a.meta["num_classes"] == 1000
    assert a.files == b.files  # seeded random init


def test_weights_that_do_not_match_the_architecture(tmp_path: Path) -> None:
    import torch
    import torchvision

    torch.save(
        torchvision.models.mobilenet_v3_small(num_classes=10).state_dict(), tmp_path / "w.pt"
    )
    wl = load_workload({"model": "resnet18", "weights": "w.pt"}, tmp_path)
    with pytest.raises(UsageError, match=r"does not match architecture 'resnet18'.*missing keys"):
        wl.source_artifact(tmp_path)


def test_weights_with_wrong_shapes_name_the_first_mismatch(tmp_path: Path) -> None:
    import torch
    import torchvision

    state = torchvision.models.resnet18(num_classes=10).state_dict()
    state["conv1.weight"] = torch.zeros(32, 3, 7, 7)
    torch.save(state, tmp_path / "w.pt")
    wl = load_workload({"model": "resnet18", "weights": "w.pt"}, tmp_path)
    with pytest.raises(
        UsageError, match=r"conv1.weight: file \(32, 3, 7, 7\) vs model \(64, 3, 7, 7\)"
    ):
        wl.source_artifact(tmp_path)


def test_a_pickled_module_is_not_a_state_dict(tmp_path: Path) -> None:
    import torch

    torch.save(torch.nn.Linear(2, 2), tmp_path / "model.pt")
    wl = load_workload({"model": "resnet18", "weights": "model.pt"}, tmp_path)
    with pytest.raises(UsageError, match=r"model.pt is not a plain state_dict"):
        wl.source_artifact(tmp_path)


def test_a_dict_of_non_tensors_is_not_a_state_dict(tmp_path: Path) -> None:
    import torch

    torch.save({"epoch": 3}, tmp_path / "ckpt.pt")
    wl = load_workload({"model": "resnet18", "weights": "ckpt.pt"}, tmp_path)
    with pytest.raises(UsageError, match=r"ckpt.pt holds a dict, not a state_dict"):
        wl.source_artifact(tmp_path)


def test_imagefolder_without_images(tmp_path: Path) -> None:
    (tmp_path / "val" / "cat").mkdir(parents=True)
    (tmp_path / "val" / "cat" / "notes.txt").write_text("no images here")
    wl = load_workload({"model": "resnet18", "data": data_table(eval="val")}, tmp_path)
    with pytest.raises(UsageError, match=r"`workload.data.eval`: no images in"):
        wl.data()


def test_imagefolder_classes_must_match_the_model(tmp_path: Path) -> None:
    make_imagefolder(tmp_path / "val", classes=2, per_class=2)
    save_resnet18_weights(tmp_path / "w.pt", 5)
    wl = load_workload(
        {"model": "resnet18", "weights": "w.pt", "data": data_table(eval="val")}, tmp_path
    )
    with pytest.raises(UsageError, match=r"2 classes in .* but the model has 5 outputs"):
        wl.data()


def test_train_classes_must_match_eval_classes(tmp_path: Path) -> None:
    make_imagefolder(tmp_path / "val", classes=2, per_class=2)
    make_imagefolder(tmp_path / "train", classes=3, per_class=1)
    wl = load_workload(
        {"model": "resnet18", "num_classes": 2, "data": data_table(eval="val", train="train")},
        tmp_path,
    )
    with pytest.raises(UsageError, match=r"`workload.data.train`: classes .* differ"):
        wl.data()


def test_explicit_num_classes_must_match_weights(tmp_path: Path) -> None:
    save_resnet18_weights(tmp_path / "w.pt", 4)
    wl = load_workload({"model": "resnet18", "weights": "w.pt", "num_classes": 7}, tmp_path)
    with pytest.raises(UsageError, match=r"`workload.num_classes`: 7, but the weights"):
        wl.source_artifact(tmp_path)


def _tiny_onnx(path: Path) -> Path:
    import torch

    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4, 5),
    ).eval()
    torch.onnx.export(  # the legacy exporter warns; its output is what we test
        model,
        (torch.zeros(1, 3, 16, 16),),
        str(path),
        dynamo=False,
        input_names=["images"],
        dynamic_axes={"images": {0: "n"}},
    )
    return path


def test_onnx_file_workload(tmp_path: Path) -> None:
    import optimizers

    _tiny_onnx(tmp_path / "m.onnx")
    wl = load_workload({"onnx": "m.onnx"}, tmp_path)
    assert not wl.allows_torch_transforms
    art = wl.source_artifact(tmp_path)
    assert art.format == "onnx"
    assert art.meta["input_shape"] == [3, 16, 16] and art.meta["num_classes"] == 5
    assert art.meta["input_name"] == "images" and art.meta["dynamic_batch"]
    data = wl.data()
    assert data.eval.x.shape[1:] == (3, 16, 16) and not data.has_labels
    q = optimizers.apply("quantize_ort", {}, art, optimizers.BuildContext(data))
    assert q.format == "onnx"
    assert optimizers.search_space("prune", _target(), wl.traits()) == {}


def _target():
    from targets import get_target

    return get_target("cpu-onnxruntime")


def test_corrupt_onnx_file(tmp_path: Path) -> None:
    (tmp_path / "bad.onnx").write_bytes(b"this is not a protobuf")
    with pytest.raises(UsageError, match=r"bad.onnx is not a valid ONNX model"):
        load_workload({"onnx": "bad.onnx"}, tmp_path)


def test_quality_metrics_with_labels_and_reference() -> None:
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.5]], dtype=np.float32)
    ref = np.array([[2.5, 1.0], [0.0, 3.0], [0.0, 0.5]], dtype=np.float32)
    m = quality_metrics(logits, np.array([0, 1, 1]), ref)
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["top1_agreement"] == pytest.approx(2 / 3)
    assert m["max_abs_logit_diff"] == pytest.approx(1.0)
    assert m["mean_abs_logit_diff"] == pytest.approx(1.5 / 6)
    assert set(quality_metrics(logits, None, ref)) == {
        "top1_agreement",
        "max_abs_logit_diff",
        "mean_abs_logit_diff",
    }
    assert quality_metrics(logits, np.array([0, 1, 0]), None) == {"accuracy": 1.0}


def test_quality_metrics_reject_bad_outputs() -> None:
    with pytest.raises(ValueError, match="NaN"):
        quality_metrics(np.array([[np.nan, 1.0]]), None, None)
    with pytest.raises(ValueError, match="differ"):
        quality_metrics(np.zeros((2, 3)), None, np.zeros((2, 4)))
