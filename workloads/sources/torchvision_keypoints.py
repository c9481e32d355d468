"""torchvision's Keypoint R-CNN with the user's weights as the model source of a keypoints job
(``[workload] model = "keypointrcnn_resnet50_fpn"``, ``weights = "state_dict.pt"``).

The model is built as torchvision builds it (seeded random weights when the job gives none),
with the detectors' settings for COCO evaluation (no resizing inside the model, a low score
threshold, 100 detections), and wrapped to take ``(1, 3, H, W)`` in [0, 1] and return
``boxes [N, 4]``, ``scores [N]``, ``labels [N]`` (category ids), ``keypoints [N, K, 3]``
(x, y and a visibility torchvision always sets to 1, input pixels) and ``keypoints_scores
[N, K]``: the keypoints task's ``boxes_scores_labels_keypoints`` convention. The number of
classes comes from the weights, the job or the annotations as for the other torchvision
detectors; the number of keypoints from the weights (17 without them).

Only the TorchScript exporter captures it (``torch.export`` fails on its data-dependent
heads), as for the other torchvision detectors: ``cpu-torch`` is refused. ONNX Runtime runs its
ONNX export as torch runs the model; OpenVINO runs it too (after the export inlines
torchvision's empty-NMS ``If``), but on a random-weight model its boxes and poses are not
torch's (not yet explained; the tests record it). Importing this module does not import torch.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workloads.sources import torchvision_dense as dense
from workloads.sources.builders import register_builder, state_dict_bytes
from workloads.tasks import ModelFacts, Task, make_task

if TYPE_CHECKING:
    from torch import nn

    from farm.artifact import Artifact

KEYPOINTS_BUILDER = "torchvision_keypoints"
#: The state_dict key whose second axis is the number of keypoints.
KEYPOINTS_KEY = "roi_heads.keypoint_predictor.kps_score_lowres.weight"
#: The wrapper's outputs (``KeypointWrapper.OUTPUTS``), in the task's convention's order.
OUTPUTS = ["boxes", "scores", "labels", "keypoints", "keypoints_scores"]
COCO_KEYPOINTS = 17


@register_builder(KEYPOINTS_BUILDER)
def torchvision_keypoints(
    arch: str,
    num_classes: int,
    num_keypoints: int,
    input_size: list[int] | tuple[int, int],
    frozen_bn: bool = False,
) -> nn.Module:
    """The builder recorded in artifacts: a seeded random Keypoint R-CNN (weights loaded by the
    caller)."""
    return build_keypoint_detector(
        arch, num_classes, num_keypoints, input_size, frozen_bn=frozen_bn
    )


def build_keypoint_detector(
    arch: str,
    num_classes: int,
    num_keypoints: int,
    input_size: list[int] | tuple[int, int],
    state: dict[str, Any] | None = None,
    *,
    weights: Path | None = None,
    job: str = "<memory>",
    frozen_bn: bool | None = None,
) -> nn.Module:
    """A Keypoint R-CNN in eval mode with tensor-only I/O; ``state`` (read from ``weights``)
    is checked against the architecture, a mismatch named as ``workload.weights`` of ``job``."""
    import torch
    from torchvision.models import detection

    from workloads.sources.torchvision import check_state_dict
    from workloads.sources.torchvision_dense_nets import KeypointWrapper

    dense._check_arguments(arch, dense.KEYPOINT_DETECTORS, num_classes)
    size = (int(input_size[0]), int(input_size[1]))
    if frozen_bn is None:
        frozen_bn = dense.frozen_bn_in(state, dense.KEYPOINT_DETECTORS[arch])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(dense.INIT_SEED)
        model = detection.keypointrcnn_resnet50_fpn(
            weights=None,
            weights_backbone=None,
            num_classes=num_classes,
            num_keypoints=num_keypoints,
        )
    dense._configure_detector(
        model, size, dense.DEFAULT_SCORE_THRESH, dense.DEFAULT_DETECTIONS_PER_IMG
    )
    if frozen_bn:
        dense._freeze_backbone_bn(model)
    if state is not None:
        check_state_dict(model, state, weights or Path("<state_dict>"), arch, job)
        model.load_state_dict(state)
    wrapper = KeypointWrapper(model, size)
    wrapper.builder_kwargs = {
        "arch": arch,
        "num_classes": num_classes,
        "num_keypoints": num_keypoints,
        "input_size": list(size),
        "frozen_bn": bool(frozen_bn),
    }
    return wrapper.eval()


def num_keypoints_from_state(state: dict[str, Any] | None) -> int:
    """The keypoints the weights predict (torchvision's default, 17, without weights)."""
    weight = None if state is None else state.get(KEYPOINTS_KEY)
    return COCO_KEYPOINTS if weight is None else int(weight.shape[1])


class TorchvisionKeypointsWorkload(dense.TorchvisionDenseWorkload):
    """A torchvision Keypoint R-CNN with the user's weights (task keypoints)."""

    @cached_property
    def num_keypoints(self) -> int:
        return num_keypoints_from_state(self._state())

    @cached_property
    def task(self) -> Task:
        facts = ModelFacts(
            outputs="boxes_scores_labels_keypoints",
            class_ids="category_id",
            metadata={"kpt_shape": f"[{self.num_keypoints}, 3]"},
        )
        return make_task(self.task_name, self.fields, facts)

    def source_artifact(self, cache_dir: Path) -> Artifact:
        from farm.artifact import Artifact

        module = build_keypoint_detector(
            self.arch,
            self.num_classes,
            self.num_keypoints,
            self.size,
            self._state(),
            weights=self.weights,
            job=self.source,
        )
        meta: dict[str, Any] = {
            "builder": KEYPOINTS_BUILDER,
            "builder_kwargs": dict(module.builder_kwargs),  # type: ignore[arg-type]
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "output_names": OUTPUTS,
            "task": self.task_name,
            "workload": self.name,
            "recipe_hash": self.recipe_hash,
            "pretrained": self.weights is not None,
            "batch": 1,
        }
        return Artifact("torch-state", {"state_dict.pt": state_dict_bytes(module)}, meta)
