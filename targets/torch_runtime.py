"""PyTorch eager on the CPU (``runtime = "torch"``), from a ``torch.export`` ExportedProgram.

Options read from :class:`~targets.base.RuntimeOptions`: ``precision`` (``"fp32"`` only) and
``threads`` (``torch.set_num_threads``; process-wide, which is why a measurement owns its
process's runtime while it runs). ``actual_precision`` is read from the dtype of the program's
floating-point parameters, so a program exported in another dtype is not reported as fp32.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from farm.errors import RuntimeMissingError, TrialError
from targets.base import Runtime, RuntimeOptions, Session

if TYPE_CHECKING:
    from farm.artifact import Artifact

DTYPE_NAMES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16", "float64": "fp64"}


class TorchSession(Session):
    def __init__(self, module: Any, actual_precision: str, input_shape: tuple[int | None, ...]):
        import torch

        self._torch = torch
        self._module = module
        self.actual_precision = actual_precision
        #: Input shape of the exported program; ``None`` for a dynamic (symbolic) dimension.
        self.input_shape = input_shape
        #: ``torch.get_num_threads()`` read back (process-wide: the one the runtime uses).
        self.threads = int(torch.get_num_threads())

    def run_all(self, batch: np.ndarray) -> list[np.ndarray]:
        if self._module is None:
            raise TrialError("torch session used after close()")
        torch = self._torch
        with torch.inference_mode():
            out = self._module(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)))
        return tensors_to_numpy(out)

    def close(self) -> None:
        self._module = None


class TorchRuntime(Runtime):
    name = "torch"
    accepts = ("torch-export",)
    requires = ("torch",)

    @classmethod
    def version(cls) -> str:
        if importlib.util.find_spec("torch") is None:
            return "unknown"
        import torch

        return str(torch.__version__)

    def _compile(self, artifact: Artifact, options: RuntimeOptions, workdir: Path) -> Session:
        if not self.available():
            raise RuntimeMissingError("the torch target needs the `torch` package")
        import torch

        path = artifact.write_to(workdir)
        try:
            program = torch.export.load(str(path))
            module = program.module()
        except Exception as exc:
            raise TrialError(f"torch could not load {artifact.main_file}: {exc}") from exc
        torch.set_num_threads(options.threads)
        return TorchSession(module, _precision(program), program_input_shape(program))


def module_session(module: Any) -> Session:
    """An eager torch module as an fp32 session on the CPU (the reference a torch workload's
    candidates are compared with: ``targets.reference_session``)."""
    return TorchSession(module, "fp32", ())


def tensors_to_numpy(out: Any) -> list[np.ndarray]:
    """A module's output (a tensor, or a tuple/list of tensors) as numpy arrays in order; float
    tensors as float32."""
    items = out if isinstance(out, tuple | list) else (out,)
    arrays = []
    for t in items:
        t = t.detach().cpu()
        arrays.append((t.float() if t.is_floating_point() else t).numpy().copy())
    return arrays


def _precision(program: Any) -> str:
    dtypes = {p.dtype for p in program.state_dict.values() if p.is_floating_point()}
    names = sorted(DTYPE_NAMES.get(str(d).removeprefix("torch."), str(d)) for d in dtypes)
    return "+".join(names) if names else "fp32"


def program_input_shape(program: Any) -> tuple[int | None, ...]:
    """Input shape of an ExportedProgram's first input; ``None`` for a dynamic dimension."""
    first_input = program.graph_signature.user_inputs[0]
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name == first_input and "val" in node.meta:
            return tuple(d if isinstance(d, int) else None for d in node.meta["val"].shape)
    return ()


RUNTIME = TorchRuntime
