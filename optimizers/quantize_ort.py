"""ONNX Runtime static int8 quantization (QDQ, per-channel weights) with optional mixed precision.

Mixed precision keeps the ``keep_float_layers`` most quantization-sensitive nodes in float. The
ranking is computed once per (input model, calibration settings): calibrate once (ONNX Runtime's
calibration cache), then quantize each Conv/Gemm/MatMul node *alone* and measure how far the
logits move from the float model on the calibration data. The ranking is kept in memory and, when
the build context has a cache directory, on disk; it is also recorded in the artifact's meta.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farm.artifact import Artifact
from farm.errors import TrialError
from optimizers.base import BuildContext, check_choice, register_space, register_transform
from optimizers.calibration_data import calibration_batches, sensitivity_ranking_offered

if TYPE_CHECKING:
    import numpy as np

    from targets.base import TargetSpec
    from workloads.base import WorkloadTraits

CALIBRATION_METHODS = ("MinMax", "Entropy", "Percentile")
ACTIVATION_TYPES = ("U8", "S8")
QUANTIZABLE_OPS = ("Conv", "Gemm", "MatMul")
#: Samples of the calibration split used to score each node's sensitivity.
RANKING_SAMPLES = 64
#: Calibration batch size for models with a dynamic batch (others use their own batch size).
CALIBRATION_BATCH = 8
#: The oldest default-domain opset quantized as it is; older models are converted first.
MIN_OPSET = 13
_RANKINGS: dict[str, list[str]] = {}


@dataclass(frozen=True)
class QuantizeOrtConfig:
    calibration_method: str = "MinMax"
    #: Calibration samples taken from the calibration split; 0 = all of it.
    calib_size: int = 0
    #: Activation type; weights are always signed int8, per channel.
    activation_type: str = "U8"
    #: Keep the k most quantization-sensitive nodes in float (mixed precision).
    keep_float_layers: int = 0

    def __post_init__(self) -> None:
        check_choice("calibration_method", self.calibration_method, CALIBRATION_METHODS)
        check_choice("activation_type", self.activation_type, ACTIVATION_TYPES)
        if self.calib_size < 0 or self.keep_float_layers < 0:
            raise ValueError("`calib_size` and `keep_float_layers` must be >= 0")


@register_transform(
    "quantize_ort",
    QuantizeOrtConfig,
    inputs=("onnx",),
    output="onnx",
    stage="quantize",
    order=40,
    requires=("onnxruntime",),
)
def quantize_ort(cfg: QuantizeOrtConfig, artifact: Artifact, ctx: BuildContext) -> Artifact:
    import onnx

    ranking = sensitivity_ranking(artifact, cfg, ctx) if cfg.keep_float_layers else []
    keep_float = ranking[: cfg.keep_float_layers]
    with tempfile.TemporaryDirectory(prefix="farm-qort-") as tmp:
        work = Path(tmp)
        model_path, preprocessed = _preprocess(artifact, work)
        nodes = quantizable_nodes(onnx.load(str(model_path)))
        out = work / "quantized.onnx"
        with shared_calibration(artifact, cfg, ctx, work) as calib:
            _quantize(model_path, out, cfg, ctx, calib, exclude=keep_float)
        data = out.read_bytes()
    meta: dict[str, Any] = {
        "precision": "int8",
        "quantizer": "onnxruntime-qdq",
        "quantizable_nodes": len(nodes),
        "float_nodes": keep_float,
        **preprocessed,
    }
    if ranking:
        meta["sensitivity_ranking"] = ranking
    return Artifact("onnx", {"model.onnx": data}, meta)


@register_space("quantize_ort")
def _space(target: TargetSpec, traits: WorkloadTraits | None) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution

    return {
        "calibration_method": CategoricalDistribution(list(CALIBRATION_METHODS)),
        "activation_type": CategoricalDistribution(list(ACTIVATION_TYPES)),
        "keep_float_layers": CategoricalDistribution(
            [0, 1, 2, 4] if sensitivity_ranking_offered(traits) else [0]
        ),
        # one value (all of the split) so a job can set or search it in [search.knobs]
        "calib_size": CategoricalDistribution([QuantizeOrtConfig.calib_size]),
    }


def quantizable_nodes(model: Any) -> list[str]:
    """Names of the nodes the quantizer turns into integer ops (in graph order)."""
    return [n.name for n in model.graph.node if n.op_type in QUANTIZABLE_OPS]


#: ``quant_pre_process`` settings tried in turn: symbolic shape inference gives up on some graphs
#: ("Incomplete symbolic shape inference"), ONNX shape inference alone still helps.
PREPROCESS_ATTEMPTS: tuple[tuple[str, dict[str, bool]], ...] = (
    ("full", {}),
    ("skip_symbolic_shape", {"skip_symbolic_shape": True}),
    (
        "skip_symbolic_shape+skip_optimization",
        {"skip_symbolic_shape": True, "skip_optimization": True},
    ),
)


def _preprocess(artifact: Artifact, work: Path) -> tuple[Path, dict[str, Any]]:
    """Shape inference + graph optimisation recommended before static quantization.

    Tries :data:`PREPROCESS_ATTEMPTS` in turn and falls back to the model as given when all fail;
    quantization works on either. Returns the model to quantize and what happened, for the
    artifact's meta (``quant_preprocess``: the attempt that worked or ``"none"``;
    ``quant_preprocess_errors``: why the ones before it failed).
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src = work / "model.onnx"
    src.write_bytes(artifact.files[artifact.main_file])
    upgraded = _upgrade_opset(src)
    errors: list[str] = []
    for label, kwargs in PREPROCESS_ATTEMPTS:
        dst = work / f"preprocessed-{len(errors)}.onnx"
        try:
            with in_directory(work):
                quant_pre_process(str(src), str(dst), **kwargs)
        except Exception as exc:
            errors.append(f"{label}: {_one_line(exc)}")
            continue
        return dst, _preprocess_meta(label, errors, upgraded)
    return src, _preprocess_meta("none", errors, upgraded)


