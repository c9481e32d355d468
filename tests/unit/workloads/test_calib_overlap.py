"""Calibration hygiene: calibration images that are eval images are refused (compared by content,
under any name) unless the job allows it, and the job says how its calibration set was chosen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.images import calib_repeating_eval, make_imagefolder

from farm.errors import SpecError
from workloads import load_workload
from workloads.calib_overlap import CalibrationOrigin, duplicates


def workload(eval_dir: Path, calib: Path | None = None, **data: Any) -> dict[str, Any]:
    table = {"eval": str(eval_dir), **({"calib": str(calib)} if calib else {}), **data}
    return {"model": "resnet18", "data": table}


def test_a_calibration_image_with_the_bytes_of_an_eval_image_is_found_under_any_name(
    tmp_path: Path,
) -> None:
    eval_dir, calib = calib_repeating_eval(tmp_path, repeated=2)
    assert duplicates(calib, eval_dir) == [
        ("class_0/copy-0.png", "class_0/0.png"),
        ("class_0/copy-1.png", "class_0/1.png"),
    ]


def test_files_of_the_same_size_with_other_content_are_not_duplicates(tmp_path: Path) -> None:
    (tmp_path / "eval" / "a").mkdir(parents=True)
    (tmp_path / "calib").mkdir()
    (tmp_path / "eval" / "a" / "x.png").write_bytes(b"\x89PNG one")
    (tmp_path / "calib" / "y.png").write_bytes(b"\x89PNG two")
    (tmp_path / "calib" / "notes.txt").write_bytes(b"\x89PNG one")  # not an image file
    assert duplicates(tmp_path / "calib", tmp_path / "eval") == []


def test_a_job_whose_calib_folder_repeats_eval_images_is_refused_naming_them(
    tmp_path: Path,
) -> None:
    eval_dir, calib = calib_repeating_eval(tmp_path, repeated=7)
    with pytest.raises(SpecError) as info:
        load_workload(workload(eval_dir, calib), tmp_path, source="job.toml")
    message = str(info.value)
    assert message.startswith("job.toml: field `workload.data.calib`")
    assert "allow_calib_overlap = true" in message
    assert "7 image(s)" in message
    assert "class_0/copy-0.png = eval class_0/0.png" in message
    assert "class_1/copy-4.png = eval class_1/0.png" in message
    assert "copy-5" not in message and "and 2 more" in message


def test_allow_calib_overlap_accepts_the_overlap_and_the_origin_says_so(tmp_path: Path) -> None:
    eval_dir, calib = calib_repeating_eval(tmp_path, repeated=2)
    section = workload(eval_dir, calib, allow_calib_overlap=True)
    origin = load_workload(section, tmp_path, source="job.toml").calib_origin
    assert origin == CalibrationOrigin(f"folder {calib}", overlap=2)
    assert origin.describe(5) == (
        f"folder {calib} (5 images); 2 of them are eval images too (`allow_calib_overlap = true`)"
    )


def test_allow_calib_overlap_is_true_or_false(tmp_path: Path) -> None:
    eval_dir = make_imagefolder(tmp_path / "val", classes=2, per_class=2)
    section = workload(eval_dir, allow_calib_overlap="yes")
    with pytest.raises(SpecError, match=r"`workload.data.allow_calib_overlap`: expected true or"):
        load_workload(section, tmp_path, source="job.toml")


def test_the_origin_says_how_the_calibration_set_is_chosen(tmp_path: Path) -> None:
    eval_dir, calib = calib_repeating_eval(tmp_path, repeated=0)

    def origin(section: dict[str, Any]) -> str:
        found = load_workload(section, tmp_path, source="job.toml").calib_origin
        assert found is not None
        return found.describe(10)

    assert origin(workload(eval_dir, calib)) == f"folder {calib} (10 images)"
    carved = origin(workload(eval_dir, calib_fraction=0.25, seed=3))
    assert carved == f"carved from the eval images of {eval_dir} (25%, seed 3) (10 images)"
    synthetic = origin({"model": "resnet18"})
    assert synthetic == "synthetic inputs, seeded (the job gives no images) (10 images)"
    digits = origin({"name": "digits"})  # the embedded demos bring their own, apart from eval
    assert digits == "held-out split of the embedded digits data (10 images)"
