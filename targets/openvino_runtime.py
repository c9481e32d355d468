"""OpenVINO on the CPU (``runtime = "openvino"``), from ONNX or OpenVINO IR.

Options read from :class:`~targets.base.RuntimeOptions`:
- ``precision``: ``"fp32"`` or ``"bf16"`` (``"fp16"`` where the CPU supports it), always passed as
  ``INFERENCE_PRECISION_HINT``. OpenVINO otherwise picks bf16 by itself on CPUs with
  avx512_bf16/AMX, so an unhinted "fp32" run is silently a bf16 run.
- ``threads``: ``INFERENCE_NUM_THREADS``.
- ``extra["performance_hint"]``: ``"LATENCY"`` (default), ``"THROUGHPUT"`` or
  ``"CUMULATIVE_THROUGHPUT"``; ``extra["streams"]``: ``NUM_STREAMS`` (an int), only if given.

``Session.actual_precision`` is ``compiled.get_property("INFERENCE_PRECISION_HINT")`` read back
after compiling, mapped to the farm's names (f32→fp32, bf16→bf16, f16→fp16). For an int8 (NNCF)
model it is the precision of the float parts, prefixed ``"int8+"``.

A dynamic batch dimension is reshaped to the static ``options.batch_size`` before compiling:
the CPU plugin runs static shapes faster, and what is measured is what would be deployed.
``run()`` still takes any batch size (a smaller batch is zero-padded, a larger one split), so
evaluating a split whose size is not a multiple of the batch works.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from farm.errors import RuntimeMissingError, TrialError, UsageError
from targets.base import Runtime, RuntimeOptions, Session, as_output

if TYPE_CHECKING:
    from farm.artifact import Artifact

PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
_FROM_OV = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}
PERFORMANCE_HINTS = ("LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT")
_QUANTIZED_OPS = frozenset({"FakeQuantize", "FakeConvert"})


class OpenVinoSession(Session):
    def __init__(self, compiled: Any, actual_precision: str, batch: int | None) -> None:
        self._compiled = compiled
        self._request = compiled.create_infer_request()
        self.actual_precision = actual_precision
        #: The compiled batch size, or None when the model's batch dimension is dynamic.
        self.batch = batch
        #: INFERENCE_NUM_THREADS read back from the compiled model.
        self.threads = int(compiled.get_property("INFERENCE_NUM_THREADS"))
        shape = compiled.inputs[0].get_partial_shape()
        self.input_shape = tuple(d.get_length() if d.is_static else None for d in shape)

    def _infer(self, batch: np.ndarray, first_only: bool) -> list[np.ndarray]:
        self._request.infer({0: batch})
        count = 1 if first_only else len(self._compiled.outputs)
        return [
            as_output(np.array(self._request.get_output_tensor(i).data, copy=True))
            for i in range(count)
        ]

    def _run(self, batch: np.ndarray, first_only: bool) -> list[np.ndarray]:
        """Run ``batch`` in chunks of the compiled batch size (batch-major outputs only)."""
        if self._request is None:
            raise TrialError("openvino session used after close()")
        n, fixed = batch.shape[0], self.batch
        if fixed is None or n == fixed:
            return self._infer(batch, first_only)
        chunks = []
        for i in range(0, n, fixed):
            chunk = batch[i : i + fixed]
            real = chunk.shape[0]
            if real < fixed:
                pad = np.zeros((fixed - real, *chunk.shape[1:]), dtype=chunk.dtype)
                chunk = np.concatenate([chunk, pad])
            chunks.append([o[:real] for o in self._infer(chunk, first_only)])
        return [np.concatenate(parts) for parts in zip(*chunks, strict=True)]

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self._run(batch, first_only=True)[0].astype(np.float32, copy=False)

    def run_all(self, batch: np.ndarray) -> list[np.ndarray]:
        return self._run(batch, first_only=False)

    def close(self) -> None:
        self._request = None
        self._compiled = None


class OpenVino(Runtime):
    name = "openvino"
    accepts = ("onnx", "openvino-ir")
    requires = ("openvino",)
    precisions = tuple(PRECISION_HINTS)
    #: ``streams`` is any integer >= 1 (checked in :meth:`_config`).
    knobs = MappingProxyType({"performance_hint": PERFORMANCE_HINTS, "streams": None})

    @classmethod
    def version(cls) -> str:
        if not cls.available():
            return "unknown"
        import openvino

        return str(openvino.get_version())

    def _compile(self, artifact: Artifact, options: RuntimeOptions, workdir: Path) -> Session:
        if not self.available():
            raise RuntimeMissingError(
                "the openvino target needs the `openvino` package: pip install openvino"
            )
        import openvino as ov

        config = self._config(options)
        path = artifact.write_to(workdir)
        core = ov.Core()
        try:
            model = core.read_model(str(path))
            batch = self._static_batch(model, options.batch_size)
            compiled = core.compile_model(model, "CPU", config)
        except Exception as exc:
            raise TrialError(f"openvino could not compile {artifact.main_file}: {exc}") from exc
        hint = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        precision = _FROM_OV.get(hint, hint)
        if any(op.get_type_name() in _QUANTIZED_OPS for op in model.get_ops()):
            precision = f"int8+{precision}"
        return OpenVinoSession(compiled, precision, batch)

    @staticmethod
    def _config(options: RuntimeOptions) -> dict[str, Any]:
        config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": PRECISION_HINTS[options.precision],
            "INFERENCE_NUM_THREADS": options.threads,
            "PERFORMANCE_HINT": options.extra.get("performance_hint", "LATENCY"),
        }
        streams = options.extra.get("streams")
        if streams is not None:
            if isinstance(streams, bool) or not isinstance(streams, int) or streams < 1:
                raise UsageError(
                    f"openvino: option `streams`: expected an integer >= 1, got {streams!r}"
                )
            config["NUM_STREAMS"] = streams
        return config

    @staticmethod
    def _static_batch(model: Any, batch_size: int) -> int | None:
        """Reshape a dynamic batch dimension to ``batch_size``; return the static batch or None."""
        shape = model.inputs[0].get_partial_shape()
        if shape.rank.is_dynamic or len(shape) == 0:
            return None
        if shape[0].is_static:
            return int(shape[0].get_length())
        rest = list(shape)[1:]
        if not all(d.is_static for d in rest):
            return None  # leave fully dynamic models alone
        model.reshape({model.inputs[0]: [batch_size, *(d.get_length() for d in rest)]})
        return batch_size


RUNTIME = OpenVino