def _preprocess_meta(label: str, errors: list[str], upgraded: str | None) -> dict[str, Any]:
    return {
        "quant_preprocess": label,
        **({"quant_preprocess_errors": errors} if errors else {}),
        **({"opset_upgraded": upgraded} if upgraded else {}),
    }


def _upgrade_opset(path: Path) -> str | None:
    """Convert a model older than :data:`MIN_OPSET` in place (``onnx.version_converter``);
    returns ``"9->13"`` when it did. Per-channel QDQ needs DequantizeLinear's ``axis`` (opset
    13): ONNX Runtime's quantizer would otherwise write a model no runtime loads."""
    import onnx
    from onnx import version_converter

    model = onnx.load(str(path))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None or opset >= MIN_OPSET:
        return None
    try:
        converted = version_converter.convert_version(model, MIN_OPSET)
        onnx.checker.check_model(converted)
    except Exception as exc:
        raise TrialError(
            f"the model's opset {opset} is older than the {MIN_OPSET} per-channel int8 needs, and "
            f"onnx.version_converter could not convert it: {_one_line(exc)}; re-export it "
            f"with opset_version >= {MIN_OPSET}"
        ) from None
    onnx.save(converted, str(path))
    return f"{opset}->{MIN_OPSET}"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


@contextmanager
def in_directory(work: Path) -> Iterator[None]:
    """Run ONNX Runtime's quantization tools with ``work`` as the current directory.

    Some of them write into the current directory: symbolic shape inference saves
    ``sym_shape_infer_temp.onnx`` and a uuid-named ``.data`` file there whenever it cannot infer
    every shape. Inside the transform's temporary directory they are deleted with it instead of
    piling up wherever the worker was started. (A build runs one transform at a time per
    process, so changing the process's directory for the duration is safe.)
    """
    with contextlib.chdir(work):
        yield


class _Reader:
    """A CalibrationDataReader over in-memory batches (input name from the model)."""

    def __init__(self, input_name: str, batches: list[np.ndarray]) -> None:
        self._items = iter([{input_name: b} for b in batches])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._items, None)


def _input_name(model_path: Path) -> str:
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    initializers = {i.name for i in model.graph.initializer}
    return next(i.name for i in model.graph.input if i.name not in initializers)


def _quantize(
    src: Path,
    dst: Path,
    cfg: QuantizeOrtConfig,
    ctx: BuildContext,
    calib_cache: Path,
    *,
    exclude: list[str] | None = None,
    only: list[str] | None = None,
) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    reader = None
    if not calib_cache.exists():
        batch = _batch_of(src) or CALIBRATION_BATCH
        batches = calibration_batches(ctx.data.calib, cfg.calib_size, batch_size=batch)
        reader = _Reader(_input_name(src), batches)
    with in_directory(src.parent):
        quantize_static(
            str(src),
            str(dst),
            reader,  # type: ignore[arg-type]
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(QUANTIZABLE_OPS),
            per_channel=True,
            activation_type=QuantType.QUInt8 if cfg.activation_type == "U8" else QuantType.QInt8,
            weight_type=QuantType.QInt8,
            nodes_to_quantize=only,
            nodes_to_exclude=exclude or None,
            calibrate_method=getattr(CalibrationMethod, cfg.calibration_method),
            calibration_cache_path=str(calib_cache),
        )


def _batch_of(model_path: Path) -> int | None:
    """The model's static batch size (a detector exported for one image), None if dynamic."""
    import onnx

    from optimizers.graph import input_batch

    return input_batch(onnx.load(str(model_path), load_external_data=False))


