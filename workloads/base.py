"""The workload interface: a model source plus its data splits.

A :class:`Workload` says what model is optimized (a builder that returns a ``torch.nn.Module``,
or an ONNX file) and on which data it is calibrated, fine-tuned and evaluated. Everything here is
cheap to import: torch is imported only inside the functions that need it, because validating a
job file must not import torch.
"""

from __future__ import annotations

import abc
import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farm.errors import UsageError

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

    from farm.artifact import Artifact


@dataclass(frozen=True, eq=False)
class Split:
    """One data split: ``x`` float32 NCHW, already normalised; ``y`` int64 labels or None."""

    x: np.ndarray
    y: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def head(self, n: int) -> Split:
        """The first ``n`` samples (all of them when ``n`` is 0 or larger than the split)."""
        if n <= 0 or n >= len(self):
            return self
        return Split(self.x[:n], None if self.y is None else self.y[:n])

    def batches(self, batch_size: int) -> list[np.ndarray]:
        """The inputs cut into consecutive batches (the last one may be shorter)."""
        return [self.x[i : i + batch_size] for i in range(0, len(self), batch_size)]


@dataclass(frozen=True, eq=False)
class WorkloadData:
    """All the data of a workload. Picklable: it travels to build and evaluate tasks via Ray.

    ``train`` is None when the workload has no training data (pruning is then not offered).
    ``has_labels`` is False for synthetic inputs: quality is then fidelity to the fp32 reference.
    """

    train: Split | None
    calib: Split
    eval: Split
    num_classes: int
    input_shape: tuple[int, int, int]
    has_labels: bool


class Workload(abc.ABC):
    """A model source and its data. Subclasses: digits, torchvision, ONNX file."""

    #: Short name shown in reports (``digits``, ``resnet18``, ``model.onnx``).
    name: str
    #: False when the source is not a torch module (pruning and other torch transforms are off).
    allows_torch_transforms: bool = True

    @abc.abstractmethod
    def recipe(self) -> dict[str, Any]:
        """JSON-able description of everything that defines the model and the data."""

    @property
    def recipe_hash(self) -> str:
        """Content hash of :meth:`recipe` (file contents are hashed into the recipe itself)."""
        return hash_json(self.recipe())

    @abc.abstractmethod
    def data(self) -> WorkloadData:
        """The train / calibration / eval splits (computed once per instance)."""

    @abc.abstractmethod
    def source_artifact(self, cache_dir: Path) -> Artifact:
        """The fp32 model: a ``torch-state`` or ``onnx`` artifact. May train and cache it."""


def hash_json(obj: Any) -> str:
    """A short, stable hash of a JSON-able object."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def hash_file(path: Path) -> str:
    """sha256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# Builders: name -> function returning an nn.Module. Registered by the modules of this package;
# the table of modules is fixed so that user input never chooses what gets imported.

Builder = Callable[..., "nn.Module"]
_BUILDERS: dict[str, Builder] = {}
_BUILDER_MODULES = ("workloads.digits", "workloads.torchvision_models")


def register_builder(name: str) -> Callable[[Builder], Builder]:
    """Decorator: record ``fn`` as the builder called ``name`` (used in artifact meta)."""

    def decorator(fn: Builder) -> Builder:
        if name in _BUILDERS and _BUILDERS[name] is not fn:
            raise ValueError(f"builder {name!r} is registered twice")
        _BUILDERS[name] = fn
        return fn

    return decorator


def get_builder(name: str) -> Builder:
    import importlib

    for module in _BUILDER_MODULES:
        importlib.import_module(module)
    try:
        return _BUILDERS[name]
    except KeyError:
        raise UsageError(
            f"unknown model builder {name!r}; known builders: {', '.join(sorted(_BUILDERS))}"
        ) from None


def state_dict_bytes(module: nn.Module) -> bytes:
    """``torch.save(module.state_dict())`` as bytes (tensors made contiguous, on the CPU)."""
    import torch

    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def build_module(artifact: Artifact) -> nn.Module:
    """Rebuild the ``torch.nn.Module`` of a ``torch-state`` artifact, in eval mode.

    The builder named in ``meta["builder"]`` makes the original architecture; when the artifact
    was pruned, ``meta["pruned_layers"]`` gives the new shape of each pruned layer (see
    :mod:`optimizers.prune`) and those layers are replaced before the weights are loaded.
    """
    import torch

    if artifact.format != "torch-state":
        raise ValueError(f"build_module needs a torch-state artifact, got {artifact.format!r}")
    meta = artifact.meta
    module = get_builder(meta["builder"])(**meta.get("builder_kwargs", {}))
    if meta.get("pruned_layers"):
        from workloads.layer_shapes import apply_layer_shapes

        apply_layer_shapes(module, meta["pruned_layers"])
    state = torch.load(io.BytesIO(artifact.files["state_dict.pt"]), weights_only=True)
    module.load_state_dict(state)
    return module.eval()
