"""Small OCR fixtures: a hand-made CTC recogniser in ONNX and text-line images with a PaddleOCR
label file, as a user has them.

``ctc_onnx`` writes a recogniser with PaddleOCR's conventions (input ``[-1, 3, H, W]`` with the
batch as Paddle2ONNX writes it, ``dim_value = -1``; output ``[N, W / stride, C]`` softmax-ed;
the character list in the metadata ``character``): one convolution whose kernel spans the whole
height and ``stride`` columns, so it runs on any width. Its weights are random: what it reads is
not meant to be right, only decoded the same way everywhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def ctc_onnx(path: Path, charset: str, height: int = 8, stride: int = 4, seed: int = 0) -> Path:
    """Write the recogniser (classes: blank, ``charset``, space) to ``path``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    classes = len(charset) + 2
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((classes, 3, height, stride)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["conv"], strides=[1, stride]),
        helper.make_node("Squeeze", ["conv", "axis2"], ["seq"]),
        helper.make_node("Transpose", ["seq"], ["logits"], perm=[0, 2, 1]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=2),
    ]
    graph = helper.make_graph(
        nodes,
        "ctc",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [-1, 3, height, "W"])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [-1, "T", classes])],
        [
            numpy_helper.from_array(weight, "w"),
            numpy_helper.from_array(np.asarray([2], dtype=np.int64), "axis2"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    helper.set_model_props(model, {"character": "\n".join(charset)})
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def write_lines(
    root: Path, texts: list[str], folder: str = "lines", seed: int = 0
) -> tuple[Path, Path]:
    """(image folder, label file): one PNG per text under ``root / folder`` and
    ``root / "rec_gt.txt"`` with ``<folder>/<file><TAB><text>`` lines, as PaddleOCR writes them."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    images = root / folder
    images.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, text in enumerate(texts):
        width = 12 + 7 * len(text) + int(rng.integers(0, 8))
        image = Image.new("RGB", (width, 16), (240, 240, 235))
        ImageDraw.Draw(image).text((4, 2), text, fill=(10, 10, 10))
        image.save(images / f"line_{i:03d}.png")
        rows.append(f"{folder}/line_{i:03d}.png\t{text}")
    labels = root / "rec_gt.txt"
    labels.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return images, labels