def _logits(model_path: Path, x: np.ndarray) -> np.ndarray:
    """The first output for every input of ``x`` (run in the model's own batch size)."""
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    sess = ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    batch = _batch_of(model_path) or len(x)
    usable = len(x) - len(x) % batch
    outs = [sess.run(None, {name: x[i : i + batch]})[0] for i in range(0, usable, batch)]
    return np.concatenate(outs)


def _rank(
    model_path: Path,
    nodes: list[str],
    cfg: QuantizeOrtConfig,
    ctx: BuildContext,
    calib_cache: Path,
) -> list[str]:
    """Nodes sorted by the logit error they cause when quantized alone (most sensitive first)."""
    import numpy as np

    x = ctx.data.calib.head(RANKING_SAMPLES).x
    reference = _logits(model_path, x)
    scores: dict[str, float] = {}
    for i, node in enumerate(nodes):
        out = model_path.parent / f"single-{i}.onnx"
        _quantize(model_path, out, cfg, ctx, calib_cache, only=[node])
        scores[node] = float(np.mean((_logits(out, x) - reference) ** 2))
        out.unlink()
    return sorted(nodes, key=lambda n: (-scores[n], nodes.index(n)))


def sensitivity_ranking(artifact: Artifact, cfg: QuantizeOrtConfig, ctx: BuildContext) -> list[str]:
    """Quantizable nodes of an ONNX artifact, most quantization-sensitive first (cached)."""
    import onnx

    key = _ranking_key(artifact, cfg, ctx)
    ranking = _load_ranking(key, ctx)
    if ranking is None:
        with tempfile.TemporaryDirectory(prefix="farm-qort-rank-") as tmp:
            work = Path(tmp)
            model_path, _ = _preprocess(artifact, work)
            nodes = quantizable_nodes(onnx.load(str(model_path)))
            with shared_calibration(artifact, cfg, ctx, work) as calib:
                ranking = _rank(model_path, nodes, cfg, ctx, calib)
    _store_ranking(key, ranking, ctx)
    return ranking


def _ranking_key(artifact: Artifact, cfg: QuantizeOrtConfig, ctx: BuildContext) -> str:
    return "-".join(
        [
            "ort",
            artifact.content_hash,
            cfg.calibration_method,
            cfg.activation_type,
            str(cfg.calib_size),
            calibration_data_key(ctx),
        ]
    )


def calibration_data_key(ctx: BuildContext) -> str:
    """A hash of the calibration split: cached work is only reused on the same data (two jobs
    on one model may calibrate on different images)."""
    import hashlib

    import numpy as np

    return hashlib.sha256(np.ascontiguousarray(ctx.data.calib.x).data).hexdigest()[:16]


@contextmanager
def shared_calibration(
    artifact: Artifact, cfg: QuantizeOrtConfig, ctx: BuildContext, work: Path
) -> Iterator[Path]:
    """The calibration cache file for quantizing ``artifact`` (ONNX Runtime reads the ranges
    from it when it exists, else calibrates and writes it).

    Calibration is two thirds of a ResNet-18 build, and its ranges depend only on the model, the
    calibration data, the method and the sample count: not on the activation type, nor on which
    nodes are quantized or kept in float. So with a cache directory, the ranges of the first
    build are kept there and every later build (and sensitivity ranking) of the same model,
    data and method starts from them: the quantized model is byte-identical
    (``tests/test_trial_speed.py``)."""
    import os
    import shutil

    local = work / "calibration.json"
    if ctx.cache_dir is None:
        yield local
        return
    data = calibration_data_key(ctx)
    key = f"{artifact.content_hash}-{cfg.calibration_method}-{cfg.calib_size}-{data}"
    shared = Path(ctx.cache_dir) / "ort-calibration" / f"{key}.json"
    if shared.is_file():
        shutil.copyfile(shared, local)
    yield local
    if local.is_file() and not shared.is_file():
        shared.parent.mkdir(parents=True, exist_ok=True)
        tmp = shared.with_name(f"{shared.name}.{os.getpid()}.tmp")
        shutil.copyfile(local, tmp)
        tmp.replace(shared)  # atomic: a concurrent build sees the whole file or none


def _load_ranking(key: str, ctx: BuildContext) -> list[str] | None:
    if key in _RANKINGS:
        return _RANKINGS[key]
    if ctx.cache_dir is not None:
        path = Path(ctx.cache_dir) / "sensitivity" / f"{key}.json"
        if path.exists():
            return list(json.loads(path.read_text()))
    return None


def _store_ranking(key: str, ranking: list[str], ctx: BuildContext) -> None:
    _RANKINGS[key] = ranking
    if ctx.cache_dir is not None:
        path = Path(ctx.cache_dir) / "sensitivity" / f"{key}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{id(ranking)}.tmp")
        tmp.write_text(json.dumps(ranking))
        tmp.replace(path)
