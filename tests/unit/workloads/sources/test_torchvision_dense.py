"""Torchvision detectors and segmenters as farm models: tensor-only I/O, the user's weights,
the architecture deciding the task."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest

from farm.errors import SpecError
from workloads.sources import torchvision_dense as td
from workloads.sources.torchvision import load_state_dict_file

DET = "ssdlite320_mobilenet_v3_large"  # the fastest detector to build and run
SEG = "lraspp_mobilenet_v3_large"
#: Random SSDlite weights give every class the same softmax score (1 / classes), so all
#: candidates pass the 0.001 threshold and NMS cost grows with the class count: keep it small.
FEW = 3


def _plain_detector(arch: str, num_classes: int, seed: int = 1) -> Any:
    """What a user fine-tunes and saves: the plain torchvision model (no farm wrapper)."""
    import torch
    from torchvision.models import detection

    torch.manual_seed(seed)
    model = getattr(detection, arch)(weights=None, weights_backbone=None, num_classes=num_classes)
    return model.eval()


def _save(state: dict[str, Any], path: Path) -> Path:
    import torch

    torch.save(state, path)
    return path


def _image(h: int, w: int, seed: int = 0) -> Any:
    import torch

    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, h, w, generator=g) * 0.3 + 0.2
    x[:, :, h // 4 : h // 2, w // 3 : 2 * w // 3] = torch.tensor([0.9, 0.1, 0.1])[:, None, None]
    return x


@pytest.fixture(scope="module")
def ssdlite() -> Any:
    """One random SSDlite at a non-square input size, shared by the read-only tests."""
    return td.build_detector(DET, FEW, [128, 192])


def test_detector_outputs_boxes_scores_labels_in_input_pixels(ssdlite: Any) -> None:
    import torch

    h, w = 128, 192
    model = ssdlite
    seen: list[tuple[int, ...]] = []
    hook = model.model.backbone.register_forward_pre_hook(
        lambda m, args: seen.append(args[0].shape)
    )
    with torch.no_grad():
        boxes, scores, labels = model(_image(h, w))
    hook.remove()
    # no resize inside the model: the backbone sees the input size
    assert seen == [(1, 3, h, w)]
    n = boxes.shape[0]
    assert 0 < n <= td.DEFAULT_DETECTIONS_PER_IMG
    assert boxes.shape == (n, 4) and boxes.dtype == torch.float32
    assert scores.shape == (n,) and scores.dtype == torch.float32
    assert labels.shape == (n,) and labels.dtype == torch.int64
    assert bool((boxes[:, 0] >= 0).all() and (boxes[:, 2] <= w).all())
    assert bool((boxes[:, 1] >= 0).all() and (boxes[:, 3] <= h).all())
    assert bool((boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all())
    assert bool((scores >= td.DEFAULT_SCORE_THRESH).all() and (scores <= 1).all())
    assert bool(((labels >= 1) & (labels < FEW)).all())  # 0 is background, never predicted
    assert not model.training
    assert model.builder_kwargs == {
        "arch": DET,
        "num_classes": FEW,
        "input_size": [h, w],
        "score_thresh": td.DEFAULT_SCORE_THRESH,
        "detections_per_img": td.DEFAULT_DETECTIONS_PER_IMG,
        "frozen_bn": False,
    }


def test_detector_rejects_other_input_sizes_and_batches(ssdlite: Any) -> None:
    import torch

    with pytest.raises(ValueError, match=r"expected an input of shape \(1, 3, 128, 192\)"):
        ssdlite(torch.zeros(1, 3, 192, 128))
    with pytest.raises(ValueError, match=r"got \(2, 3, 128, 192\)"):
        ssdlite(torch.zeros(2, 3, 128, 192))


def test_detector_post_processing_settings_are_applied() -> None:
    import torch

    arch = "fasterrcnn_mobilenet_v3_large_320_fpn"  # two-stage: the settings live on roi_heads
    model: Any = td.build_detector(arch, FEW, [128, 128], score_thresh=0.2, detections_per_img=7)
    heads = model.model.roi_heads
    assert heads.score_thresh == 0.2 and heads.detections_per_img == 7
    with torch.no_grad():
        _, scores, _ = model(_image(128, 128))
    assert 0 < len(scores) <= 7 and bool((scores > 0.2).all())
    single: Any = td.build_detector(DET, FEW, [128, 128], score_thresh=0.3, detections_per_img=5)
    assert single.model.score_thresh == 0.3 and single.model.detections_per_img == 5


def test_detector_weights_round_trip_match_the_plain_torchvision_model(tmp_path: Path) -> None:
    """The user's file is the plain model's state_dict; outputs equal torchvision's own, and the
    wrapper's state_dict rebuilds through the registered builder (the artifact path)."""
    import torch

    from farm.artifact import Artifact
    from workloads import build_module, state_dict_bytes

    plain = _plain_detector(DET, FEW)
    plain.detections_per_img = td.DEFAULT_DETECTIONS_PER_IMG
    path = _save(plain.state_dict(), tmp_path / "ssd.pt")
    state = load_state_dict_file(path)
    assert td.num_classes_from_state(DET, state) == FEW

    model = td.build_detector(DET, FEW, [320, 320], state, weights=path)
    x = _image(320, 320)  # torchvision's own SSDlite input size: its resize is then the identity
    with torch.no_grad():
        expected = plain([x[0]])[0]
        boxes, scores, labels = model(x)
    assert torch.equal(boxes, expected["boxes"])
    assert torch.equal(scores, expected["scores"])
    assert torch.equal(labels, expected["labels"])

    artifact = Artifact(
        "torch-state",
        {"state_dict.pt": state_dict_bytes(model)},
        {"builder": td.DETECTION_BUILDER, "builder_kwargs": model.builder_kwargs},
    )
    rebuilt = build_module(artifact)
    with torch.no_grad():
        again = rebuilt(x)
    assert all(torch.equal(a, b) for a, b in zip(again, (boxes, scores, labels), strict=True))


