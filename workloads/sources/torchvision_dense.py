"""Torchvision detectors and segmenters by name: which ones, what the farm knows of each, and the
workload that makes one the model source of a job (``[workload] model = "ssdlite320_…"``).

torchvision's detection models take a list of images and return a list of dicts; its
segmentation models return a dict. Runtimes, ``torch.export`` and the ONNX exporter all need
plain tensors, so each model is wrapped (:mod:`workloads.sources.torchvision_dense_nets`):
a detector takes ``(1, 3, H, W)`` in [0, 1] and returns ``boxes, scores, labels`` (category
ids); a segmenter takes ``(B, 3, H, W)`` normalised images and returns ``(B, C, H, W)`` logits.

Importing this module does not import torch: torch, torchvision and the wrappers are imported
when a model is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farm._io import hash_file
from farm._validate import Fields, is_integer, is_number
from farm.errors import SpecError
from workloads import fields
from workloads.base import Workload
from workloads.data import WorkloadData
from workloads.datasets.config import DataConfig
from workloads.sources.builders import register_builder, state_dict_bytes
from workloads.sources.torchvision import check_state_dict
from workloads.tasks import ModelFacts, Task, make_task

if TYPE_CHECKING:
    from torch import nn

    from farm.artifact import Artifact

#: Seed of the random initialisation when no weights are given.
INIT_SEED = 0
#: Post-processing defaults for mAP evaluation: COCO's AP uses at most 100 detections per image,
#: and a low score threshold keeps the low-confidence tail that AP integrates over (YOLO
#: validates at 0.001 too). torchvision's own defaults differ per model (0.001 … 0.2; 100 … 300).
DEFAULT_SCORE_THRESH = 0.001
DEFAULT_DETECTIONS_PER_IMG = 100
MIN_SIDE, MAX_SIDE = 64, 2048


@dataclass(frozen=True)
class DenseSpec:
    """What the farm needs to know about one torchvision dense-prediction architecture."""

    #: (H, W) used when a job gives none (the resolution torchvision trains it at, squared;
    #: 640 for the ResNet-50 detectors, whose native 800-1333 is too slow for a CPU search).
    default_input_size: tuple[int, int]
    #: The state_dict key whose rows are ``num_classes * anchors_per_location``.
    classes_key: str
    anchors_per_location: int = 1
    #: torchvision builds the backbone with ``FrozenBatchNorm2d`` (no ``num_batches_tracked``
    #: buffers, eps 1e-5) when pretrained weights are given: weights fine-tuned from those lack
    #: the buffers, and the model must be built the same way to load them exactly.
    frozen_bn_when_pretrained: bool = False
    #: The architecture may carry an auxiliary head (``aux_classifier.*``) in its weights.
    has_aux: bool = False


DETECTORS: dict[str, DenseSpec] = {
    "ssdlite320_mobilenet_v3_large": DenseSpec(
        (320, 320), "head.classification_head.module_list.0.1.weight", anchors_per_location=6
    ),
    "fasterrcnn_mobilenet_v3_large_320_fpn": DenseSpec(
        (320, 320), "roi_heads.box_predictor.cls_score.weight", frozen_bn_when_pretrained=True
    ),
    "retinanet_resnet50_fpn_v2": DenseSpec(
        (640, 640), "head.classification_head.cls_logits.weight", anchors_per_location=9
    ),
    "fcos_resnet50_fpn": DenseSpec(
        (640, 640), "head.classification_head.cls_logits.weight", frozen_bn_when_pretrained=True
    ),
}
SEGMENTERS: dict[str, DenseSpec] = {
    "lraspp_mobilenet_v3_large": DenseSpec((520, 520), "classifier.high_classifier.weight"),
    "deeplabv3_mobilenet_v3_large": DenseSpec((520, 520), "classifier.4.weight", has_aux=True),
    "fcn_resnet50": DenseSpec((520, 520), "classifier.4.weight", has_aux=True),
}
#: Keypoint detectors (task keypoints), built by :mod:`workloads.sources.torchvision_keypoints`.
KEYPOINT_DETECTORS: dict[str, DenseSpec] = {
    "keypointrcnn_resnet50_fpn": DenseSpec(
        (320, 320), "roi_heads.box_predictor.cls_score.weight", frozen_bn_when_pretrained=True
    ),
}
DETECTION_BUILDER = "torchvision_detection"
SEGMENTATION_BUILDER = "torchvision_segmentation"
#: The ``[workload]`` fields of a torchvision dense source (besides the task's).
FIELDS = frozenset({"model", "weights", "num_classes", "data"})


def num_classes_from_state(
    arch: str, state: dict[str, Any], source: str = "<memory>"
) -> int | None:
    """Classes of the classifier in a plain torchvision ``state_dict`` (background included for
    the detectors, as torchvision counts them), or None when the key is absent."""
    spec = {**DETECTORS, **SEGMENTERS, **KEYPOINT_DETECTORS}[arch]
    weight = state.get(spec.classes_key)
    if weight is None:
        return None
    rows = int(weight.shape[0])
    if rows % spec.anchors_per_location:
        raise SpecError(
            source,
            "workload.weights",
            f"{spec.classes_key} with a multiple of the {spec.anchors_per_location} anchors per "
            f"location of {arch!r} as rows",
            f"{rows} rows",
        )
    return rows // spec.anchors_per_location


def frozen_bn_in(state: dict[str, Any] | None, spec: DenseSpec) -> bool:
    """Whether ``state`` comes from torchvision's pretrained construction (frozen BN)."""
    if state is None or not spec.frozen_bn_when_pretrained:
        return False
    bn_stats = [k for k in state if k.startswith("backbone.") and k.endswith(".running_var")]
    tracked = [k for k in state if k.startswith("backbone.") and k.endswith(".num_batches_tracked")]
    return bool(bn_stats) and not tracked


