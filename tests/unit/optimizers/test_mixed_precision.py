"""Mixed precision: the quantizers keep the layers most sensitive to quantization in float,
ranked once and cached; NNCF's accuracy control."""

from __future__ import annotations

import numpy as np
import pytest
from support.digits import accuracy, ort_logits

from optimizers import BuildContext, apply


@pytest.fixture(scope="module")
def ctx(digits, tmp_path_factory) -> BuildContext:
    cache = tmp_path_factory.mktemp("opt-cache")
    return BuildContext(digits.data(), seed=0, cache_dir=cache, task=digits.task)


def test_mixed_precision_keeps_the_most_sensitive_nodes_float(onnx_artifact, ctx, digits):
    import onnx

    q = apply("quantize_ort", {"keep_float_layers": 2}, onnx_artifact, ctx)
    ranking = q.meta["sensitivity_ranking"]
    assert q.meta["float_nodes"] == ranking[:2]
    assert len(ranking) == q.meta["quantizable_nodes"] == 5
    graph = onnx.load_from_string(q.files["model.onnx"]).graph
    by_output = {o: n for n in graph.node for o in n.output}
    for name in ranking[:2]:
        node = next(n for n in graph.node if n.name == name)
        weight_producer = by_output.get(node.input[1])
        assert weight_producer is None or weight_producer.op_type != "DequantizeLinear"
    full = apply("quantize_ort", {}, onnx_artifact, ctx)
    n_q = sum(n.op_type == "QuantizeLinear" for n in graph.node)
    n_full = sum(
        n.op_type == "QuantizeLinear"
        for n in onnx.load_from_string(full.files["model.onnx"]).graph.node
    )
    assert n_q < n_full
    ev = digits.data().eval
    assert accuracy(ort_logits(q.files["model.onnx"], ev.x), ev.y) >= 0.95
    # the ranking is cached on disk and reused
    assert list((ctx.cache_dir / "sensitivity").glob("ort-*.json"))


def test_nncf_keep_float_layers_and_accuracy_control(onnx_artifact, ctx, digits):
    import openvino as ov

    def fake_quantize_ops(art) -> int:
        weights = ov.Tensor(np.frombuffer(art.files["model.bin"], dtype=np.uint8))
        model = ov.Core().read_model(art.files["model.xml"].decode(), weights)
        return sum(op.get_type_name() == "FakeQuantize" for op in model.get_ops())

    plain = apply("quantize_nncf", {}, onnx_artifact, ctx)
    mixed = apply("quantize_nncf", {"keep_float_layers": 2}, onnx_artifact, ctx)
    assert fake_quantize_ops(mixed) < fake_quantize_ops(plain)
    controlled = apply(
        "quantize_nncf", {"accuracy_control": True, "max_drop": 0.01}, onnx_artifact, ctx
    )
    assert controlled.format == "openvino-ir" and fake_quantize_ops(controlled) > 0