def test_random_weights_are_seeded_and_leave_the_global_rng_alone() -> None:
    import torch

    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = td.build_segmenter(SEG, 3)
    after = torch.rand(1)
    b = td.build_segmenter(SEG, 3)
    assert torch.equal(before, after)
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_segmenter_outputs_logits_at_input_size_and_round_trips(tmp_path: Path) -> None:
    import torch
    from torchvision.models import segmentation

    torch.manual_seed(2)
    plain = segmentation.lraspp_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=4
    ).eval()
    path = _save(plain.state_dict(), tmp_path / "lraspp.pt")
    state = load_state_dict_file(path)
    assert td.num_classes_from_state(SEG, state) == 4
    model = td.build_segmenter(SEG, 4, state, weights=path)
    x = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        logits = model(x)
        expected = plain(x)["out"]
    assert logits.shape == (2, 4, 96, 128) and logits.dtype == torch.float32
    assert torch.equal(logits, expected)
    assert set(model.state_dict()) == {f"model.{k}" for k in plain.state_dict()}
    # the wrapper pickles (its class is reachable from the module)
    clone = pickle.loads(pickle.dumps(model))
    with torch.no_grad():
        assert torch.equal(clone(x), logits)


def test_segmenter_weights_with_an_aux_head_load_and_the_aux_head_is_dropped(
    tmp_path: Path,
) -> None:
    import torch
    from torchvision.models import segmentation

    arch = "deeplabv3_mobilenet_v3_large"
    torch.manual_seed(3)
    plain = segmentation.deeplabv3_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=3, aux_loss=True
    ).eval()
    state = plain.state_dict()
    assert any(k.startswith("aux_classifier.") for k in state)
    model: Any = td.build_segmenter(arch, 3, state, weights=tmp_path / "deeplab.pt")
    assert model.model.aux_classifier is None
    assert not any("aux_classifier" in k for k in model.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), plain(x)["out"])