@register_builder(DETECTION_BUILDER)
def torchvision_detection(
    arch: str,
    num_classes: int,
    input_size: list[int] | tuple[int, int],
    score_thresh: float = DEFAULT_SCORE_THRESH,
    detections_per_img: int = DEFAULT_DETECTIONS_PER_IMG,
    frozen_bn: bool = False,
) -> nn.Module:
    """The builder recorded in artifacts: a seeded random detector (weights loaded by caller)."""
    return build_detector(
        arch,
        num_classes,
        input_size,
        score_thresh=score_thresh,
        detections_per_img=detections_per_img,
        frozen_bn=frozen_bn,
    )


@register_builder(SEGMENTATION_BUILDER)
def torchvision_segmentation(arch: str, num_classes: int) -> nn.Module:
    """The builder recorded in artifacts: a seeded random segmenter (weights loaded by caller)."""
    return build_segmenter(arch, num_classes)


# -- building the models (torch imported here) ---------------------------------------------


def build_detector(
    arch: str,
    num_classes: int,
    input_size: list[int] | tuple[int, int],
    state: dict[str, Any] | None = None,
    *,
    weights: Path | None = None,
    job: str = "<memory>",
    score_thresh: float = DEFAULT_SCORE_THRESH,
    detections_per_img: int = DEFAULT_DETECTIONS_PER_IMG,
    frozen_bn: bool | None = None,
) -> nn.Module:
    """A detector in eval mode with tensor-only I/O (see :class:`DetectorWrapper`).

    ``state`` is a plain torchvision ``state_dict`` read from ``weights`` (checked: a mismatch
    is a :class:`~farm.errors.SpecError` naming the job file ``job``, ``workload.weights`` and
    the file); without it the weights are random, seeded with :data:`INIT_SEED`. ``frozen_bn``
    None means: as ``state`` says (see ``DenseSpec.frozen_bn_when_pretrained``).
    ``module.builder_kwargs`` rebuilds the same architecture through the
    ``torchvision_detection`` builder.

    Sides that are multiples of 32 avoid padding: Faster R-CNN, RetinaNet and FCOS pad the
    normalised image bottom/right to a multiple of 32 (boxes stay in input pixels either way).
    """
    import torch

    from workloads.sources.torchvision_dense_nets import DetectorWrapper

    _check_arguments(arch, DETECTORS, num_classes)
    size = (int(input_size[0]), int(input_size[1])) if len(input_size) == 2 else (0, 0)
    if not all(MIN_SIDE <= s <= MAX_SIDE for s in size):
        raise ValueError(
            f"`{MIN_SIDE} <= side <= {MAX_SIDE}` must hold for both sides of input_size, "
            f"got input_size={list(input_size)!r}"
        )
    if not is_number(score_thresh) or not 0.0 <= score_thresh < 1.0:
        raise ValueError(f"`0 <= score_thresh < 1` must hold, got score_thresh={score_thresh!r}")
    if not is_integer(detections_per_img) or detections_per_img < 1:
        raise ValueError(
            f"`detections_per_img >= 1` must hold, got detections_per_img={detections_per_img!r}"
        )
    if frozen_bn is None:
        frozen_bn = frozen_bn_in(state, DETECTORS[arch])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(INIT_SEED)
        model = _torchvision_detector(arch, num_classes)
    _configure_detector(model, size, float(score_thresh), detections_per_img)
    if frozen_bn:
        _freeze_backbone_bn(model)
    if state is not None:
        check_state_dict(model, state, weights or Path("<state_dict>"), arch, job)
        model.load_state_dict(state)
    wrapper = DetectorWrapper(model, size)
    wrapper.builder_kwargs = {
        "arch": arch,
        "num_classes": num_classes,
        "input_size": list(size),
        "score_thresh": float(score_thresh),
        "detections_per_img": detections_per_img,
        "frozen_bn": bool(frozen_bn),
    }
    return wrapper.eval()


