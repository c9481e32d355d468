"""A toy target and a toy transform, defined here and registered from Python: nothing under
``farm/``, ``targets/`` or ``optimizers/`` names them.

- ``cpu-toy``: the catalog entry :data:`TOY_TARGET`, served by :class:`ToyRuntime` (ONNX Runtime
  behind a runtime class of its own, with one knob).
- ``toy_round_weights``: the target's int8 transform: it rounds every float initializer of an
  ONNX model to 2**bits levels per tensor (fake quantization), with a search space of its own.

:func:`register` adds both to this process. Ray workers never import this module (the tests
directory is not on their path): the engine hands them the target's spec, its runtime class and
the transform with each task, and :func:`register` asks Ray to pickle this module's classes and
functions by value.

:class:`ToyRuntime` can also *hold* a compile (:meth:`ToyRuntime.hold`): a test that needs a
worker to die mid-trial kills the process that says it is holding, from the outside.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from targets.base import Runtime, RuntimeOptions, Session, TargetSpec, as_output

if TYPE_CHECKING:
    from farm.artifact import Artifact
    from optimizers import BuildContext

TOY_TARGET = TargetSpec(
    name="cpu-toy",
    runtime="toy-onnx",
    device="cpu",
    arch=platform.machine(),
    resource="target:cpu-toy",
    precisions=("fp32", "int8"),
    export="export_onnx",
    price_per_hour_usd=0.01,
    price_source="a toy price",
    price_date="2026-12-07",
    int8_transform="toy_round_weights",
    knobs={"spin": [False, True]},
)


class ToySession(Session):
    def __init__(self, session: Any, threads: int, int8: bool) -> None:
        self._session = session
        self._input = session.get_inputs()[0].name
        self.threads = threads
        self.actual_precision = "toy-int8+fp32" if int8 else "fp32"
        self.input_shape = tuple(
            d if isinstance(d, int) else None for d in session.get_inputs()[0].shape
        )

    def run_all(self, batch: np.ndarray) -> list[np.ndarray]:
        if self._session is None:
            from farm.errors import TrialError

            raise TrialError("toy session used after close()")
        return [as_output(o) for o in self._session.run(None, {self._input: batch})]

    def close(self) -> None:
        self._session = None


class ToyRuntime(Runtime):
    name = "toy-onnx"
    accepts = ("onnx",)
    requires = ("onnxruntime",)
    knobs = MappingProxyType({"spin": (False, True)})
    #: A directory where compiles number themselves; those whose number is in :attr:`held`
    #: wait there (see :meth:`hold`). None: never.
    hold_dir: ClassVar[str | None] = None
    held: ClassVar[frozenset[int]] = frozenset()

    @classmethod
    def version(cls) -> str:
        return "toy 1.0"

    @classmethod
    def hold(cls, directory: Path, compiles: set[int]) -> None:
        """Make the compiles numbered ``compiles`` (1, 2, … in the order they start, job-wide)
        write ``held-<pid>`` into ``directory`` and wait until their process is killed."""
        cls.hold_dir, cls.held = str(directory), frozenset(compiles)

    def _compile(self, artifact: Artifact, options: RuntimeOptions, workdir: Path) -> Session:
        import onnxruntime as ort

        self._maybe_hold()
        path = artifact.write_to(workdir)
        so = ort.SessionOptions()
        so.intra_op_num_threads = options.threads
        session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        rounded = any(t["name"] == "toy_round_weights" for t in artifact.meta.get("transforms", []))
        return ToySession(session, options.threads, rounded)

    def _maybe_hold(self) -> None:
        if self.hold_dir is None:
            return
        directory = Path(self.hold_dir)
        number = 1
        while True:  # this compile's number: the first free one (compiles run one at a time)
            try:
                os.close(os.open(directory / f"compile-{number}", os.O_CREAT | os.O_EXCL))
                break
            except FileExistsError:
                number += 1
        if number in self.held:
            (directory / f"held-{os.getpid()}").write_text(str(number))
            while True:
                time.sleep(0.1)  # until the test kills this worker process


@dataclass(frozen=True)
class RoundWeightsConfig:
    #: Levels of each tensor: 2**bits.
    bits: int = 8

    def __post_init__(self) -> None:
        if not 2 <= self.bits <= 16:
            raise ValueError(f"`2 <= bits <= 16` must hold, got bits={self.bits!r}")


def round_weights(cfg: RoundWeightsConfig, artifact: Artifact, ctx: BuildContext) -> Artifact:
    """Every float initializer rounded to 2**bits evenly spaced levels of its own range."""
    import onnx
    from onnx import numpy_helper

    from farm.artifact import Artifact

    model = onnx.load_from_string(artifact.files[artifact.main_file])
    levels = 2**cfg.bits - 1
    for init in model.graph.initializer:
        w = numpy_helper.to_array(init)
        if w.dtype != np.float32 or w.size < 2:
            continue
        low, high = float(w.min()), float(w.max())
        if high > low:
            step = (high - low) / levels
            w = (np.round((w - low) / step) * step + low).astype(np.float32)
            init.CopyFrom(numpy_helper.from_array(w, init.name))
    return Artifact("onnx", {"model.onnx": model.SerializeToString()}, dict(artifact.meta))


def round_weights_space(target: TargetSpec, traits: Any) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution

    return {"bits": CategoricalDistribution([8, 6])}


def register() -> None:
    """Register the toy target (with its runtime) and the toy transform in this process, and
    have Ray ship this module's code to its workers by value."""
    import ray

    import optimizers
    import targets

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    targets.register_target(TOY_TARGET, ToyRuntime)
    optimizers.register_transform(
        "toy_round_weights",
        RoundWeightsConfig,
        inputs=("onnx",),
        output="onnx",
        stage="quantize",
        order=45,
        requires=("onnx",),
    )(round_weights)
    optimizers.register_space("toy_round_weights")(round_weights_space)


def unregister() -> None:
    import ray

    import optimizers
    import targets

    targets.unregister_target(TOY_TARGET.name)
    optimizers.unregister_transform("toy_round_weights")
    ToyRuntime.hold_dir, ToyRuntime.held = None, frozenset()
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