def test_weights_fine_tuned_from_pretrained_get_frozen_batchnorm() -> None:
    """torchvision builds Faster R-CNN's backbone with FrozenBatchNorm2d (eps 1e-5, no
    num_batches_tracked) when given pretrained weights; such weights load exactly."""
    from unittest import mock

    import torch
    from torchvision.models import MobileNet_V3_Large_Weights, detection
    from torchvision.models.detection import faster_rcnn
    from torchvision.ops import FrozenBatchNorm2d

    arch = "fasterrcnn_mobilenet_v3_large_320_fpn"
    real = faster_rcnn.mobilenet_v3_large
    # what `weights_backbone=IMAGENET1K_V1` builds, without downloading anything
    with mock.patch.object(
        faster_rcnn, "mobilenet_v3_large", lambda weights, **kw: real(weights=None, **kw)
    ):
        torch.manual_seed(4)
        plain = detection.fasterrcnn_mobilenet_v3_large_320_fpn(
            weights=None, weights_backbone=MobileNet_V3_Large_Weights.IMAGENET1K_V1, num_classes=3
        ).eval()
    state = plain.state_dict()
    assert not any(k.endswith("num_batches_tracked") for k in state)
    model: Any = td.build_detector(arch, 3, [128, 128], state)
    assert model.builder_kwargs["frozen_bn"] is True
    assert any(isinstance(m, FrozenBatchNorm2d) for m in model.model.backbone.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.model.backbone.modules())
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        got, expected = model.model.backbone(x), plain.backbone(x)
    assert all(torch.equal(got[k], expected[k]) for k in expected)
    # weights of a model trained from scratch keep ordinary BatchNorm
    fresh: Any = td.build_detector(arch, 3, [128, 128])
    again: Any = td.build_detector(arch, 3, [128, 128], fresh.model.state_dict())
    assert again.builder_kwargs["frozen_bn"] is False


def test_weights_of_another_architecture_name_the_field_the_file_and_the_keys(
    tmp_path: Path,
) -> None:
    import torch
    from torchvision.models import segmentation

    torch.manual_seed(5)
    lraspp = segmentation.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None)
    path = _save(lraspp.state_dict(), tmp_path / "lraspp.pt")
    state = load_state_dict_file(path)
    with pytest.raises(SpecError) as info:
        td.build_segmenter("deeplabv3_mobilenet_v3_large", 21, state, weights=path, job="job.toml")
    message = str(info.value)
    assert info.value.field == "workload.weights" and info.value.path == "job.toml"
    assert str(path) in message and "'deeplabv3_mobilenet_v3_large'" in message
    assert "missing keys ['classifier.0.convs.0.0.weight'" in message
    assert "unexpected keys ['classifier.cbr.0.weight'" in message


def test_weights_with_another_class_count_name_the_mismatched_shape(tmp_path: Path) -> None:
    arch = "fasterrcnn_mobilenet_v3_large_320_fpn"
    plain = _plain_detector(arch, 6)
    path = _save(plain.state_dict(), tmp_path / "frcnn6.pt")
    with pytest.raises(SpecError, match=r"`workload\.weights`: .*frcnn6\.pt.*shape mismatch") as e:
        td.build_detector(arch, 4, [128, 128], load_state_dict_file(path), weights=path)
    assert "roi_heads.box_predictor.cls_score.weight: file (6, 1024) vs model (4, 1024)" in str(
        e.value
    )


def test_a_pickled_model_is_refused_by_the_shared_loader(tmp_path: Path) -> None:
    import torch

    path = tmp_path / "whole-model.pt"
    torch.save(td.build_segmenter(SEG, 2), path)
    with pytest.raises(SpecError, match=r"`workload.weights`: expected a plain state_dict") as e:
        load_state_dict_file(path, "job.toml")
    assert "whole-model.pt" in str(e.value) and e.value.path == "job.toml"


def test_num_classes_from_state() -> None:
    import torch

    assert td.num_classes_from_state(DET, {}) is None
    rows = {"head.classification_head.module_list.0.1.weight": torch.zeros(6 * 11, 8, 1, 1)}
    assert td.num_classes_from_state(DET, rows) == 11
    bad = {"head.classification_head.module_list.0.1.weight": torch.zeros(13, 8, 1, 1)}
    with pytest.raises(SpecError, match=r"a multiple of the 6 anchors .*got '13 rows'"):
        td.num_classes_from_state(DET, bad)
    retina = {"head.classification_head.cls_logits.weight": torch.zeros(9 * 91, 256, 3, 3)}
    assert td.num_classes_from_state("retinanet_resnet50_fpn_v2", retina) == 91
    fcn = {"classifier.4.weight": torch.zeros(21, 512, 1, 1)}
    assert td.num_classes_from_state("fcn_resnet50", fcn) == 21


