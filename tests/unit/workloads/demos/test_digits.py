"""The embedded digits workload: its splits, its model trained once and cached, its recipe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.digits import accuracy, digits_cache_dir, torch_logits

from workloads import DigitsWorkload
from workloads.demos.digits import split_indices
from workloads.tasks import Classification


def test_splits_are_disjoint_stratified_and_sized(digits: DigitsWorkload) -> None:
    from sklearn.datasets import load_digits

    y = load_digits().target
    train, calib, ev = split_indices(y, (0.6, 0.1, 0.3), seed=0)
    assert (len(train), len(calib), len(ev)) == (1077, 180, 540)
    assert not set(train) & set(calib)
    assert not set(train) & set(ev)
    assert not set(calib) & set(ev)
    assert len(set(train) | set(calib) | set(ev)) == len(y)
    for part, frac in ((train, 0.6), (calib, 0.1), (ev, 0.3)):
        counts = np.bincount(y[part], minlength=10)
        expected = np.bincount(y, minlength=10) * frac
        assert np.all(np.abs(counts - expected) <= 1.5), (counts, expected)


def test_splits_are_stable_for_a_seed_and_change_with_it() -> None:
    from sklearn.datasets import load_digits

    y = load_digits().target
    a = split_indices(y, (0.6, 0.1, 0.3), seed=0)
    b = split_indices(y, (0.6, 0.1, 0.3), seed=0)
    c = split_indices(y, (0.6, 0.1, 0.3), seed=1)
    assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))
    assert not np.array_equal(a[2], c[2])


def test_no_image_is_in_two_splits(digits: DigitsWorkload) -> None:
    data = digits.data()
    assert data.train is not None
    flat = {
        name: s.x.reshape(len(s), -1)
        for name, s in (("train", data.train), ("calib", data.calib), ("eval", data.eval))
    }
    seen: dict[bytes, str] = {}
    for name, rows in flat.items():
        for row in rows:
            key = row.tobytes()
            assert seen.setdefault(key, name) == name, f"an image is in {seen[key]} and {name}"


def test_data_shapes_and_normalisation(digits: DigitsWorkload) -> None:
    data = digits.data()
    assert data.input_shape == (3, 32, 32)
    assert data.num_classes == 10 and data.has_labels
    assert data.eval.x.shape == (540, 3, 32, 32) and data.eval.x.dtype == np.float32
    assert data.eval.y is not None and data.eval.y.dtype == np.int64
    assert data.train is not None
    assert abs(float(data.train.x.mean())) < 0.05
    assert 0.9 < float(data.train.x.std()) < 1.1


def test_trained_model_reaches_095_on_eval(digits: DigitsWorkload, digits_artifact) -> None:
    meta = digits_artifact.meta
    assert digits_artifact.format == "torch-state"
    assert meta["builder"] == "digits_cnn" and meta["input_shape"] == [3, 32, 32]
    assert meta["num_classes"] == 10
    data = digits.data()
    acc = accuracy(torch_logits(digits_artifact, data.eval.x), data.eval.y)
    assert acc >= 0.95
    assert meta["training"]["eval_accuracy"] == pytest.approx(acc)
    assert 50_000 < meta["training"]["parameters"] < 200_000


def test_second_load_hits_the_cache(
    digits: DigitsWorkload, digits_artifact, tmp_path_factory, monkeypatch
) -> None:
    cache = digits_cache_dir(tmp_path_factory)
    files = sorted(p.name for p in (cache / "digits").iterdir())
    assert files == [f"{digits.recipe_hash}.json", f"{digits.recipe_hash}.pt"]

    def no_training(self: DigitsWorkload) -> None:
        raise AssertionError("the cached model was retrained")

    monkeypatch.setattr(DigitsWorkload, "_train", no_training)
    again = DigitsWorkload().source_artifact(cache)
    assert again.files["state_dict.pt"] == digits_artifact.files["state_dict.pt"]
    assert again.content_hash == digits_artifact.content_hash


@pytest.mark.slow
def test_training_is_deterministic(digits_artifact, tmp_path: Path) -> None:
    fresh = DigitsWorkload().source_artifact(tmp_path)
    assert fresh.files["state_dict.pt"] == digits_artifact.files["state_dict.pt"]


def test_recipe_hash_is_stable_and_covers_the_recipe(monkeypatch) -> None:
    import workloads.demos.digits as mod

    before = DigitsWorkload().recipe_hash
    assert before == DigitsWorkload().recipe_hash
    monkeypatch.setitem(mod.TRAIN_RECIPE, "epochs", 9)
    assert DigitsWorkload().recipe_hash != before


def test_data_pickles_for_ray(digits: DigitsWorkload) -> None:
    import pickle

    data = pickle.loads(pickle.dumps(digits.data()))
    assert np.array_equal(data.eval.x, digits.data().eval.x)


def test_the_digits_demo_is_a_classifier_whose_cnn_any_input_size_fits(
    digits: DigitsWorkload,
) -> None:
    assert digits.task == Classification()
    traits = digits.traits()
    assert traits.torch_source and traits.allows_resolution and traits.input_shape == (3, 32, 32)
