"""Export transforms: a ``torch-state`` model to ``torch.export`` (``.pt2``) or to ONNX.

Both exports have a dynamic batch dimension, so one artifact serves every batch size the search
tries.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from farm.artifact import Artifact
from optimizers.base import BuildContext, check_range, register_transform

if TYPE_CHECKING:
    import torch

#: Largest batch a torch.export artifact accepts (the dynamic dimension needs a bound).
MAX_BATCH = 1024


@dataclass(frozen=True)
class ExportTorchConfig:
    """``torch.export.export`` has no knobs the search needs."""


@dataclass(frozen=True)
class ExportOnnxConfig:
    opset: int = 17

    def __post_init__(self) -> None:
        # Per-channel QDQ quantization needs opset >= 13.
        check_range("opset", self.opset, 13, 21)


@contextmanager
def unfused_attention() -> Iterator[None]:
    """Trace attention as its plain operators.

    In eval mode without gradients, ``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer``
    run fused kernels (``aten::_native_multi_head_attention``,
    ``aten::_transformer_encoder_layer_fwd``) that the TorchScript exporter cannot export
    (torchvision's ViT); with the fast path off they compute the same outputs from ops it can.
    """
    import torch

    enabled = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(enabled)


def _module_and_example(artifact: Artifact, batch: int) -> tuple[torch.nn.Module, torch.Tensor]:
    import torch

    from workloads import build_module

    module = build_module(artifact)
    c, h, w = artifact.meta["input_shape"]
    return module, torch.zeros(batch, c, h, w)


@register_transform(
    "export_torch",
    ExportTorchConfig,
    inputs=("torch-state",),
    output="torch-export",
    stage="export",
    order=30,
    needs_torch=True,
    requires=("torch",),
)
def export_torch(cfg: ExportTorchConfig, artifact: Artifact, ctx: BuildContext) -> Artifact:
    import torch

    module, example = _module_and_example(artifact, batch=2)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    program = torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
    buf = io.BytesIO()
    torch.export.save(program, buf)
    return Artifact("torch-export", {"model.pt2": buf.getvalue()}, {"max_batch": MAX_BATCH})


@register_transform(
    "export_onnx",
    ExportOnnxConfig,
    inputs=("torch-state",),
    output="onnx",
    stage="export",
    order=30,
    needs_torch=True,
    requires=("torch",),
)
def export_onnx(cfg: ExportOnnxConfig, artifact: Artifact, ctx: BuildContext) -> Artifact:
    """TorchScript-based ONNX export (``dynamo=False``): input ``input``; outputs as the model
    says in ``meta["output_names"]`` (``logits`` by default, a detector's ``boxes``, ``scores``,
    ``labels``). The batch is dynamic unless ``meta["batch"]`` fixes it (a detector takes one
    image, and the number of its detections is what varies)."""
    import onnx
    import torch

    from optimizers.graph import inline_empty_ifs

    names = list(artifact.meta.get("output_names", ["logits"]))
    fixed = artifact.meta.get("batch")
    axes = {name: {0: "batch" if fixed is None else "detections"} for name in names}
    if fixed is None:
        axes["input"] = {0: "batch"}
    module, example = _module_and_example(artifact, batch=1)
    buf = io.BytesIO()
    with torch.no_grad(), unfused_attention(), warnings.catch_warnings():
        # The TorchScript exporter is deprecated but is the one that handles torchvision CNNs
        # reliably here; its warnings would only clutter the build logs.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module,
            (example,),
            buf,  # type: ignore[arg-type]  # BytesIO works; the stub says path only
            dynamo=False,
            opset_version=cfg.opset,
            input_names=["input"],
            output_names=names,
            dynamic_axes=axes,
            do_constant_folding=True,
        )
    model = onnx.load_from_string(buf.getvalue())
    # torchvision's NMS keeps an "if no boxes: return empty" branch that NNCF cannot quantize
    # and OpenVINO mis-runs; its else-branch handles empty inputs itself (optimizers/graph.py)
    inlined = inline_empty_ifs(model)
    data = model.SerializeToString() if inlined else buf.getvalue()
    return Artifact("onnx", {"model.onnx": data}, {"opset": cfg.opset, "inlined_ifs": inlined})
