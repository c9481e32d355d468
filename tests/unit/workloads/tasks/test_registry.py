"""The task registry: one class per name, each parsing its own `[workload]` fields; the default
task of a user's model applied in one place; another task's fields refused naming that task."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm._validate import Fields
from farm.errors import SpecError
from workloads import load_workload
from workloads.tasks import (
    COMMON_FIELDS,
    DEFAULT_TASK,
    TASKS,
    Classification,
    Detection,
    Generic,
    ModelFacts,
    make_task,
    task_fields,
    task_name,
)


def fields(**table: object) -> Fields:
    return Fields(table, "job.toml", "workload")


def test_every_task_is_registered_under_its_own_name() -> None:
    assert {name: cls.name for name, cls in TASKS.items()} == {n: n for n in TASKS}


def test_a_user_model_without_a_task_is_a_classifier() -> None:
    assert DEFAULT_TASK == "classification"
    assert task_name(fields()) == "classification"
    assert task_name(fields(task="generic")) == "generic"


def test_an_unknown_task_names_the_field_and_the_known_tasks() -> None:
    with pytest.raises(SpecError, match=r"one of \['classification', 'detection'") as err:
        task_name(fields(task="panoptic"))
    assert err.value.field == "workload.task" and err.value.path == "job.toml"


def test_make_task_dispatches_to_the_class_of_the_name() -> None:
    assert make_task("classification", fields()) == Classification()
    assert make_task("generic", fields(task="generic")) == Generic()
    made = make_task("detection", fields(outputs="yolo", nms_iou=0.5), ModelFacts(num_classes=3))
    assert made == Detection(outputs="yolo", nms_iou=0.5, class_ids="index")


def test_a_field_of_another_task_is_refused_naming_that_task() -> None:
    with pytest.raises(SpecError, match=r'only with `task = "detection"`') as err:
        make_task("segmentation", fields(nms_iou=0.5), ModelFacts(num_classes=2))
    assert err.value.field == "workload.nms_iou"


def test_the_loader_accepts_every_task_field_and_no_other() -> None:
    every = task_fields()
    assert every >= COMMON_FIELDS
    assert all(cls.fields <= every for cls in TASKS.values())


def test_task_fields_of_another_task_are_refused_when_loading(squares: Path) -> None:
    with pytest.raises(SpecError, match=r'only with `task = "detection"`') as err:
        load_workload(
            {"onnx": "seg.onnx", "task": "segmentation", "nms_iou": 0.5}, squares, source="j.toml"
        )
    assert err.value.field == "workload.nms_iou" and err.value.path == "j.toml"
    data = {"eval": "val/images", "eval_masks": "val/masks"}
    with pytest.raises(SpecError, match=r'only with `task = "segmentation"`') as err:
        load_workload(
            {"onnx": "yolo.onnx", "task": "detection", "outputs": "yolo", "data": data}, squares
        )
    assert err.value.field == "workload.data.eval_masks"
