"""Tiny ONNX models shaped like what other tools export (built with ``onnx.helper``, seeded).

* :func:`nhwc`: a Keras model through tf2onnx: channels-last input named ``input_1:0`` with a
  ``unk__`` batch, a Transpose to NCHW inside.
* :func:`typed_input`: the same with a uint8 or float16 input (TF detection models take uint8
  pixels; an fp16 export keeps fp16 inputs).
* :func:`conv_head`: a classifier whose head is a 1×1 convolution: logits ``(N, 10, 1, 1)``.
* :func:`text_recognizer`: a CRNN-style text recogniser, ``[N, 3, 32, W]`` (dynamic width) to
  CTC scores ``[N, W/2, 37]`` (or ``[W/2, N, 37]``, sequence-first, with ``sequence_first``).
* :func:`backbone`: a detection backbone: two feature maps, no head.
* :func:`old_opset`: a plain NCHW classifier saved at an old opset (9), as old exporters wrote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

OPSET = 17


def _init(
    rng: np.random.Generator, name: str, shape: tuple[int, ...], dtype: Any = np.float32
) -> Any:
    from onnx import numpy_helper

    return numpy_helper.from_array((rng.standard_normal(shape) * 0.2).astype(dtype), name)


def _trunk(x: str, dtype: Any = np.float32) -> tuple[list[Any], list[Any]]:
    """Two 3×3 convolutions (the second with stride 2) + ReLUs: ``x`` [N, 3, H, W] -> ``r2``
    [N, 16, H/2, W/2]."""
    from onnx import helper

    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Conv", [x, "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"]),
    ]
    inits = [
        _init(rng, "w1", (8, 3, 3, 3), dtype),
        _init(rng, "b1", (8,), dtype),
        _init(rng, "w2", (16, 8, 3, 3), dtype),
        _init(rng, "b2", (16,), dtype),
    ]
    return nodes, inits


def _head(dtype: Any = np.float32) -> tuple[list[Any], list[Any]]:
    from onnx import helper

    rng = np.random.default_rng(1)
    nodes = [
        helper.make_node("GlobalAveragePool", ["r2"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["logits"], transB=1),
    ]
    return nodes, [_init(rng, "wf", (10, 16), dtype), _init(rng, "bf", (10,), dtype)]


def _save(
    path: Path,
    nodes: list[Any],
    inits: list[Any],
    inputs: list[Any],
    outputs: list[Any],
    opset: int = OPSET,
) -> Path:
    import onnx
    from onnx import helper

    graph = helper.make_graph(nodes, path.stem, inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def nhwc(path: Path, size: int = 32) -> Path:
    from onnx import TensorProto, helper

    trunk, inits = _trunk("t")
    head, head_inits = _head()
    transpose = helper.make_node("Transpose", ["input_1:0"], ["t"], perm=[0, 3, 1, 2])
    return _save(
        path,
        [transpose, *trunk, *head],
        inits + head_inits,
        [helper.make_tensor_value_info("input_1:0", TensorProto.FLOAT, ["unk__1", size, size, 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["unk__2", 10])],
    )


def typed_input(path: Path, elem_type: str) -> Path:
    """``elem_type``: "uint8" (cast to float inside, NHWC) or "float16" (an fp16 graph)."""
    from onnx import TensorProto, helper

    if elem_type == "uint8":
        trunk, inits = _trunk("t")
        head, head_inits = _head()
        nodes = [
            helper.make_node("Cast", ["image"], ["image_f"], to=TensorProto.FLOAT),
            helper.make_node("Transpose", ["image_f"], ["t"], perm=[0, 3, 1, 2]),
        ]
        shape, out_type = ["N", 32, 32, 3], TensorProto.FLOAT
        in_type = TensorProto.UINT8
    else:
        trunk, inits = _trunk("image", np.float16)
        head, head_inits = _head(np.float16)
        nodes, shape = [], ["N", 3, 32, 32]
        in_type = out_type = TensorProto.FLOAT16
    return _save(
        path,
        [*nodes, *trunk, *head],
        inits + head_inits,
        [helper.make_tensor_value_info("image", in_type, shape)],
        [helper.make_tensor_value_info("logits", out_type, ["N", 10])],
    )


def conv_head(path: Path) -> Path:
    from onnx import TensorProto, helper

    trunk, inits = _trunk("x")
    rng = np.random.default_rng(2)
    head = [
        helper.make_node("GlobalAveragePool", ["r2"], ["g"]),
        helper.make_node("Conv", ["g", "wc", "bc"], ["logits"]),
    ]
    return _save(
        path,
        trunk + head,
        [*inits, _init(rng, "wc", (10, 16, 1, 1)), _init(rng, "bc", (10,))],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10, 1, 1])],
    )


def text_recognizer(path: Path, sequence_first: bool = False) -> Path:
    from onnx import TensorProto, helper

    trunk, inits = _trunk("x")
    rng = np.random.default_rng(3)
    perm = [2, 0, 1] if sequence_first else [0, 2, 1]
    head = [
        helper.make_node("ReduceMean", ["r2"], ["m"], axes=[2], keepdims=0),  # N, 16, W/2
        helper.make_node("Transpose", ["m"], ["mt"], perm=perm),
        helper.make_node("MatMul", ["mt", "wo"], ["ctc"]),
    ]
    out = ["T", "N", 37] if sequence_first else ["N", "T", 37]
    return _save(
        path,
        trunk + head,
        [*inits, _init(rng, "wo", (16, 37))],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32, "W"])],
        [helper.make_tensor_value_info("ctc", TensorProto.FLOAT, out)],
    )


def backbone(path: Path) -> Path:
    from onnx import TensorProto, helper

    trunk, inits = _trunk("x")
    rng = np.random.default_rng(4)
    more = [
        helper.make_node("Conv", ["r2", "w3", "b3"], ["c3"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c3"], ["p4"]),
    ]
    return _save(
        path,
        trunk + more,
        [*inits, _init(rng, "w3", (32, 16, 3, 3)), _init(rng, "b3", (32,))],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 64, 64])],
        [
            helper.make_tensor_value_info("r2", TensorProto.FLOAT, ["N", 16, 32, 32]),
            helper.make_tensor_value_info("p4", TensorProto.FLOAT, ["N", 32, 16, 16]),
        ],
    )


def old_opset(path: Path, opset: int = 9) -> Path:
    from onnx import TensorProto, helper

    trunk, inits = _trunk("x")
    head, head_inits = _head()
    return _save(
        path,
        trunk + head,
        inits + head_inits,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        opset=opset,
    )