@pytest.mark.parametrize(
    "arch",
    ["fasterrcnn_mobilenet_v3_large_320_fpn", "deeplabv3_mobilenet_v3_large", SEG, DET],
)
def test_classes_key_of_each_spec_matches_torchvision(arch: str) -> None:
    """The table's key and anchor count give back the class count the model was built with."""
    model: Any = (
        td.build_detector(arch, 7, [128, 128])
        if arch in td.DETECTORS
        else td.build_segmenter(arch, 7)
    )
    assert td.num_classes_from_state(arch, model.model.state_dict()) == 7


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["retinanet_resnet50_fpn_v2", "fcos_resnet50_fpn", "fcn_resnet50"])
def test_classes_key_of_each_resnet50_spec_matches_torchvision(arch: str) -> None:
    model: Any = (
        td.build_detector(arch, 7, [128, 128])
        if arch in td.DETECTORS
        else td.build_segmenter(arch, 7)
    )
    assert td.num_classes_from_state(arch, model.model.state_dict()) == 7


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"arch": "yolov8n"}, r"`arch` must be one of \['ssdlite320"),
        ({"num_classes": 1}, r"`num_classes >= 2` must hold, got num_classes=1"),
        ({"input_size": [128]}, r"`64 <= side <= 2048` must hold .*input_size=\[128\]"),
        ({"input_size": [32, 128]}, r"got input_size=\[32, 128\]"),
        ({"score_thresh": 1.5}, r"`0 <= score_thresh < 1` must hold, got score_thresh=1.5"),
        ({"score_thresh": "0.1"}, r"got score_thresh='0.1'"),
        ({"detections_per_img": 0}, r"`detections_per_img >= 1` must hold"),
    ],
)
def test_bad_builder_arguments_say_the_rule_and_the_value(
    kwargs: dict[str, Any], message: str
) -> None:
    args: dict[str, Any] = {"arch": DET, "num_classes": 3, "input_size": [128, 128], **kwargs}
    with pytest.raises(ValueError, match=message):
        td.build_detector(**args)


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"model": DET, "num_classes": 1}, "workload.num_classes"),
        ({"model": DET, "num_classes": 3, "input_size": [32, 128]}, "workload.input_size"),
        ({"model": DET, "num_classes": 3, "task": "segmentation"}, "workload.task"),
        ({"model": DET, "num_classes": 3, "outputs": "yolo"}, "workload.outputs"),
        ({"model": SEG, "num_classes": 3, "nms_iou": 0.5}, "workload.nms_iou"),
        ({"model": DET}, "workload.num_classes"),  # no weights, no annotations to count
        ({"model": "yolov8n"}, "workload.model"),
    ],
)
def test_a_bad_dense_job_names_the_job_file_and_the_field(
    tmp_path: Path, section: dict, field: str
) -> None:
    from workloads import load_workload

    with pytest.raises(SpecError) as err:
        load_workload(section, tmp_path, source="job.toml")
    assert err.value.field == field and err.value.path == "job.toml"


def test_the_architecture_decides_the_task_and_its_conventions(tmp_path: Path) -> None:
    from workloads import load_workload
    from workloads.tasks import Detection, Segmentation

    det = load_workload({"model": DET, "num_classes": 3}, tmp_path)
    assert det.task == Detection(outputs="boxes_scores_labels", class_ids="category_id")
    assert det.fixed_batch == 1 and not det.traits().torch_exportable
    seg = load_workload({"model": SEG, "num_classes": 3, "input_size": [64, 64]}, tmp_path)
    assert seg.task == Segmentation(num_classes=3) and seg.input_shape == (3, 64, 64)
