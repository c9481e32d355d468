"""The contract every runtime backend passes, on real runtimes: a new target gets these checks
by subclassing :class:`TargetContract` and setting its class attributes (``tests/unit/targets/
test_target_contract.py``, ``tests/unit/targets/test_cuda_contract.py``). The ``tiny`` fixture
(``tests/conftest.py``) gives the models."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from farm.artifact import Artifact
from farm.errors import TrialError, UsageError
from support.tiny_models import TinyModels, random_batch
from targets import RuntimeOptions, Session, catalog, runtime_class


class TargetContract:
    """Checks every runtime must pass. Subclasses set the class attributes below."""

    runtime_key: ClassVar[str]
    artifact_format: ClassVar[str]
    #: Float precision -> the ``actual_precision`` the session must report for it.
    precisions: ClassVar[dict[str, str]] = {"fp32": "fp32"}
    #: Absolute tolerance of fp32 outputs against the eager torch reference.
    atol: ClassVar[float] = 1e-4

    def artifact(self, tiny: TinyModels) -> Artifact:
        path = tiny.pt2 if self.artifact_format == "torch-export" else tiny.onnx
        return Artifact.read_from(self.artifact_format, [path])

    def compile(
        self,
        tiny: TinyModels,
        tmp_path: Path,
        precision: str = "fp32",
        batch: int = 1,
        threads: int = 1,
        **extra: object,
    ) -> Session:
        runtime = runtime_class(self.runtime_key)()
        options = RuntimeOptions(precision, threads, batch, dict(extra))
        return runtime.compile(self.artifact(tiny), options, tmp_path / "work")

    def test_available_and_versioned(self) -> None:
        cls = runtime_class(self.runtime_key)
        assert cls.available()
        assert cls.name == self.runtime_key
        assert self.artifact_format in cls.accepts
        assert cls.version() not in ("", "unknown")

    def test_catalog_targets_of_this_runtime_list_its_precisions(self) -> None:
        targets = [t for t in catalog().values() if t.runtime == self.runtime_key]
        assert targets
        for t in targets:
            assert set(t.float_precisions) <= set(self.precisions) | {"fp16"}

    @pytest.mark.parametrize("batch", [1, 4])
    def test_outputs_match_torch_reference(
        self, tiny: TinyModels, tmp_path: Path, batch: int
    ) -> None:
        x = random_batch(batch, seed=batch)
        with self.compile(tiny, tmp_path, batch=batch) as session:
            out = session.run(x)
        assert out.dtype == np.float32
        assert out.shape == (batch, 10)
        np.testing.assert_allclose(out, tiny.reference(x), atol=self.atol, rtol=1e-4)

    def test_actual_precision_is_read_back(self, tiny: TinyModels, tmp_path: Path) -> None:
        for i, (asked, reported) in enumerate(self.precisions.items()):
            with self.compile(tiny, tmp_path / str(i), precision=asked) as session:
                assert session.actual_precision == reported

    def test_thread_count_is_applied(self, tiny: TinyModels, tmp_path: Path) -> None:
        for threads in (1, 2):
            with self.compile(tiny, tmp_path / str(threads), threads=threads) as session:
                assert session.threads == threads

    def test_close_releases_the_session(self, tiny: TinyModels, tmp_path: Path) -> None:
        session = self.compile(tiny, tmp_path)
        session.run(random_batch(1))
        session.close()
        with pytest.raises(TrialError, match="after close"):
            session.run(random_batch(1))

    def test_rejects_an_unsupported_precision(self, tiny: TinyModels, tmp_path: Path) -> None:
        with pytest.raises(UsageError, match="precision"):
            self.compile(tiny, tmp_path, precision="fp8")

    def test_rejects_a_format_it_does_not_accept(self, tmp_path: Path) -> None:
        cls = runtime_class(self.runtime_key)
        other = next(f for f in ("torch-state", "onnx", "torch-export") if f not in cls.accepts)
        artifact = Artifact(other, {"x.bin": b"\0"})
        with pytest.raises(UsageError, match="format"):
            cls().compile(artifact, RuntimeOptions(), tmp_path)

    def test_a_corrupt_artifact_is_a_trial_error_naming_the_file(self, tmp_path: Path) -> None:
        name = "model.pt2" if self.artifact_format == "torch-export" else "model.onnx"
        artifact = Artifact(self.artifact_format, {name: b"not a model at all"})
        with pytest.raises(TrialError, match=name):
            runtime_class(self.runtime_key)().compile(artifact, RuntimeOptions(), tmp_path)
