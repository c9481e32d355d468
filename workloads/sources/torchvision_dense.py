"""Torchvision detectors and segmenters by name, wrapped to tensor-only inputs and outputs.

torchvision's detection models take a list of images and return a list of dicts; its
segmentation models return a dict (``out``, optionally ``aux``). Runtimes, ``torch.export`` and
the ONNX exporter all need plain tensors, so each model is wrapped:

- :class:`DetectorWrapper`: ``(1, 3, H, W)`` float32 in [0, 1] -> ``boxes`` ``[N, 4]`` float32
  (x1, y1, x2, y2 in input pixels), ``scores`` ``[N]`` float32, ``labels`` ``[N]`` int64
  (torchvision category ids, 0 = background: SSDlite and Faster R-CNN never output it, RetinaNet
  and FCOS only if their weights score that column). ``N`` varies per image.
  Normalisation happens inside the model (torchvision's ``GeneralizedRCNNTransform``); resizing
  does not: the input must already be the model's input size (the task layer letterboxes).
- :class:`SegmenterWrapper`: ``(B, 3, H, W)`` float32 normalised with the ImageNet mean/std ->
  logits ``(B, num_classes, H, W)`` (the ``out`` head; an auxiliary head is dropped).

The wrapper keeps the torchvision model as its ``model`` attribute, so the wrapper's
``state_dict()`` is the torchvision one with a ``model.`` prefix. The user's weights are the
*plain* torchvision model's ``state_dict()``; :func:`build_detector` / :func:`build_segmenter`
check and load them into ``wrapper.model``. An artifact must store the wrapper's own
``state_dict()`` (``workloads.base.state_dict_bytes(module)``), which ``build_module`` loads back
through the registered builder and ``module.builder_kwargs``.

Importing this module does not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farm.errors import UsageError
from workloads.base import Workload, register_builder
from workloads.sources.torchvision import check_state_dict

if TYPE_CHECKING:
    from torch import nn

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
DETECTION_BUILDER = "torchvision_detection"
SEGMENTATION_BUILDER = "torchvision_segmentation"


def _spec(arch: str) -> DenseSpec:
    spec = DETECTORS.get(arch) or SEGMENTERS.get(arch)
    if spec is None:
        known = ", ".join([*DETECTORS, *SEGMENTERS])
        raise UsageError(f"`workload.model`: expected one of {known}, got {arch!r}")
    return spec


def num_classes_from_state(arch: str, state: dict[str, Any]) -> int | None:
    """Classes of the classifier in a plain torchvision ``state_dict`` (background included for
    the detectors, as torchvision counts them), or None when the key is absent."""
    spec = _spec(arch)
    weight = state.get(spec.classes_key)
    if weight is None:
        return None
    rows = int(weight.shape[0])
    if rows % spec.anchors_per_location:
        raise UsageError(
            f"`workload.weights`: {spec.classes_key} has {rows} rows, not a multiple of the "
            f"{spec.anchors_per_location} anchors per location of {arch!r}"
        )
    return rows // spec.anchors_per_location


def _frozen_bn_in(state: dict[str, Any] | None, spec: DenseSpec) -> bool:
    """Whether ``state`` comes from torchvision's pretrained construction (frozen BN)."""
    if state is None or not spec.frozen_bn_when_pretrained:
        return False
    bn_stats = [k for k in state if k.startswith("backbone.") and k.endswith(".running_var")]
    tracked = [k for k in state if k.startswith("backbone.") and k.endswith(".num_batches_tracked")]
    return bool(bn_stats) and not tracked


def _check_num_classes(num_classes: Any) -> int:
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise UsageError(f"`workload.num_classes`: expected an integer >= 2, got {num_classes!r}")
    return num_classes


def _check_input_size(input_size: Any) -> tuple[int, int]:
    ok = (
        isinstance(input_size, list | tuple)
        and len(input_size) == 2
        and all(isinstance(s, int) and not isinstance(s, bool) for s in input_size)
        and all(MIN_SIDE <= s <= MAX_SIDE for s in input_size)
    )
    if not ok:
        raise UsageError(
            f"`workload.input_size`: expected [H, W] with integers in [{MIN_SIDE}, {MAX_SIDE}], "
            f"got {input_size!r}"
        )
    return int(input_size[0]), int(input_size[1])


def _load_checked(
    model: nn.Module, state: dict[str, Any], arch: str, source: Path | str | None
) -> None:
    check_state_dict(model, state, Path(source) if source else Path("<state_dict>"), arch)
    model.load_state_dict(state)


# --------------------------------------------------------------------------------------------
# Detection


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


