"""The torch classes of :mod:`workloads.sources.torchvision_dense`: the wrappers that give
torchvision's detectors and segmenters tensor-only inputs and outputs.

- :class:`DetectorWrapper`: ``(1, 3, H, W)`` float32 in [0, 1] -> ``boxes`` ``[N, 4]`` float32
  (x1, y1, x2, y2 in input pixels), ``scores`` ``[N]`` float32, ``labels`` ``[N]`` int64
  (torchvision category ids, 0 = background: SSDlite and Faster R-CNN never output it, RetinaNet
  and FCOS only if their weights score that column). ``N`` varies per image.
  Normalisation happens inside the model (torchvision's ``GeneralizedRCNNTransform``); resizing
  does not: the input must already be the model's input size (the task layer letterboxes).
- :class:`KeypointWrapper`: the detector wrapper for a Keypoint R-CNN, returning also
  ``keypoints`` ``[N, K, 3]`` (x, y, 1 in input pixels) and ``keypoints_scores`` ``[N, K]``.
- :class:`SegmenterWrapper`: ``(B, 3, H, W)`` float32 normalised with the ImageNet mean/std ->
  logits ``(B, num_classes, H, W)`` (the ``out`` head; an auxiliary head is dropped).

The wrapper keeps the torchvision model as its ``model`` attribute, so the wrapper's
``state_dict()`` is the torchvision one with a ``model.`` prefix.

Imports torch: the configuration module imports this one when it builds a model.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchvision.models.detection.transform import GeneralizedRCNNTransform


class NoResizeTransform(GeneralizedRCNNTransform):
    """Normalises and batches but never resizes: inputs arrive at the model's input size.

    torchvision's transform resizes in eval mode even at scale 1 (an ``interpolate`` that would
    land in every exported graph); boxes come back in input pixels either way.
    """

    def resize(
        self, image: torch.Tensor, target: dict[str, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
        return image, target


class DetectorWrapper(nn.Module):
    """``(1, 3, H, W)`` in [0, 1] -> (boxes ``[N, 4]``, scores ``[N]``, labels ``[N]``)."""

    def __init__(self, model: nn.Module, input_size: tuple[int, int]) -> None:
        super().__init__()
        self.model = model
        self.input_size = input_size
        self.builder_kwargs: dict[str, Any] = {}

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if x.dim() != 4 or x.shape[0] != 1 or tuple(x.shape[2:]) != self.input_size:
            raise ValueError(
                f"expected an input of shape (1, 3, {self.input_size[0]}, "
                f"{self.input_size[1]}), got {tuple(x.shape)}"
            )
        detections = self.model([x[0]])[0]
        return detections["boxes"], detections["scores"], detections["labels"]


class SegmenterWrapper(nn.Module):
    """``(B, 3, H, W)`` normalised -> logits ``(B, num_classes, H, W)``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.builder_kwargs: dict[str, Any] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"]


class KeypointWrapper(DetectorWrapper):
    """``(1, 3, H, W)`` in [0, 1] -> (boxes ``[N, 4]``, scores ``[N]``, labels ``[N]``,
    keypoints ``[N, K, 3]``, keypoints_scores ``[N, K]``): a Keypoint R-CNN's outputs."""

    OUTPUTS = ("boxes", "scores", "labels", "keypoints", "keypoints_scores")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        if x.dim() != 4 or x.shape[0] != 1 or tuple(x.shape[2:]) != self.input_size:
            raise ValueError(
                f"expected an input of shape (1, 3, {self.input_size[0]}, "
                f"{self.input_size[1]}), got {tuple(x.shape)}"
            )
        found = self.model([x[0]])[0]
        return tuple(found[name] for name in self.OUTPUTS)