def _check_arguments(arch: str, known: dict[str, Any], num_classes: int) -> None:
    if arch not in known:
        raise ValueError(f"`arch` must be one of {list(known)}, got arch={arch!r}")
    if not is_integer(num_classes) or num_classes < 2:
        raise ValueError(f"`num_classes >= 2` must hold, got num_classes={num_classes!r}")


def _torchvision_detector(arch: str, num_classes: int) -> nn.Module:
    from torchvision.models import detection

    builders = {
        "ssdlite320_mobilenet_v3_large": detection.ssdlite320_mobilenet_v3_large,
        "fasterrcnn_mobilenet_v3_large_320_fpn": detection.fasterrcnn_mobilenet_v3_large_320_fpn,
        "retinanet_resnet50_fpn_v2": detection.retinanet_resnet50_fpn_v2,
        "fcos_resnet50_fpn": detection.fcos_resnet50_fpn,
    }
    return builders[arch](weights=None, weights_backbone=None, num_classes=num_classes)


def _configure_detector(
    model: Any, size: tuple[int, int], score_thresh: float, detections_per_img: int
) -> None:
    """No resizing inside the model, and post-processing settings fit for mAP."""
    old = model.transform
    from workloads.sources.torchvision_dense_nets import NoResizeTransform

    model.transform = NoResizeTransform(
        min(size),
        max(size),
        old.image_mean,
        old.image_std,
        size_divisible=old.size_divisible,
        fixed_size=(size[1], size[0]),  # torchvision's fixed_size is (W, H)
    )
    if hasattr(model, "roi_heads"):  # two-stage (Faster R-CNN)
        model.roi_heads.score_thresh = score_thresh
        model.roi_heads.detections_per_img = detections_per_img
    else:  # SSD, RetinaNet, FCOS
        model.score_thresh = score_thresh
        model.detections_per_img = detections_per_img


def _freeze_backbone_bn(model: Any) -> None:
    """Replace the backbone's BatchNorm2d by FrozenBatchNorm2d (eps 1e-5), as torchvision does
    when it builds these detectors from pretrained weights."""
    from torch import nn
    from torchvision.ops import FrozenBatchNorm2d

    for parent in list(model.backbone.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.BatchNorm2d):
                setattr(parent, name, FrozenBatchNorm2d(child.num_features))


