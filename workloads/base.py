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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farm.errors import UsageError
from workloads.tasks import Classification, Task

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

    from farm.artifact import Artifact


@dataclass(frozen=True, eq=False)
class Split:
    """One data split: ``x`` float32 images in the model's layout (NCHW, or NHWC for a
    channels-last ONNX model, see :attr:`WorkloadData.layout`), preprocessed and normalised.

    ``y`` holds int64 class labels (classification). Dense tasks keep their ground truth per
    sample in ``truth`` (detection: a dict of ``boxes`` xyxy in original image pixels, ``labels``
    as category ids, ``iscrowd`` and ``area``; segmentation: the class-index mask at the original
    image size) and what preprocessing did to each image in ``info`` (file, image id, original
    size, scale and padding), so that predictions can be mapped back to the original image.
    All three are None when the split has no labels (synthetic inputs, calibration images).
    """

    x: np.ndarray
    y: np.ndarray | None = None
    truth: tuple[Any, ...] | None = None
    info: tuple[dict[str, Any], ...] | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def subset(self, index: Any) -> Split:
        """The samples at ``index`` (an integer array or a slice), every field kept aligned."""
        import numpy as np

        idx = np.arange(len(self))[index]
        return Split(
            self.x[idx],
            None if self.y is None else self.y[idx],
            None if self.truth is None else tuple(self.truth[i] for i in idx),
            None if self.info is None else tuple(self.info[i] for i in idx),
        )

    def head(self, n: int) -> Split:
        """The first ``n`` samples (all of them when ``n`` is 0 or larger than the split)."""
        if n <= 0 or n >= len(self):
            return self
        return self.subset(slice(0, n))

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
    #: Class names by model output index (classification, segmentation) or detection category
    #: names by category id, for per-class metrics; None: classes are named by their index.
    class_names: tuple[str, ...] | dict[int, str] | None = None
    #: Per-channel (mean, std) the images were normalised with (corruptions undo it).
    normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    #: Release KPIs (workloads/kpis/compute.py), added when a job starts: user slices of the eval
    #: split
    #: (name -> sample indices), corrupted copies of it ((corruption, severity) -> split), and
    #: the operating point's positive class indices.
    slices: dict[str, np.ndarray] | None = None
    corrupted: dict[tuple[str, int], Split] | None = None
    positive_classes: tuple[int, ...] = ()
    #: The layout of every split's ``x`` and of ``input_shape``: ``NCHW`` (C, H, W) or, for a
    #: channels-last model, ``NHWC`` (H, W, C).
    layout: str = "NCHW"

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) of the model's input, whatever the layout."""
        shape = self.input_shape
        return (shape[0], shape[1]) if self.layout == "NHWC" else (shape[1], shape[2])


def channels_last(data: WorkloadData) -> WorkloadData:
    """``data`` (NCHW) with every split's images transposed to NHWC, for a channels-last model:
    the model is then fed as it is served, with no transpose inside the timed query."""
    import numpy as np

    if data.layout == "NHWC":
        return data

    def nhwc(split: Split) -> Split:
        return replace(split, x=np.ascontiguousarray(split.x.transpose(0, 2, 3, 1)))

    c, h, w = data.input_shape
    return replace(
        data,
        train=None if data.train is None else nhwc(data.train),
        calib=nhwc(data.calib),
        eval=nhwc(data.eval),
        input_shape=(h, w, c),
        layout="NHWC",
    )


def resize_split(split: Split, size: tuple[int, int]) -> Split:
    """``split`` with its images resized to ``size`` = (H, W): bilinear, antialiased when
    downscaling (``torch.nn.functional.interpolate``); float32, labels unchanged.

    The splits are already normalised; resizing commutes with the per-channel normalisation
    (both are linear), so this equals resizing the raw images and normalising them again.
    Deterministic: the same input gives the same bytes.
    """
    import numpy as np
    import torch

    h, w = (int(s) for s in size)
    if tuple(split.x.shape[2:]) == (h, w):
        return split
    downscale = h < split.x.shape[2] or w < split.x.shape[3]
    out = np.empty((len(split), split.x.shape[1], h, w), dtype=np.float32)
    with torch.inference_mode():
        for i in range(0, len(split), 256):  # in chunks: bounded temporary memory
            x = torch.from_numpy(np.ascontiguousarray(split.x[i : i + 256], dtype=np.float32))
            y = torch.nn.functional.interpolate(
                x, size=(h, w), mode="bilinear", align_corners=False, antialias=downscale
            )
            out[i : i + len(x)] = y.numpy()
    return replace(split, x=out)


