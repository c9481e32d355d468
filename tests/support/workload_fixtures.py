"""Fixtures shared by the workload and optimizer tests, registered as a pytest plugin
(``pytest_plugins`` in ``tests/conftest.py``): the digits workload and its model, trained once
per session, and the model exported to ONNX.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from support.digits import digits_cache_dir

if TYPE_CHECKING:
    from farm.artifact import Artifact
    from optimizers import BuildContext
    from workloads import DigitsWorkload


@pytest.fixture(scope="session")
def digits() -> DigitsWorkload:
    from workloads import DigitsWorkload

    return DigitsWorkload()


@pytest.fixture(scope="session")
def digits_artifact(digits: DigitsWorkload, tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    """The trained digits CNN (trained on first use, ~10 s; cached for the session)."""
    return digits.source_artifact(digits_cache_dir(tmp_path_factory))


@pytest.fixture(scope="module")
def onnx_artifact(digits_artifact: Artifact, ctx: BuildContext) -> Artifact:
    """The digits model exported to ONNX, with the requesting module's own ``ctx`` fixture."""
    from optimizers import apply

    return apply("export_onnx", {}, digits_artifact, ctx)


@pytest.fixture(scope="session")
def squares(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a small detection / segmentation data set (``val/images``,
    ``val/instances.json``, ``val/masks``) and two hand-made ONNX models that find its squares:
    ``yolo.onnx`` (a raw YOLO head) and ``seg.onnx`` (a score map)."""
    from support.dense_data import segmenter_onnx, write_squares, yolo_onnx

    root = tmp_path_factory.mktemp("squares")
    write_squares(root / "val", n=12)
    yolo_onnx(root / "yolo.onnx")
    segmenter_onnx(root / "seg.onnx")
    return root
