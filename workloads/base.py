"""The workload interface: a model source, its data, and the task that judges its outputs.

A :class:`Workload` says what model is optimized (a builder that returns a ``torch.nn.Module``,
or an ONNX file), on which data it is calibrated, fine-tuned and evaluated, and what its outputs
mean (its :attr:`Workload.task`: there is no default task, every workload states its own). The
engine, the search and the transforms' search spaces ask a workload what they need through
:meth:`Workload.traits`, never attribute by attribute.

Everything here is cheap to import: torch is imported only inside the functions that need it,
because validating a job file must not import torch.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farm._io import hash_json

if TYPE_CHECKING:
    from farm.artifact import Artifact
    from workloads.calib_overlap import CalibrationOrigin
    from workloads.data import WorkloadData
    from workloads.tasks.base import Task


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
    #: The model's native input without the batch, in its own layout ((C, H, W) or, for a
    #: channels-last ONNX model, (H, W, C)); None when not known (spec checks).
    input_shape: tuple[int, ...] | None = None
    #: The outputs' shapes do not depend on the input's content (the task's
    #: ``fixed_shape_outputs``): quantizers may rank layers by how far quantizing each moves
    #: the outputs (mixed precision).
    fixed_shape_outputs: bool = True


class Workload(abc.ABC):
    """A model source, its data and its task. Subclasses: the embedded demos (digits, shapes),
    torchvision classifiers and dense models, a user's ONNX file.

    Subclasses declare their model's facts with the class attributes and properties below;
    :meth:`traits` gathers them for the engine."""

    #: Short name shown in reports (``digits``, ``resnet18``, ``model.onnx``).
    name: str
    #: False when the source is not a torch module (pruning and other torch transforms are off).
    allows_torch_transforms: bool = True
    #: True when the model accepts other input sizes than its native one (a CNN ending in global
    #: average pooling): the ``resize_input`` transform is then offered.
    allows_resolution: bool = False
    #: ``[workload.data] slices``: a CSV naming slices of the eval images, or None.
    slices_file: Path | None = None
    #: How the calibration images were chosen (set by :func:`workloads.load_workload`).
    calib_origin: CalibrationOrigin | None = None

    @property
    @abc.abstractmethod
    def task(self) -> Task:
        """What the model's outputs mean and how they are judged (``[workload] task``)."""

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
            input_shape=tuple(self.input_shape),
            fixed_shape_outputs=self.task.fixed_shape_outputs,
        )

    def validate(self) -> None:  # noqa: B027 - optional hook
        """Check everything about the model and the job's fields that can be checked without
        reading the data, raising a :class:`~farm.errors.SpecError` naming the job file and the
        field. :func:`workloads.load_workload` calls it, so a bad job fails before anything
        runs."""

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
