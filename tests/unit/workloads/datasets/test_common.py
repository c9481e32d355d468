"""What every loader shares: carving a calibration split off the eval images (stratified for
classifiers, random otherwise) and seeded synthetic inputs."""

from __future__ import annotations

import numpy as np
import pytest

from farm.errors import SpecError
from workloads.data import Split
from workloads.datasets.common import carve, synthetic_splits
from workloads.datasets.config import DataConfig


def _split(n: int, labels: np.ndarray | None = None) -> Split:
    x = np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1)
    infos = tuple({"file": f"{i}.png"} for i in range(n))
    return Split(x, labels, None, infos)


@pytest.mark.parametrize("stratified", [True, False])
def test_a_carve_is_disjoint_complete_seeded_and_sized(stratified: bool) -> None:
    labels = np.repeat(np.arange(4), 10)
    cfg = DataConfig(calib_fraction=0.2, seed=3)
    split = _split(40, labels)
    ev, cal = carve(split, cfg, stratify=labels if stratified else None)
    kept, taken = {i["file"] for i in ev.info or ()}, {i["file"] for i in cal.info or ()}
    assert not kept & taken and len(kept | taken) == 40 and len(taken) == 8
    again, _ = carve(split, cfg, stratify=labels if stratified else None)
    np.testing.assert_array_equal(ev.x, again.x)
    if stratified:  # every class gives the calibration split its share
        assert cal.y is not None and np.bincount(cal.y).tolist() == [2, 2, 2, 2]


def test_a_stratified_carve_falls_back_to_random_for_a_class_of_one() -> None:
    labels = np.array([0, 0, 0, 0, 1])
    ev, cal = carve(_split(5, labels), DataConfig(calib_fraction=0.4), stratify=labels)
    assert len(ev) + len(cal) == 5 and len(cal) == 2


def test_one_image_cannot_be_carved_and_the_error_names_the_eval_field() -> None:
    with pytest.raises(SpecError, match="at least 2 images") as err:
        carve(_split(1), DataConfig(source="job.toml"))
    assert err.value.field == "workload.data.eval" and err.value.path == "job.toml"


def test_synthetic_inputs_are_seeded_normal_or_normalised_pixels() -> None:
    cfg = DataConfig(synthetic_samples=5, seed=1)
    calib, ev = synthetic_splits(cfg, (3, 4, 4))
    assert calib.x.shape == (5, 3, 4, 4) and calib.x.dtype == np.float32
    assert not np.array_equal(calib.x, ev.x) and calib.info is None
    again, _ = synthetic_splits(cfg, (3, 4, 4))
    np.testing.assert_array_equal(calib.x, again.x)
    pixels = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    calib, _ = synthetic_splits(cfg, (3, 4, 4), pixels)
    assert calib.x.min() >= -1.0 and calib.x.max() <= 1.0  # uniform [0, 1] normalised
    assert calib.info is not None and [i["image_id"] for i in calib.info] == [0, 1, 2, 3, 4]
