"""Every runtime backend passes the same contract (``TargetContract``), on real runtimes.

A new target gets these checks by subclassing ``TargetContract`` and setting four attributes.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from support.target_contract import TargetContract
from support.tiny_models import TinyModels, random_batch

from farm.artifact import Artifact
from farm.errors import UsageError
from targets import RuntimeOptions, runtime_class


class TestOnnxRuntime(TargetContract):
    runtime_key = "onnxruntime"
    artifact_format = "onnx"

    def test_rejects_an_unknown_execution_mode(self, tiny: TinyModels, tmp_path: Path) -> None:
        with pytest.raises(UsageError, match="execution_mode"):
            self.compile(tiny, tmp_path, execution_mode="turbo")

    def test_parallel_execution_mode_runs(self, tiny: TinyModels, tmp_path: Path) -> None:
        x = random_batch(2)
        with self.compile(tiny, tmp_path, batch=2, execution_mode="parallel") as session:
            np.testing.assert_allclose(session.run(x), tiny.reference(x), atol=self.atol)

    def test_a_qdq_model_reports_int8_plus_fp32(self, tiny: TinyModels, tmp_path: Path) -> None:
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self.batches = iter([{"input": random_batch(4, seed=s)} for s in range(4)])

            def get_next(self) -> dict | None:
                return next(self.batches, None)

        qdq = tmp_path / "int8" / "model.onnx"
        qdq.parent.mkdir()
        quantize_static(str(tiny.onnx), str(qdq), Reader(), quant_format=QuantFormat.QDQ)
        artifact = Artifact.read_from("onnx", [qdq])
        runtime = runtime_class("onnxruntime")()
        x = random_batch(4)
        with runtime.compile(artifact, RuntimeOptions(batch_size=4), tmp_path / "w") as session:
            assert session.actual_precision == "int8+fp32"
            out = session.run(x)
        assert (out.argmax(1) == tiny.reference(x).argmax(1)).mean() >= 0.5


class TestOpenVino(TargetContract):
    runtime_key = "openvino"
    artifact_format = "onnx"
    # bf16 must be asked for to be used; fp32 must *report* f32 (OpenVINO defaults to bf16 on
    # avx512_bf16 CPUs when not told).
    precisions: ClassVar[dict[str, str]] = {"fp32": "fp32", "bf16": "bf16"}

    def test_bf16_runs_close_to_the_reference(self, tiny: TinyModels, tmp_path: Path) -> None:
        x = random_batch(4)
        with self.compile(tiny, tmp_path, precision="bf16", batch=4) as session:
            assert session.actual_precision == "bf16"
            np.testing.assert_allclose(session.run(x), tiny.reference(x), atol=0.05, rtol=0.05)

    def test_dynamic_batch_is_compiled_static_and_other_batches_still_run(
        self, tiny: TinyModels, tmp_path: Path
    ) -> None:
        with self.compile(tiny, tmp_path, batch=4) as session:
            assert session.input_shape == (4, 3, 32, 32)
            for n in (3, 9):  # padded, then split into 4+4+1
                x = random_batch(n, seed=n)
                np.testing.assert_allclose(session.run(x), tiny.reference(x), atol=self.atol)

    def test_openvino_ir_artifact(self, tiny: TinyModels, tmp_path: Path) -> None:
        import openvino as ov

        model = ov.convert_model(str(tiny.onnx))
        ov.save_model(model, str(tmp_path / "model.xml"), compress_to_fp16=False)
        artifact = Artifact.read_from(
            "openvino-ir", [tmp_path / "model.xml", tmp_path / "model.bin"]
        )
        x = random_batch(2)
        runtime = runtime_class("openvino")()
        with runtime.compile(artifact, RuntimeOptions(batch_size=2), tmp_path / "w") as session:
            assert session.actual_precision == "fp32"
            np.testing.assert_allclose(session.run(x), tiny.reference(x), atol=self.atol)

    def test_performance_hint_and_streams_are_validated(
        self, tiny: TinyModels, tmp_path: Path
    ) -> None:
        with pytest.raises(UsageError, match="performance_hint"):
            self.compile(tiny, tmp_path, performance_hint="FAST")
        with pytest.raises(UsageError, match="streams"):
            self.compile(tiny, tmp_path, streams=0)
        with self.compile(
            tiny, tmp_path, threads=2, performance_hint="THROUGHPUT", streams=2
        ) as session:
            assert session._compiled.get_property("NUM_STREAMS") == 2  # type: ignore[attr-defined]


class TestTorch(TargetContract):
    runtime_key = "torch"
    artifact_format = "torch-export"
    atol: ClassVar[float] = 1e-5
