"""ONNX Runtime on the CPU (``runtime = "onnxruntime"``).

Options read from :class:`~targets.base.RuntimeOptions`:
- ``precision``: only ``"fp32"`` (the CPU execution provider has no bf16/fp16 mode; an int8
  artifact is a QDQ model compiled with ``precision="fp32"`` for its float parts).
- ``threads``: ``intra_op_num_threads`` (``inter_op_num_threads`` is 1: one operator at a time).
- ``extra["execution_mode"]``: ``"sequential"`` (default) or ``"parallel"``.

The graph optimization level is ``ORT_ENABLE_ALL``: QDQ models need at least ``EXTENDED`` so that
Q/DQ pairs fold into integer kernels instead of running as fp32 with fake quantization.

``Session.actual_precision`` convention: ``"fp32"`` for a float model; ``"int8+fp32"`` when the
model contains quantized operators (``QuantizeLinear``, ``QLinear*``, ``*Integer``): the
quantized parts run as int8 and everything else as fp32. ORT has no read-back of a precision
setting; this is read from the graph the session was built from.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from farm.errors import RuntimeMissingError, TrialError
from targets.base import Runtime, RuntimeOptions, Session, as_output

if TYPE_CHECKING:
    from farm.artifact import Artifact

EXECUTION_MODES = ("sequential", "parallel")
_QUANTIZED_OPS = frozenset(
    {
        "QuantizeLinear",
        "DynamicQuantizeLinear",
        "QLinearConv",
        "QLinearMatMul",
        "ConvInteger",
        "MatMulInteger",
    }
)


def onnx_precision(model_path: Path) -> str:
    """``"int8+fp32"`` if the ONNX graph holds quantized operators, else ``"fp32"``."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    ops = {node.op_type for node in model.graph.node}
    return "int8+fp32" if ops & _QUANTIZED_OPS else "fp32"


def ort_version() -> str:
    """``onnxruntime.__version__``, or ``"unknown"`` where the package is not installed."""
    if importlib.util.find_spec("onnxruntime") is None:
        return "unknown"
    import onnxruntime

    return str(onnxruntime.__version__)


def session_options(ort: Any, threads: int) -> Any:
    """The ``SessionOptions`` both ONNX Runtime targets start from (``ort`` is the module)."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3  # errors only; warnings about unused initializers are noise
    return so


class OnnxRuntimeSession(Session):
    """A session over an ``onnxruntime.InferenceSession`` (the CUDA target's session extends it)."""

    #: The runtime as error messages name it.
    runtime_name = "onnxruntime"

    def __init__(self, session: Any, actual_precision: str) -> None:
        self._session = session
        self._input = session.get_inputs()[0].name
        self._outputs = [session.get_outputs()[0].name]
        self._all_outputs = [o.name for o in session.get_outputs()]
        self.actual_precision = actual_precision
        #: The intra-op thread count the session was built with (read back from its options).
        self.threads = int(session.get_session_options().intra_op_num_threads)
        #: Input shape as the model declares it; ``None`` for a dynamic dimension.
        self.input_shape = tuple(
            d if isinstance(d, int) else None for d in session.get_inputs()[0].shape
        )

    @property
    def ort_session(self) -> Any:
        """The underlying ``onnxruntime.InferenceSession`` (benchmarks compare against it)."""
        return self._session

    def run(self, batch: np.ndarray) -> np.ndarray:
        if self._session is None:
            raise TrialError(f"{self.runtime_name} session used after close()")
        out = self._session.run(self._outputs, {self._input: batch})[0]
        return np.asarray(out, dtype=np.float32)

    def run_all(self, batch: np.ndarray) -> list[np.ndarray]:
        if self._session is None:
            raise TrialError(f"{self.runtime_name} session used after close()")
        outs = self._session.run(self._all_outputs, {self._input: batch})
        return [as_output(o) for o in outs]

    def close(self) -> None:
        self._session = None


class OnnxRuntime(Runtime):
    name = "onnxruntime"
    accepts = ("onnx",)
    requires = ("onnxruntime",)
    knobs = MappingProxyType({"execution_mode": EXECUTION_MODES})
    reference_for = ("onnx",)

    @classmethod
    def version(cls) -> str:
        return ort_version()

    def _compile(self, artifact: Artifact, options: RuntimeOptions, workdir: Path) -> Session:
        if not self.available():
            raise RuntimeMissingError(
                "the onnxruntime target needs the `onnxruntime` package: pip install onnxruntime"
            )
        import onnxruntime as ort

        path = artifact.write_to(workdir)
        so = session_options(ort, options.threads)
        so.inter_op_num_threads = 1
        so.execution_mode = (
            ort.ExecutionMode.ORT_PARALLEL
            if options.extra.get("execution_mode", "sequential") == "parallel"
            else ort.ExecutionMode.ORT_SEQUENTIAL
        )
        try:
            session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
            precision = onnx_precision(path)
        except Exception as exc:
            raise TrialError(f"onnxruntime could not load {artifact.main_file}: {exc}") from exc
        return OnnxRuntimeSession(session, precision)


RUNTIME = OnnxRuntime