def resize_data(data: WorkloadData, size: tuple[int, int]) -> WorkloadData:
    """Every split of ``data`` resized to ``size`` = (H, W) (see :func:`resize_split`)."""
    h, w = (int(s) for s in size)
    if data.image_size == (h, w):
        return data
    if data.layout != "NCHW":  # resizing is a torch-model transform; ONNX models keep their size
        raise ValueError(f"resize_data takes NCHW data, got {data.layout}")
    return replace(
        data,
        train=None if data.train is None else resize_split(data.train, (h, w)),
        calib=resize_split(data.calib, (h, w)),
        eval=resize_split(data.eval, (h, w)),
        input_shape=(data.input_shape[0], h, w),
    )


@dataclass(frozen=True)
class WorkloadTraits:
    """What the search, the engine and the transforms' search spaces may ask of a workload's
    model, declared by the workload (:meth:`Workload.traits`) instead of probed attribute by
    attribute."""

    #: The model is a torch module: torch transforms (pruning, input resize) and torch targets
    #: (``cpu-torch``) may apply. False for an ONNX file.
    torch_source: bool = True
    #: The model accepts other input sizes than its native one (a CNN ending in global average
    #: pooling): the ``resize_input`` transform is then offered.
    allows_resolution: bool = False
    #: ``torch.export`` can capture the model (not a detector whose NMS depends on the data).
    torch_exportable: bool = True
    #: Quantized operators the model came with (0: a float model; int8 is then refused).
    prequantized: int = 0
    #: The batch size the model's input is fixed to; None when it is free.
    fixed_batch: int | None = None
    #: The model's native input (C, H, W) where another resolution is offered around it
    #: (``allows_resolution``); None otherwise.
    input_shape: tuple[int, int, int] | None = None
    #: The task's raw outputs have shapes that do not depend on the input's content (logits, a
    #: raw detection head): a quantizer may rank layers by how far they move the outputs.
    fixed_shape_outputs: bool = True


class Workload(abc.ABC):
    """A model source and its data. Subclasses: digits, torchvision, ONNX file."""

    #: Short name shown in reports (``digits``, ``resnet18``, ``model.onnx``).
    name: str
    #: False when the source is not a torch module (pruning and other torch transforms are off).
    allows_torch_transforms: bool = True
    #: True when the model accepts other input sizes than its native one (a CNN ending in global
    #: average pooling): the ``resize_input`` transform is then offered.
    allows_resolution: bool = False
    #: What the model's outputs mean and how they are judged (``[workload] task``).
    task: Task = Classification()
    #: ``[workload.data] slices``: a CSV naming slices of the eval images, or None.
    slices_file: Path | None = None

    @property
    def fixed_batch(self) -> int | None:
        """The batch size the model's input is fixed to (ONNX files), None when it is free."""
        return None

    @property
    def torch_exportable(self) -> bool:
        """Whether ``torch.export`` can capture the model (torch sources)."""
        return self.allows_torch_transforms

    @property
    def prequantized(self) -> int:
        """Quantized operators the model came with (ONNX files that come quantized)."""
        return 0

    def traits(self) -> WorkloadTraits:
        """The facts the search and the engine ask of this workload."""
        return WorkloadTraits(
            torch_source=self.allows_torch_transforms,
            allows_resolution=self.allows_resolution,
            torch_exportable=self.torch_exportable,
            prequantized=self.prequantized,
            fixed_batch=self.fixed_batch,
            input_shape=self.input_shape if self.allows_resolution else None,
            fixed_shape_outputs=self.task.fixed_shape_outputs,
        )

    @abc.abstractmethod
    def recipe(self) -> dict[str, Any]:
        """JSON-able description of everything that defines the model and the data."""

    @property
    def recipe_hash(self) -> str:
        """Content hash of :meth:`recipe` (file contents are hashed into the recipe itself)."""
        return hash_json(self.recipe())

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The model's native input (C, H, W)."""
        return self.data().input_shape

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
_BUILDER_MODULES = (
    "workloads.demos.digits",
    "workloads.sources.torchvision",
    "workloads.sources.torchvision_dense",
    "workloads.demos.shapes",
)


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
        from workloads.sources.layer_shapes import apply_layer_shapes

        apply_layer_shapes(module, meta["pruned_layers"])
    state = torch.load(io.BytesIO(artifact.files["state_dict.pt"]), weights_only=True)
    module.load_state_dict(state)
    return module.eval()


def cached_training(
    path: Path, train: Callable[[], tuple[bytes, dict[str, Any]]]
) -> tuple[bytes, dict[str, Any]]:
    """An embedded model's state and training report, from ``path`` (and ``path`` with the
    ``.json`` suffix) or trained now by ``train()`` and written there atomically (readers never
    see a torn file; two processes training at once both write whole files)."""
    import json

    report_path = path.with_suffix(".json")
    if not path.exists():
        state, report = train()
        atomic_write(report_path, json.dumps(report, indent=2).encode())
        atomic_write(path, state)
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    return path.read_bytes(), report


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and a rename (no torn files for readers)."""
    import os
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