def build_detector(
    arch: str,
    num_classes: int,
    input_size: list[int] | tuple[int, int],
    state: dict[str, Any] | None = None,
    *,
    source: Path | str | None = None,
    score_thresh: float = DEFAULT_SCORE_THRESH,
    detections_per_img: int = DEFAULT_DETECTIONS_PER_IMG,
    frozen_bn: bool | None = None,
) -> nn.Module:
    """A detector in eval mode with tensor-only I/O (see :class:`DetectorWrapper`).

    ``state`` is a plain torchvision ``state_dict`` (checked: a mismatch is a
    :class:`UsageError` naming ``workload.weights`` and ``source``); without it the weights are
    random, seeded with :data:`INIT_SEED`. ``frozen_bn`` None means: as ``state`` says (see
    :attr:`DenseSpec.frozen_bn_when_pretrained`). ``module.builder_kwargs`` rebuilds the same
    architecture through the ``torchvision_detection`` builder.

    Sides that are multiples of 32 avoid padding: Faster R-CNN, RetinaNet and FCOS pad the
    normalised image bottom/right to a multiple of 32 (boxes stay in input pixels either way).
    """
    import torch

    if arch not in DETECTORS:
        raise UsageError(f"`workload.model`: expected one of {', '.join(DETECTORS)}, got {arch!r}")
    spec = DETECTORS[arch]
    num_classes = _check_num_classes(num_classes)
    size = _check_input_size(input_size)
    if (
        not isinstance(score_thresh, int | float)
        or isinstance(score_thresh, bool)
        or not 0.0 <= score_thresh < 1.0
    ):
        raise UsageError(f"`score_thresh`: expected a number in [0, 1), got {score_thresh!r}")
    if not isinstance(detections_per_img, int) or detections_per_img < 1:
        raise UsageError(
            f"`detections_per_img`: expected an integer >= 1, got {detections_per_img!r}"
        )
    if frozen_bn is None:
        frozen_bn = _frozen_bn_in(state, spec)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(INIT_SEED)
        model = _torchvision_detector(arch, num_classes)
    _configure_detector(model, size, float(score_thresh), detections_per_img)
    if frozen_bn:
        _freeze_backbone_bn(model)
    if state is not None:
        _load_checked(model, state, arch, source)
    wrapper = _classes()["DetectorWrapper"](model, size)
    wrapper.builder_kwargs = {
        "arch": arch,
        "num_classes": num_classes,
        "input_size": list(size),
        "score_thresh": float(score_thresh),
        "detections_per_img": detections_per_img,
        "frozen_bn": bool(frozen_bn),
    }
    return wrapper.eval()


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
    model.transform = _classes()["NoResizeTransform"](
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


# --------------------------------------------------------------------------------------------
# Segmentation


@register_builder(SEGMENTATION_BUILDER)
def torchvision_segmentation(arch: str, num_classes: int) -> nn.Module:
    """The builder recorded in artifacts: a seeded random segmenter (weights loaded by caller)."""
    return build_segmenter(arch, num_classes)


def build_segmenter(
    arch: str,
    num_classes: int,
    state: dict[str, Any] | None = None,
    *,
    source: Path | str | None = None,
) -> nn.Module:
    """A segmenter in eval mode with tensor-only I/O (see :class:`SegmenterWrapper`).

    Weights with an auxiliary head (``aux_classifier.*``, as torchvision's pretrained DeepLabV3
    and FCN have) are accepted and checked; the auxiliary head is then dropped, so it is neither
    run nor part of the wrapper's ``state_dict``. Without ``state`` the weights are random
    (seeded with :data:`INIT_SEED`).
    """
    import torch

    if arch not in SEGMENTERS:
        raise UsageError(f"`workload.model`: expected one of {', '.join(SEGMENTERS)}, got {arch!r}")
    num_classes = _check_num_classes(num_classes)
    aux = (
        SEGMENTERS[arch].has_aux
        and state is not None
        and any(k.startswith("aux_classifier.") for k in state)
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(INIT_SEED)
        model: Any = _torchvision_segmenter(arch, num_classes, aux)
    if state is not None:
        _load_checked(model, state, arch, source)
    if aux:
        model.aux_classifier = None
    wrapper = _classes()["SegmenterWrapper"](model)
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


# --------------------------------------------------------------------------------------------
# The torch-dependent classes


@cache
def _classes() -> dict[str, type]:
    """The torch-dependent classes, made on first use so that importing this module stays free
    of torch. They are reachable as module attributes (see ``__getattr__``), so they pickle."""
    import torch
    from torch import nn
    from torchvision.models.detection.transform import GeneralizedRCNNTransform

    class NoResizeTransform(GeneralizedRCNNTransform):
        """Normalises and batches but never resizes: inputs arrive at the model's input size.

        torchvision's transform resizes in eval mode even at scale 1 (an ``interpolate`` that
        would land in every exported graph); boxes come back in input pixels either way.
        """

        def resize(
            self, image: torch.Tensor, target: dict[str, torch.Tensor] | None = None
        ) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
            return image, target

    class DetectorWrapper(nn.Module):
        """``(1, 3, H, W)`` in [0, 1] -> (boxes ``[N, 4]``, scores ``[N]``, labels ``[N]``)."""

        builder_name = DETECTION_BUILDER

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

        builder_name = SEGMENTATION_BUILDER

        def __init__(self, model: nn.Module) -> None:
            super().__init__()
            self.model = model
            self.builder_kwargs: dict[str, Any] = {}

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model(x)["out"]

    classes: dict[str, type] = {
        "NoResizeTransform": NoResizeTransform,
        "DetectorWrapper": DetectorWrapper,
        "SegmenterWrapper": SegmenterWrapper,
    }
    for name, cls in classes.items():
        cls.__module__, cls.__qualname__ = __name__, name
    return classes


def __getattr__(name: str) -> Any:
    if name in ("NoResizeTransform", "DetectorWrapper", "SegmenterWrapper"):
        return _classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------------------------
# The workload


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
        data: Any,
        section: dict[str, Any],
    ) -> None:
        from workloads import tasks

        self.arch = arch
        self.weights = weights
        self._num_classes_arg = num_classes
        self.data_config = data
        self.section = dict(section)
        self.name = arch
        self.detector = arch in DETECTORS
        self.spec = _spec(arch)
        expected = "detection" if self.detector else "segmentation"
        given = tasks.task_name(self.section)
        if "task" in self.section and given != expected:
            raise UsageError(f"`workload.task`: {arch} is a {expected} model, got {given!r}")
        self.section["task"] = expected
        self.size = tasks.input_size(self.section) or self.spec.default_input_size
        self.letterbox = tasks.letterbox(self.section) if self.detector else False

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

        return load_state_dict_file(self.weights) if self.weights else None

    @property
    def num_classes(self) -> int:
        state = self._state()
        n = self._num_classes_arg
        if state is not None:
            found = num_classes_from_state(self.arch, state)
            if n is not None and found is not None and n != found:
                raise UsageError(
                    f"`workload.num_classes`: {n}, but the weights' classifier "
                    f"({self.spec.classes_key}) has {found} classes"
                )
            n = found or n
        if n is None and self.detector and self.data_config.eval_annotations is not None:
            from workloads.datasets.coco import read_coco

            coco = read_coco(self.data_config.eval_annotations, "workload.data.eval_annotations")
            n = max(coco.categories) + 1  # torchvision counts the background (id 0)
        if n is None:
            raise UsageError(
                f"`workload.num_classes`: required for {self.arch} without weights or "
                "annotations to read it from"
            )
        return n

    @property
    def task(self) -> Any:  # type: ignore[override]
        from workloads import tasks

        if self.detector:
            return tasks.make_task(
                self.section, outputs="boxes_scores_labels", class_ids="category_id"
            )
        return tasks.make_task(self.section, num_classes=self.num_classes)

    def recipe(self) -> dict[str, Any]:
        from importlib.metadata import version

        from workloads.base import hash_file
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
    def data(self) -> Any:
        from workloads.datasets import dense

        cfg = self.data_config
        pre = dense.Preprocess(self.size, self.letterbox, cfg.mean, cfg.std)
        task = "detection" if self.detector else "segmentation"
        return dense.task_data(task, cfg, pre, self.num_classes, self.section)

    def source_artifact(self, cache_dir: Path) -> Any:
        from farm.artifact import Artifact
        from workloads.base import state_dict_bytes

        state, source = self._state(), self.weights
        if self.detector:
            module = build_detector(self.arch, self.num_classes, self.size, state, source=source)
            outputs, batch = ["boxes", "scores", "labels"], 1
        else:
            module = build_segmenter(self.arch, self.num_classes, state, source=source)
            outputs, batch = ["logits"], None
        meta: dict[str, Any] = {
            "builder": DETECTION_BUILDER if self.detector else SEGMENTATION_BUILDER,
            "builder_kwargs": dict(module.builder_kwargs),  # type: ignore[arg-type]
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "output_names": outputs,
            "task": self.section["task"],
            "workload": self.name,
            "recipe_hash": self.recipe_hash,
            "pretrained": self.weights is not None,
        }
        if batch is not None:
            meta["batch"] = batch
        return Artifact("torch-state", {"state_dict.pt": state_dict_bytes(module)}, meta)
