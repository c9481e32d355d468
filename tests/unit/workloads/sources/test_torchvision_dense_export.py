"""Torchvision detectors exported to ONNX: the graph helpers that let them run on ONNX Runtime
and OpenVINO, and a user's own export scored as an ONNX workload."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from optimizers import graph
from workloads.sources import torchvision_dense as td

DET = "ssdlite320_mobilenet_v3_large"  # the fastest detector to build and run
#: Random SSDlite weights give every class the same softmax score (1 / classes): keep it small.
FEW = 3


def _image(h: int, w: int, seed: int = 0) -> Any:
    """A (1, 3, h, w) image in [0, 1] with a red block for the detector to find."""
    import torch

    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, h, w, generator=g) * 0.3 + 0.2
    x[:, :, h // 4 : h // 2, w // 3 : 2 * w // 3] = torch.tensor([0.9, 0.1, 0.1])[:, None, None]
    return x


# -- the graph helpers, on small hand-made graphs ---------------------------------------------


def _graph(nodes: list[Any], inputs: list[str], outputs: list[str]) -> Any:
    from onnx import TensorProto, helper

    def value(name: str) -> Any:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["n"])

    graph = helper.make_graph(nodes, "g", [value(n) for n in inputs], [value(n) for n in outputs])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_postprocessing_nodes_are_those_that_feed_no_conv_or_matmul() -> None:
    from onnx import helper

    n = helper.make_node
    model = _graph(
        [
            n("Sub", ["x", "mean"], ["xn"], name="normalise"),  # feeds the backbone
            n("Conv", ["xn", "w1"], ["f"], name="backbone"),
            n("Conv", ["f", "w2"], ["logits"], name="head"),
            n("Sigmoid", ["logits"], ["s"], name="score"),
            n("Mul", ["logits", "k"], ["deltas"], name="decode"),
            n("TopK", ["s", "k8"], ["top", "idx"], name="topk"),
            n("Gather", ["deltas", "idx"], ["rois"], name="gather"),
            # two-stage: proposals enter RoIAlign's rois input, features its data input
            n("RoIAlign", ["f", "rois", "bidx"], ["pooled"], name="roialign"),
            n("Flatten", ["pooled"], ["flat"], name="flatten"),
            n("MatMul", ["flat", "w3"], ["box_logits"], name="box_head"),
            n("Softmax", ["box_logits"], ["probs"], name="softmax"),
        ],
        ["x", "mean", "w1", "w2", "k", "k8", "bidx", "w3"],
        ["probs"],
    )
    assert graph.postprocessing_nodes(model) == ["score", "decode", "topk", "gather", "softmax"]


def test_inline_empty_ifs_keeps_the_else_branch_and_the_outer_references() -> None:
    import onnxruntime as ort
    from onnx import TensorProto, checker, helper, numpy_helper

    n = helper.make_node
    empty = numpy_helper.from_array(np.zeros((0,), np.float32))
    then_branch = helper.make_graph(
        [n("Constant", [], ["e"], value=empty)],
        "then",
        [],
        [helper.make_tensor_value_info("e", TensorProto.FLOAT, ["n"])],
    )
    else_branch = helper.make_graph(
        [n("Add", ["x", "x"], ["twice"]), n("Mul", ["twice", "x"], ["out_else"])],
        "else",
        [],
        [helper.make_tensor_value_info("out_else", TensorProto.FLOAT, ["n"])],
    )
    model = _graph(
        [
            n("Size", ["x"], ["size"], name="size"),
            n(
                "Constant",
                [],
                ["zero"],
                name="zero",
                value=numpy_helper.from_array(np.array(0, np.int64)),
            ),
            n("Equal", ["size", "zero"], ["is_empty"], name="eq"),
            n(
                "If",
                ["is_empty"],
                ["y"],
                name="guard",
                then_branch=then_branch,
                else_branch=else_branch,
            ),
            n("Neg", ["y"], ["z"], name="after"),
        ],
        ["x"],
        ["z"],
    )
    assert graph.inline_empty_ifs(model) == 1
    checker.check_model(model)
    assert "If" not in {node.op_type for node in model.graph.node}
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.array([1.0, 2.0], np.float32)
    np.testing.assert_array_equal(session.run(None, {"x": x})[0], -(2 * x * x))
    assert session.run(None, {"x": np.zeros((0,), np.float32)})[0].shape == (0,)
    # an If whose then-branch does real work is left alone
    model2 = _graph(
        [n("If", ["c"], ["y"], name="real", then_branch=else_branch, else_branch=else_branch)],
        ["c", "x"],
        ["y"],
    )
    assert graph.inline_empty_ifs(model2) == 0


@pytest.mark.slow
def test_exported_detector_runs_on_onnxruntime_and_openvino_without_the_if(
    tmp_path: Path,
) -> None:
    """The TorchScript ONNX export of a wrapped detector matches eager; with its empty-NMS ``If``
    inlined, OpenVINO returns no detection when nothing passes the threshold (with the ``If`` it
    returned one garbage row)."""
    import warnings

    import onnx
    import onnxruntime as ort
    import openvino as ov
    import torch

    def export(model: Any, path: Path) -> onnx.ModelProto:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (_image(160, 160),),
                str(path),
                dynamo=False,
                opset_version=17,
                input_names=["input"],
                output_names=["boxes", "scores", "labels"],
                dynamic_axes={k: {0: "n"} for k in ("boxes", "scores", "labels")},
            )
        proto = onnx.load(str(path))
        assert graph.inline_empty_ifs(proto) == 1
        return proto

    model = td.build_detector(DET, FEW, [160, 160])
    proto = export(model, tmp_path / "ssd.onnx")
    post = set(graph.postprocessing_nodes(proto))
    types = {node.op_type for node in proto.graph.node if node.name in post}
    assert {"NonMaxSuppression", "TopK", "Softmax"} <= types and "Conv" not in types
    x = _image(160, 160, seed=1)
    with torch.no_grad():
        ref_boxes, ref_scores, _ = model(x)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    boxes, scores, labels = session.run(None, {"input": x.numpy()})
    assert boxes.shape == tuple(ref_boxes.shape) and labels.dtype == np.int64
    np.testing.assert_allclose(np.sort(scores), np.sort(ref_scores.numpy()), atol=1e-5)

    nothing = td.build_detector(DET, FEW, [160, 160], score_thresh=0.99)
    proto = export(nothing, tmp_path / "none.onnx")
    onnx.save(proto, str(tmp_path / "none-inlined.onnx"))
    compiled = ov.Core().compile_model(
        str(tmp_path / "none-inlined.onnx"), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}
    )
    result = compiled(x.numpy())
    assert [result[o].shape[0] for o in compiled.outputs] == [0, 0, 0]


@pytest.mark.slow
def test_a_torchvision_detector_exported_by_the_user_is_scored_as_an_onnx_workload(
    tmp_path: Path,
) -> None:
    """The user's path for a detector the farm did not build: SSDlite exported to ONNX in
    torchvision's convention (``outputs = "boxes_scores_labels"``), letterboxed COCO images.
    The farm's decoded detections are the eager model's on the same input, mapped back to the
    original pixels; the reference scores itself as fidelity 1."""
    import warnings

    import onnxruntime as ort
    import torch
    from support.dense_data import write_squares
    from support.predict import predictions

    from workloads import load_workload

    torch.manual_seed(0)
    model = td.build_detector(DET, FEW, [160, 160])
    with torch.no_grad():  # random SSDlite scores tie (1 / classes): spread them
        for p in model.model.head.classification_head.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (torch.rand(1, 3, 160, 160),),
                str(tmp_path / "ssd.onnx"),
                dynamo=False,
                opset_version=17,
                input_names=["images"],
                output_names=["boxes", "scores", "labels"],
                dynamic_axes={k: {0: "n"} for k in ("boxes", "scores", "labels")},
            )
    write_squares(tmp_path / "val", n=6, size=(120, 160))  # letterboxed: 20 px bands
    section = {
        "onnx": "ssd.onnx",
        "task": "detection",
        "outputs": "boxes_scores_labels",
        "input_size": [160, 160],
        "letterbox": True,
        "data": {"eval": "val/images", "eval_annotations": "val/instances.json"},
    }
    workload = load_workload(section, tmp_path)
    data = workload.data()
    ref = predictions(workload.source_artifact(tmp_path), data.eval, workload.task)
    session = ort.InferenceSession(str(tmp_path / "ssd.onnx"), providers=["CPUExecutionProvider"])
    boxes, scores, labels = session.run(None, {"images": data.eval.x[:1]})
    with torch.no_grad():
        eager = model(torch.from_numpy(data.eval.x[:1]))
    np.testing.assert_allclose(np.sort(scores), np.sort(eager[1].numpy()), atol=1e-5)
    kept = scores >= 0.001
    expected = boxes[kept] - np.array([0, 20, 0, 20], np.float32)  # the letterbox band
    expected = expected.clip(0, [160, 120, 160, 120])
    got = ref[0]
    np.testing.assert_array_equal(got.scores, scores[kept])
    np.testing.assert_array_equal(got.labels, labels[kept])
    np.testing.assert_allclose(got.boxes, expected, atol=1e-4)
    metrics = workload.task.quality(ref, data.eval, ref, data)
    assert metrics["map_vs_fp32"] == pytest.approx(1.0)
    assert {"map", "map50", "ap/red", "ap/green"} <= set(metrics)
