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
