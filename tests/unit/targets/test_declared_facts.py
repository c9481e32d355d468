"""What targets and runtimes declare: the catalog agrees with the runtime classes, a runtime's
options are validated once from its declarations, and a target can be registered from Python."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

import optimizers
from farm.artifact import Artifact
from farm.errors import UsageError
from targets import (
    catalog,
    get_target,
    register_target,
    runtime_class,
    runtime_classes,
    unregister_target,
)
from targets.base import Runtime, RuntimeOptions, Session, TargetSpec

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("name", sorted(catalog()))
def test_each_catalog_target_asks_only_what_its_runtime_declares(name: str) -> None:
    target = get_target(name)
    runtime = runtime_class(target.runtime)
    assert runtime.name == target.runtime
    assert set(target.float_precisions) <= set(runtime.precisions)
    assert ("int8" in target.precisions) == (target.int8_transform is not None)
    assert (target.device == "cuda") == runtime.is_device
    export = optimizers.get_transform(target.export)
    assert export.output in runtime.accepts  # what the export makes, the runtime compiles
    if target.int8_transform:
        assert optimizers.get_transform(target.int8_transform).output in runtime.accepts
    for knob, values in target.knobs.items():
        assert knob in runtime.knobs, knob
        for value in values:  # every value a job may search, the runtime accepts
            artifact = Artifact(runtime.accepts[0], {"m": b"\0"})
            runtime.check_options(artifact, RuntimeOptions(extra={knob: value}))


def test_every_runtime_declares_what_it_needs_and_compiles() -> None:
    for key, runtime in runtime_classes().items():
        assert runtime.name == key
        assert runtime.requires, key  # each needs a library: farm/ keeps no table of them
        assert runtime.accepts and "fp32" in runtime.precisions


class Recording(Runtime):
    """A runtime that records what reaches its own compile."""

    name = "recording"
    accepts = ("onnx",)
    precisions = ("fp32", "fp16")
    knobs: ClassVar[dict[str, tuple[Any, ...] | None]] = {
        "mode": ("a", "b"),
        "fast": (False, True),
        "level": None,
    }
    compiled: ClassVar[list[RuntimeOptions]] = []

    def _compile(self, artifact: Artifact, options: RuntimeOptions, workdir: Path) -> Session:
        self.compiled.append(options)
        raise NotImplementedError


@pytest.mark.parametrize(
    ("artifact_format", "options", "message"),
    [
        ("torch-export", RuntimeOptions(), r"recording compiles artifacts of format \['onnx'\]"),
        (
            "onnx",
            RuntimeOptions("bf16"),
            r"precision must be one of \['fp32', 'fp16'\], got 'bf16'",
        ),
        ("onnx", RuntimeOptions(threads=0), "`threads >= 1` must hold, but got 0"),
        ("onnx", RuntimeOptions(extra={"modes": "a"}), r"unknown option\(s\) \['modes'\]; known"),
        ("onnx", RuntimeOptions(extra={"mode": "c"}), r"`mode`: expected one of \['a', 'b'\]"),
        ("onnx", RuntimeOptions(extra={"fast": 1}), "`fast`: expected true or false, got 1"),
    ],
)
def test_a_runtime_refuses_what_it_does_not_declare_before_its_own_compile(
    artifact_format: str, options: RuntimeOptions, message: str, tmp_path: Path
) -> None:
    Recording.compiled.clear()
    with pytest.raises(UsageError, match=message):
        Recording().compile(Artifact(artifact_format, {"m": b"\0"}), options, tmp_path)
    assert Recording.compiled == []


def test_options_a_runtime_declares_reach_its_compile(tmp_path: Path) -> None:
    Recording.compiled.clear()
    options = RuntimeOptions("fp16", 2, 4, {"mode": "b", "fast": True, "level": 7})
    with pytest.raises(NotImplementedError):
        Recording().compile(Artifact("onnx", {"m": b"\0"}), options, tmp_path)
    assert Recording.compiled == [options]


def test_a_target_registered_from_python_joins_the_catalog_and_can_be_removed() -> None:
    spec = TargetSpec(
        "cpu-recording", "recording", "cpu", "x86_64", "target:cpu-recording", ("fp32",),
        "export_onnx", 0.01, "a test", "2026-12-07",
    )  # fmt: skip
    register_target(spec, Recording)
    try:
        assert get_target("cpu-recording") is spec and runtime_class("recording") is Recording
        assert "recording" in runtime_classes()
        register_target(spec, Recording)  # again: harmless
        with pytest.raises(ValueError, match="catalog target"):
            register_target(TargetSpec(**{**vars(spec), "name": "cpu-onnxruntime"}), Recording)
        with pytest.raises(ValueError, match="names runtime"):
            register_target(TargetSpec(**{**vars(spec), "runtime": "onnxruntime"}), Recording)
    finally:
        unregister_target("cpu-recording")
    assert "cpu-recording" not in catalog()
    with pytest.raises(KeyError):
        runtime_class("recording")
