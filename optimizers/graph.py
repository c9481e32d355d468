"""Facts about an ONNX graph that the quantizers need (onnx only, no runtime)."""

from __future__ import annotations

from typing import Any


def input_batch(model: Any) -> int | None:
    """The static batch size of the graph's (first non-initializer) input; None if dynamic."""
    initializers = {i.name for i in model.graph.initializer}
    first = next(i for i in model.graph.input if i.name not in initializers)
    dims = first.type.tensor_type.shape.dim
    if dims and dims[0].HasField("dim_value") and dims[0].dim_value > 0:
        return int(dims[0].dim_value)
    return None


#: Compute ops: what int8 quantization is for. Everything that never feeds one of them through a
#: data input is post-processing (score activation, box decoding, top-k, NMS, gathers).
_COMPUTE_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
#: op type -> indices of its data inputs; the other inputs are indices, shapes, axes or boxes.
#: RoIAlign's rois (input 1) are boxes: the proposals feed the second stage's MatMuls through
#: them, yet the RPN post-processing that makes them is no feature computation.
_DATA_INPUTS: dict[str, tuple[int, ...]] = {
    "Conv": (0,),
    "ConvTranspose": (0,),
    "Gemm": (0,),
    "RoIAlign": (0,),
    "MaxRoiPool": (0,),
    "Reshape": (0,),
    "Resize": (0,),
    "Upsample": (0,),
    "Expand": (0,),
    "Tile": (0,),
    "Slice": (0,),
    "Pad": (0,),
    "Split": (0,),
    "Squeeze": (0,),
    "Unsqueeze": (0,),
    "Gather": (0,),
    "GatherElements": (0,),
    "GatherND": (0,),
    "TopK": (0,),
    "ReduceMax": (0,),
    "ReduceMin": (0,),
    "ReduceMean": (0,),
    "ReduceSum": (0,),
    "Shape": (),
    "Size": (),
    "ConstantOfShape": (),
    "Range": (),
}


def postprocessing_nodes(model: Any) -> list[str]:
    """Names of the nodes of an ONNX graph that are post-processing, in graph order.

    The rule: a node is part of the network proper when its output reaches a Conv, Gemm or
    MatMul through data inputs (see ``_DATA_INPUTS``), or when it is one of those ops; every
    other node is post-processing and should stay out of int8 quantization
    (``nncf.IgnoredScope(names=..., validate=False)``; OpenVINO keeps ONNX node names as
    friendly names). It needs no knowledge of the architecture, so it also fits a user's ONNX
    detector. Subgraphs of ``If``/``Loop`` nodes are not looked into (see
    :func:`inline_empty_ifs`).
    """
    nodes = list(model.graph.node)
    producer = {out: n for n in nodes for out in n.output}
    network: set[int] = set()
    stack = [n for n in nodes if n.op_type in _COMPUTE_OPS]
    while stack:
        node = stack.pop()
        if id(node) in network:
            continue
        network.add(id(node))
        data = _DATA_INPUTS.get(node.op_type)
        names = node.input if data is None else [node.input[i] for i in data if i < len(node.input)]
        stack.extend(producer[name] for name in names if name in producer)
    return [n.name for n in nodes if id(n) not in network and n.op_type != "Constant"]


def inline_empty_ifs(model: Any) -> int:
    """Replace each ``If`` whose then-branch only returns an empty constant by its else-branch,
    in place; returns how many were replaced.

    torchvision's batched NMS is a scripted ``if boxes.numel() == 0: return empty`` that the
    TorchScript exporter keeps as an ``If`` node. Found here (torchvision 0.29, OpenVINO 2026.4,
    NNCF 3.4): NNCF fails on it (``Could not find a node … in NNCFGraph``) and OpenVINO returns
    one garbage detection through it when nothing passes the score threshold. The else-branch
    handles empty inputs itself (checked with ONNX Runtime and OpenVINO for the detectors here).
    """
    from onnx import helper, numpy_helper

    def empty_constant_branch(graph: Any) -> bool:
        if len(graph.node) != 1 or graph.node[0].op_type != "Constant":
            return False
        value = next((a.t for a in graph.node[0].attribute if a.name == "value"), None)
        return value is not None and numpy_helper.to_array(value).size == 0

    new_nodes = []
    count = 0
    for node in model.graph.node:
        branches = {a.name: a.g for a in node.attribute} if node.op_type == "If" else {}
        if not branches or not empty_constant_branch(branches["then_branch"]):
            new_nodes.append(node)
            continue
        count += 1
        body = branches["else_branch"]
        prefix = f"{node.name}/else/"
        local = {out for n in body.node for out in n.output}
        rename = {name: prefix + name for name in local}
        rename.update(
            {out.name: if_out for out, if_out in zip(body.output, node.output, strict=True)}
        )
        for i, inner in enumerate(body.node):
            copy = type(inner)()
            copy.CopyFrom(inner)
            copy.name = prefix + (inner.name or f"{inner.op_type}_{i}")
            copy.input[:] = [rename.get(name, name) for name in inner.input]
            copy.output[:] = [rename.get(name, name) for name in inner.output]
            new_nodes.append(copy)
        for out, if_out in zip(body.output, node.output, strict=True):
            if out.name not in local:  # the branch passes an outer value through
                new_nodes.append(helper.make_node("Identity", [out.name], [if_out]))
    del model.graph.node[:]
    model.graph.node.extend(new_nodes)
    return count
