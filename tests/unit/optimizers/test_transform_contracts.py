"""Every registered transform passes the shared TransformContract (on the digits model)."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from contracts.transform_contract import TransformContract

import optimizers
from farm.artifact import Artifact
from optimizers import BuildContext


@pytest.fixture(scope="module")
def ctx(digits, tmp_path_factory: pytest.TempPathFactory) -> BuildContext:
    cache = tmp_path_factory.mktemp("contract-cache")
    return BuildContext(digits.data(), seed=0, cache_dir=cache, task=digits.task)


class _OnTorch(TransformContract):
    @pytest.fixture
    def artifact(self, digits_artifact: Artifact) -> Artifact:
        return digits_artifact


class _OnOnnx(TransformContract):
    @pytest.fixture
    def artifact(self, onnx_artifact: Artifact) -> Artifact:
        return onnx_artifact


class TestPruneContract(_OnTorch):
    name = "prune"
    config: ClassVar[dict[str, Any]] = {"ratio": 0.25, "finetune_steps": 5}
    identity: ClassVar[dict[str, Any] | None] = {"ratio": 0.0}


class TestResizeInputContract(_OnTorch):
    name = "resize_input"
    config: ClassVar[dict[str, Any]] = {"size": 16}
    identity: ClassVar[dict[str, Any] | None] = {"size": 0}


class TestExportOnnxContract(_OnTorch):
    name = "export_onnx"


class TestExportTorchContract(_OnTorch):
    name = "export_torch"


class TestQuantizeOrtContract(_OnOnnx):
    name = "quantize_ort"
    config: ClassVar[dict[str, Any]] = {"calibration_method": "MinMax"}


class TestQuantizeNncfContract(_OnOnnx):
    name = "quantize_nncf"
    config: ClassVar[dict[str, Any]] = {"subset_size": 64}

    def same_model(self, a: Artifact, b: Artifact) -> bool:
        """The same weights and graph; OpenVINO names the operations it makes from a counter of
        the process (``Constant_6411`` then ``Constant_12993``), so only those names differ."""
        import re

        def graph(artifact: Artifact) -> str:
            xml = artifact.files["model.xml"].decode()
            return re.sub(r'name="([A-Za-z]+)_\d+"', r'name="\1"', xml)

        return a.files["model.bin"] == b.files["model.bin"] and graph(a) == graph(b)


def test_every_registered_transform_has_a_contract_test() -> None:
    tested = {
        cls.name for cls in globals().values() if isinstance(cls, type) and hasattr(cls, "name")
    }
    assert set(optimizers.transform_names()) <= tested