# -- segmentation ----------------------------------------------------------------------------


def build_segmenter(
    arch: str,
    num_classes: int,
    state: dict[str, Any] | None = None,
    *,
    weights: Path | None = None,
    job: str = "<memory>",
) -> nn.Module:
    """A segmenter in eval mode with tensor-only I/O (see :class:`SegmenterWrapper`).

    Weights with an auxiliary head (``aux_classifier.*``, as torchvision's pretrained DeepLabV3
    and FCN have) are accepted and checked; the auxiliary head is then dropped, so it is neither
    run nor part of the wrapper's ``state_dict``. Without ``state`` the weights are random
    (seeded with :data:`INIT_SEED`).
    """
    import torch

    from workloads.sources.torchvision_dense_nets import SegmenterWrapper

    _check_arguments(arch, SEGMENTERS, num_classes)
    aux = (
        SEGMENTERS[arch].has_aux
        and state is not None
        and any(k.startswith("aux_classifier.") for k in state)
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(INIT_SEED)
        model: Any = _torchvision_segmenter(arch, num_classes, aux)
    if state is not None:
        check_state_dict(model, state, weights or Path("<state_dict>"), arch, job)
        model.load_state_dict(state)
    if aux:
        model.aux_classifier = None
    wrapper = SegmenterWrapper(model)
    wrapper.builder_kwargs = {"arch": arch, "num_classes": num_classes}
    return wrapper.eval()


def _torchvision_segmenter(arch: str, num_classes: int, aux: bool) -> nn.Module:
    from torchvision.models import segmentation

    if arch == "lraspp_mobilenet_v3_large":  # no auxiliary head in this architecture
        return segmentation.lraspp_mobilenet_v3_large(
            weights=None, weights_backbone=None, num_classes=num_classes
        )
    builders = {
        "deeplabv3_mobilenet_v3_large": segmentation.deeplabv3_mobilenet_v3_large,
        "fcn_resnet50": segmentation.fcn_resnet50,
    }
    return builders[arch](
        weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=aux
    )


# -- the workload ----------------------------------------------------------------------------


class TorchvisionDenseWorkload(Workload):
    """A torchvision detector or segmenter with the user's weights (or seeded random ones) as
    the model source of a job (``[workload] model = "fasterrcnn_mobilenet_v3_large_320_fpn"``).

    The task follows the architecture: detectors are ``boxes_scores_labels`` models whose labels
    are category ids (0 = background, as torchvision trains them), segmenters ``[B, C, H, W]``
    score maps. ``num_classes`` comes from the weights, else the job, else (detection) the
    largest category id of the annotations + 1. Detectors take one image per batch and cannot be
    captured by ``torch.export`` (their NMS is data-dependent), so ``cpu-torch`` is refused.
    """

    allows_resolution = False
    allows_torch_transforms = True

    def __init__(
        self,
        arch: str,
        weights: Path | None,
        num_classes: int | None,
        data: DataConfig,
        section: Fields,
    ) -> None:
        self.arch = arch
        self.weights = weights
        self._num_classes_arg = num_classes
        self.data_config = data
        self.fields = section
        self.source = str(section.source)
        self.name = arch
        self.detector = arch in DETECTORS or arch in KEYPOINT_DETECTORS
        self.spec = {**DETECTORS, **SEGMENTERS, **KEYPOINT_DETECTORS}[arch]
        kinds = ("keypoints", KEYPOINT_DETECTORS), ("detection", DETECTORS)
        self.task_name = next((t for t, known in kinds if arch in known), "segmentation")
        given = section.string("task", self.task_name)
        if given != self.task_name:
            raise section.error(
                "task", f"{self.task_name!r}: {arch} is a {self.task_name} model", given
            )
        #: The ``[workload]`` table with the task the architecture decides (the recipe's).
        self.section = {**section.table, "task": self.task_name}
        size = fields.input_size(section) or self.spec.default_input_size
        if not all(MIN_SIDE <= s <= MAX_SIDE for s in size):
            raise section.error(
                "input_size", f"[H, W] with integers in [{MIN_SIDE}, {MAX_SIDE}]", list(size)
            )
        self.size = size
        self.letterbox = fields.letterbox(section) if self.detector else False

    def validate(self) -> None:
        """The task's fields and the class count (from the weights, the job or the data)."""
        self.task  # noqa: B018 - the task's fields, checked
        self.num_classes  # noqa: B018 - the weights, the job's count and the data agree

    @property
    def torch_exportable(self) -> bool:
        return not self.detector

    @property
    def fixed_batch(self) -> int | None:
        return 1 if self.detector else None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (3, *self.size)

    @cache  # noqa: B019 - one workload object per job
    def _state(self) -> dict[str, Any] | None:
        from workloads.sources.torchvision import load_state_dict_file

        return load_state_dict_file(self.weights, self.source) if self.weights else None

    @property
    def num_classes(self) -> int:
        state = self._state()
        n = self._num_classes_arg
        if state is not None:
            found = num_classes_from_state(self.arch, state, self.source)
            if n is not None and found is not None and n != found:
                raise self.fields.error(
                    "num_classes",
                    f"{found}, the classes of the weights' classifier ({self.spec.classes_key})",
                    n,
                )
            n = found or n
        if n is None and self.detector and self.data_config.eval_annotations is not None:
            from workloads.datasets.coco import read_coco

            field = "workload.data.eval_annotations"
            coco = read_coco(self.data_config.eval_annotations, field, self.source)
            n = max(coco.categories) + 1  # torchvision counts the background (id 0)
        if n is None:
            raise self.fields.error(
                "num_classes",
                f"an integer >= 2: required for {self.arch} without weights or annotations to "
                "read it from",
            )
        return n

    @cached_property
    def task(self) -> Task:
        if self.detector:
            facts = ModelFacts(outputs="boxes_scores_labels", class_ids="category_id")
        else:
            facts = ModelFacts(num_classes=self.num_classes)
        return make_task(self.task_name, self.fields, facts)

    def recipe(self) -> dict[str, Any]:
        from importlib.metadata import version

        from workloads.datasets.imagefolder import data_fingerprint

        return {
            "workload": "torchvision-dense",
            "arch": self.arch,
            "weights_sha256": hash_file(self.weights) if self.weights else None,
            "init_seed": None if self.weights else INIT_SEED,
            "num_classes": self._num_classes_arg,
            "task": {k: v for k, v in sorted(self.section.items()) if k != "data"},
            "input_size": list(self.size),
            "data": data_fingerprint(self.data_config),
            "torchvision": version("torchvision"),
        }

    @cache  # noqa: B019 - one workload object per job
    def data(self) -> WorkloadData:
        from workloads.datasets import dense

        cfg = self.data_config
        pre = dense.Preprocess(self.size, self.letterbox, cfg.mean, cfg.std)
        names = None if self.detector else fields.class_names(self.fields, self.num_classes)
        return dense.task_data(self.task.truth, cfg, pre, self.num_classes, names)

    def source_artifact(self, cache_dir: Path) -> Artifact:
        from farm.artifact import Artifact

        state, job = self._state(), self.source
        module: nn.Module
        if self.detector:
            module = build_detector(
                self.arch, self.num_classes, self.size, state, weights=self.weights, job=job
            )
            outputs, batch = ["boxes", "scores", "labels"], 1
        else:
            module = build_segmenter(
                self.arch, self.num_classes, state, weights=self.weights, job=job
            )
            outputs, batch = ["logits"], None
        meta: dict[str, Any] = {
            "builder": DETECTION_BUILDER if self.detector else SEGMENTATION_BUILDER,
            "builder_kwargs": dict(module.builder_kwargs),  # type: ignore[arg-type]
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "output_names": outputs,
            "task": self.task_name,
            "workload": self.name,
            "recipe_hash": self.recipe_hash,
            "pretrained": self.weights is not None,
        }
        if batch is not None:
            meta["batch"] = batch
        return Artifact("torch-state", {"state_dict.pt": state_dict_bytes(module)}, meta)
