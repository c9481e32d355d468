"""The data of a workload: splits of preprocessed images and what the tasks judge them by.

:class:`Split` and :class:`WorkloadData` are plain, picklable containers (they travel to build
and evaluate workers through Ray); :func:`channels_last`, :func:`resize_split` and
:func:`resize_data` are the only transformations of them. This module imports no task and no
model source, so every other part of ``workloads`` may import it (numpy at import time only;
torch inside the resize functions).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True, eq=False)
class Split:
    """One data split: ``x`` float32 images in the model's layout (NCHW, or NHWC for a
    channels-last ONNX model, see :attr:`WorkloadData.layout`), preprocessed and normalised.

    ``y`` holds int64 class labels (classification). Dense tasks keep their ground truth per
    sample in ``truth`` (detection: a dict of ``boxes`` xyxy in original image pixels, ``labels``
    as category ids, ``iscrowd`` and ``area``; segmentation: the class-index mask at the original
    image size; text recognition: the line's string as the label file writes it; text
    detection: its ``TextRegion`` polygons in original image pixels) and what preprocessing did
    to each image in ``info`` (file, image id, original size, scale and padding), so that
    predictions can be mapped back to the original image. All three are None when the split
    has no labels (synthetic inputs, calibration images).

    ``ids`` names each image stably: its file's path relative to its data folder
    (``cat/0042.png``, ``000000139.jpg``), or ``<dataset>/<index>`` for embedded and generated
    data (``digits/0042``, ``synthetic/7``). Per-image evidence is keyed by it, so two trials,
    in one job or in two, are compared image by image only when their ids agree.
    """

    x: np.ndarray
    y: np.ndarray | None = None
    truth: tuple[Any, ...] | None = None
    info: tuple[dict[str, Any], ...] | None = None
    ids: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.ids is not None and len(self.ids) != len(self.x):
            raise ValueError(f"a split of {len(self.x)} images has {len(self.ids)} ids")

    def image_ids(self, dataset: str = "image") -> tuple[str, ...]:
        """The images' stable ids: :attr:`ids`, else each ``info``'s ``file``, else
        ``<dataset>/<index>``."""
        if self.ids is not None:
            return self.ids
        infos = self.info or (None,) * len(self)
        return tuple(
            str(info["file"]) if info and "file" in info else f"{dataset}/{i}"
            for i, info in enumerate(infos)
        )

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
            None if self.ids is None else tuple(self.ids[i] for i in idx),
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
