"""The `[workload.data]` table: every mistake names the job file and the field, and what the
data must hold follows the task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from farm.errors import SpecError
from workloads.datasets.config import IMAGENET_MEAN, DataConfig, parse_data_config


def parse(section: Any, base: Path, task: str = "classification") -> DataConfig:
    return parse_data_config(section, base, task, source="job.toml")


def test_no_table_means_synthetic_inputs_normalised_as_the_task_says(tmp_path: Path) -> None:
    assert parse(None, tmp_path).synthetic and parse(None, tmp_path).mean == IMAGENET_MEAN
    assert parse(None, tmp_path, "detection").mean == (0.0, 0.0, 0.0)  # detectors take [0, 1]
    assert parse(None, tmp_path).source == "job.toml"


def test_paths_resolve_against_the_job_folder(tmp_path: Path) -> None:
    (tmp_path / "val").mkdir()
    (tmp_path / "slices.csv").write_text("file,slice\n")
    cfg = parse({"eval": "val", "slices": "slices.csv", "crop": 32, "resize": 40}, tmp_path)
    assert cfg.eval == (tmp_path / "val").resolve() and cfg.crop_given
    assert cfg.slices == (tmp_path / "slices.csv").resolve()


def test_the_source_is_not_part_of_the_datas_identity(tmp_path: Path) -> None:
    a = parse_data_config({"crop": 32, "resize": 32}, tmp_path, "classification", source="a.toml")
    b = parse_data_config({"crop": 32, "resize": 32}, tmp_path, "classification", source="b.toml")
    assert a.to_json() == b.to_json()


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"eval": "missing"}, "workload.data.eval"),
        ({"calib": "val"}, "workload.data.eval"),  # calib without eval
        ({"resize": 0}, "workload.data.resize"),
        ({"crop": 300}, "workload.data.crop"),  # larger than resize
        ({"seed": -1}, "workload.data.seed"),
        ({"mean": [0.5, 0.5]}, "workload.data.mean"),
        ({"std": [0.5, 0.0, 0.5]}, "workload.data.std"),
        ({"calib_fraction": 1.0}, "workload.data.calib_fraction"),
        ({"synthetic_samples": True}, "workload.data.synthetic_samples"),
        ({"evals": "val"}, "workload.data.evals"),
        ({"slices": "none.csv"}, "workload.data.slices"),
    ],
)
def test_a_bad_field_names_the_job_file_and_the_field(
    tmp_path: Path, section: dict, field: str
) -> None:
    (tmp_path / "val").mkdir()
    with pytest.raises(SpecError) as err:
        parse(section, tmp_path)
    assert err.value.field == field and err.value.path == "job.toml"


def test_ground_truth_follows_the_task(tmp_path: Path) -> None:
    (tmp_path / "val").mkdir()
    (tmp_path / "gt.json").write_text("{}")
    with pytest.raises(SpecError, match="required with `eval`") as err:
        parse({"eval": "val"}, tmp_path, "detection")
    assert err.value.field == "workload.data.eval_annotations"
    with pytest.raises(SpecError, match='only with `task = "detection"`') as err:
        parse({"eval": "val", "eval_annotations": "gt.json"}, tmp_path, "segmentation")
    assert err.value.field == "workload.data.eval_annotations"
    cfg = parse({"eval": "val", "eval_annotations": "gt.json"}, tmp_path, "detection")
    assert cfg.eval_annotations == (tmp_path / "gt.json").resolve()


def test_a_table_that_is_not_a_table_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as err:
        parse("val", tmp_path)
    assert err.value.field == "workload.data"
