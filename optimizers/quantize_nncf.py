"""NNCF post-training int8 quantization of an ONNX model into an OpenVINO IR.

Plain PTQ (``nncf.quantize``) or PTQ with accuracy control (``nncf.quantize_with_accuracy_control``:
NNCF reverts the most harmful quantized layers to float until the drop on the calibration data
is at most ``max_drop``). Mixed precision (``keep_float_layers``) reuses the ONNX Runtime
sensitivity ranking of the same ONNX model and passes the k most sensitive nodes to NNCF as an
``IgnoredScope``.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farm.artifact import Artifact
from optimizers.base import (
    BuildContext,
    check_choice,
    check_range,
    register_space,
    register_transform,
)
from optimizers.calibration_data import calibration_batches, sensitivity_ranking_offered

if TYPE_CHECKING:
    from targets.base import TargetSpec
    from workloads.base import WorkloadTraits

PRESETS = ("performance", "mixed")


@dataclass(frozen=True)
class QuantizeNncfConfig:
    #: ``performance``: symmetric activations; ``mixed``: asymmetric activations.
    preset: str = "performance"
    #: Calibration samples (from the calibration split); 0 = all of it.
    subset_size: int = 300
    #: The fast algorithm can cost accuracy on MobileNet-class models.
    fast_bias_correction: bool = True
    keep_float_layers: int = 0
    #: Use ``quantize_with_accuracy_control`` (needs labels) with ``max_drop``.
    accuracy_control: bool = False
    max_drop: float = 0.01

    def __post_init__(self) -> None:
        check_choice("preset", self.preset, PRESETS)
        check_range("max_drop", self.max_drop, 0.0, 1.0)
        if self.subset_size < 0 or self.keep_float_layers < 0:
            raise ValueError("`subset_size` and `keep_float_layers` must be >= 0")


@register_transform(
    "quantize_nncf",
    QuantizeNncfConfig,
    inputs=("onnx",),
    output="openvino-ir",
    stage="quantize",
    order=40,
    requires=("nncf", "openvino"),
)
def quantize_nncf(cfg: QuantizeNncfConfig, artifact: Artifact, ctx: BuildContext) -> Artifact:
    """Post-processing (score activations, box decoding, top-k, NMS: every node that feeds no
    Conv/MatMul, see ``optimizers.graph.postprocessing_nodes``) stays out of quantization."""
    import nncf
    import onnx
    import openvino as ov

    from optimizers.graph import inline_empty_ifs, postprocessing_nodes

    calib = ctx.data.calib.head(cfg.subset_size)
    dataset = nncf.Dataset(calibration_batches(calib, 0, batch_size=1))
    with tempfile.TemporaryDirectory(prefix="farm-nncf-") as tmp:
        work = Path(tmp)
        onnx_path = work / "model.onnx"
        graph = onnx.load_from_string(artifact.files[artifact.main_file])
        inline_empty_ifs(graph)  # NNCF cannot quantize through torchvision's empty-NMS `If`
        post = postprocessing_nodes(graph)
        onnx.save(graph, str(onnx_path))
        model = ov.Core().read_model(str(onnx_path))
        float_nodes = _sensitive_nodes(cfg, artifact, ctx)
        ov_names = [*_openvino_names(model, float_nodes), *post]
        common: dict[str, Any] = {
            "preset": nncf.QuantizationPreset(cfg.preset),
            "subset_size": len(calib),
            "fast_bias_correction": cfg.fast_bias_correction,
            "target_device": nncf.TargetDevice.CPU,
        }
        if ov_names:  # OpenVINO keeps ONNX node names; not all of them survive conversion
            common["ignored_scope"] = nncf.IgnoredScope(names=ov_names, validate=False)
        if cfg.accuracy_control:
            quantized = _quantize_with_accuracy_control(model, calib, dataset, cfg, common)
        else:
            quantized = nncf.quantize(model, dataset, **common)
        ov.save_model(quantized, str(work / "model.xml"), compress_to_fp16=False)
        files = {name: (work / name).read_bytes() for name in ("model.xml", "model.bin")}
    return Artifact(
        "openvino-ir",
        files,
        {
            "precision": "int8",
            "quantizer": "nncf",
            "float_nodes": float_nodes,
            "postprocessing_nodes": len(post),
        },
    )


@register_space("quantize_nncf")
def _space(target: TargetSpec, traits: WorkloadTraits | None) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution

    return {
        "preset": CategoricalDistribution(list(PRESETS)),
        "fast_bias_correction": CategoricalDistribution([True, False]),
        "keep_float_layers": CategoricalDistribution(
            [0, 1, 2, 4] if sensitivity_ranking_offered(traits) else [0]
        ),
        # one value (the default) so a job can set or search it in [search.knobs]
        "subset_size": CategoricalDistribution([QuantizeNncfConfig.subset_size]),
    }


def _sensitive_nodes(cfg: QuantizeNncfConfig, artifact: Artifact, ctx: BuildContext) -> list[str]:
    """The ``keep_float_layers`` most sensitive nodes, ranked by the ONNX Runtime quantizer."""
    if not cfg.keep_float_layers:
        return []
    from optimizers.quantize_ort import QuantizeOrtConfig, sensitivity_ranking

    ranking = sensitivity_ranking(artifact, QuantizeOrtConfig(), ctx)
    return ranking[: cfg.keep_float_layers]


def _openvino_names(model: Any, onnx_nodes: list[str]) -> list[str]:
    """OpenVINO op names for ONNX node names (a Conv with bias becomes ``<name>/WithoutBiases``
    plus an Add; a Gemm keeps its name as a MatMul)."""
    wanted = set(onnx_nodes) | {f"{n}/WithoutBiases" for n in onnx_nodes}
    return sorted(
        op.get_friendly_name()
        for op in model.get_ops()
        if op.get_friendly_name() in wanted and op.get_type_name() in ("Convolution", "MatMul")
    )


def _quantize_with_accuracy_control(
    model: Any, calib: Any, dataset: Any, cfg: QuantizeNncfConfig, common: dict[str, Any]
) -> Any:
    """Accuracy control on the calibration split: the eval split stays unseen by the build."""
    import nncf
    import numpy as np
    import openvino as ov

    if calib.y is None:
        raise ValueError("quantize_nncf.accuracy_control needs labelled calibration data")
    labelled = nncf.Dataset(list(zip(calib.x[:, None], calib.y, strict=True)), lambda item: item[0])

    def validate(compiled: ov.CompiledModel, items: Any) -> float:
        hits = [int(np.argmax(compiled(x)[0]) == y) for x, y in items]
        return float(np.mean(hits))

    return nncf.quantize_with_accuracy_control(
        model,
        calibration_dataset=labelled,
        validation_dataset=labelled,
        validation_fn=validate,
        max_drop=cfg.max_drop,
        drop_type=nncf.DropType.ABSOLUTE,
        **common,
    )
