"""What runs in the model-zoo sweep's Ray tasks (fresh processes): the model built, probed and
exported, each export loaded as a farm workload, the cpu-torch artifact, and the farm's plan of
a cell's trial.

A module of its own, not ``model_zoo.py``'s ``__main__``: Ray pickles these functions by
reference, and the workers import this module from the ``PYTHONPATH`` the driver sets.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _zoo_cells import ROOT, SAMPLES, SEED, SIZES, one_line


def count_params(name: str) -> int:
    """Parameters of the architecture, built on the meta device (no memory, no init); models
    that cannot be built there (RegNet's widths come from ``.tolist()``) report torchvision's
    documented count."""
    import torch
    import torchvision

    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = torchvision.models.get_model(name, weights=None)
        return sum(p.numel() for p in model.parameters())
    except Exception:
        return documented_params(name)


def build_model(name: str) -> Any:
    """The architecture with seeded random weights, in eval mode.

    Parameters torchvision initialises to all zeros (ViT's classifier head) are drawn from
    N(0, 0.02²) instead: with a zero head every logit is 0, and comparing outputs would prove
    nothing."""
    import torch
    import torchvision

    torch.manual_seed(SEED)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GoogLeNet / Inception init warnings
        model = torchvision.models.get_model(name, weights=None).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() > 1 and not parameter.any():
                parameter.normal_(0.0, 0.02)
    return model


def smallest_size(model: Any) -> tuple[int | None, str]:
    """The first of :data:`SIZES` the eager model takes (batch 2 → (2, 1000) logits), and the
    error at the size before it."""
    import torch

    last = ""
    for size in SIZES:
        try:
            with torch.inference_mode():
                out = model(torch.zeros(2, 3, size, size))
            if tuple(out.shape) == (2, 1000):
                return size, last
            last = f"{size}: output shape {tuple(out.shape)}"
        except Exception as exc:
            last = f"{size}: {one_line(exc, 200)}"
    return None, last


def export_onnx(model: Any, size: int, exporter: str, path: Path) -> dict[str, Any]:
    """Export as users do (each exporter's default opset, a dynamic batch dimension)."""
    import onnx
    import torch

    example = (torch.randn(2, 3, size, size),)
    start = time.perf_counter()
    # No torch.no_grad(): users rarely wrap the export in it, and under it nn.MultiheadAttention
    # takes its fused fast path, which the TorchScript exporter cannot export (ViT).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "torchscript":
            torch.onnx.export(
                model,
                example,
                str(path),
                dynamo=False,
                input_names=["input"],
                output_names=["logits"],
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            )
        else:
            torch.onnx.export(
                model,
                example,
                str(path),
                dynamo=True,
                input_names=["input"],
                output_names=["logits"],
                dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1024)},),
            )
    proto = onnx.load(str(path), load_external_data=False)
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    return {
        "opset": opset,
        "nodes": len(proto.graph.node),
        "export_s": round(time.perf_counter() - start, 1),
    }


def relative_diff(got: Any, want: Any) -> float:
    """max |got − want| relative to the largest |want| (absolute when ``want`` is all zeros)."""
    import numpy as np

    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    scale = float(np.max(np.abs(want))) if want.size else 0.0
    return float(np.max(np.abs(got - want))) / (scale if scale > 0 else 1.0)


@dataclass
class Prepared:
    """One model, ready for its cells: per exporter the farm's source artifact, data and
    reference (or why not), and the cpu-torch artifact."""

    probe: dict[str, Any]
    exports: dict[str, dict[str, Any]]
    onnx: dict[str, tuple[Any, Any, Any]]
    torch: tuple[Any, Any, Any] | None
    torch_error: str | None


def prepare_model(
    name: str, exporters: list[str], want_torch: bool, onnx_dir: str, known: dict[str, Any]
) -> Prepared:
    """Probe (parameters, input size), export, validate and load each export as a farm
    workload (what a job does before its first trial), and build the cpu-torch artifact.

    ``known`` is the model's probe so far (its parameter count, and its size from an earlier
    run, which skips the size search)."""
    probe = dict(known)
    model = build_model(name)
    if "size" not in probe:
        start = time.perf_counter()
        probe["size"], probe["size_note"] = smallest_size(model)
        probe["probe_s"] = round(time.perf_counter() - start, 1)
    size = probe["size"]
    if size is None:
        probe["skip"] = f"no input size in {list(SIZES)} runs in eager torch ({probe['size_note']})"
        return Prepared(probe, {}, {}, None, None)

    exports: dict[str, dict[str, Any]] = {}
    onnx: dict[str, tuple[Any, Any, Any]] = {}
    for exporter in exporters:
        path = Path(onnx_dir) / f"{name}.{exporter}.onnx"
        try:
            record = export_onnx(model, size, exporter, path)
        except Exception as exc:  # PyTorch's exporter gave up: the farm never saw a model
            exports[exporter] = {"status": "failed", "stage": "export", "reason": one_line(exc)}
            continue
        try:
            onnx[exporter] = farm_source(path)
        except Exception as exc:  # the farm refused the model: its cells fail
            record.update(status="failed", stage="validation", reason=one_line(exc))
            exports[exporter] = record
            continue
        record["status"] = "ok"
        record["eager_diff"] = eager_diff(model, *onnx[exporter][1:])
        exports[exporter] = record

    torch_prepared, torch_error = None, None
    if want_torch:
        try:
            torch_prepared = farm_torch_source(name, model, size)
        except Exception as exc:
            torch_error = one_line(exc)
    return Prepared(probe, exports, onnx, torch_prepared, torch_error)


def farm_source(path: Path) -> tuple[Any, Any, Any]:
    """What ``farm run`` makes of ``[workload] onnx = path`` with synthetic data before its
    first trial: the validated workload's source artifact, data and fp32 reference."""
    from farm.engine import reference_predictions
    from workloads import load_workload

    workload = load_workload({"onnx": str(path), "data": {"synthetic_samples": SAMPLES}}, ROOT)
    data = workload.data()
    source = workload.source_artifact(ROOT / "results" / "models")
    reference = reference_predictions(source, data, workload.task, workload.fixed_batch)
    return source, data, reference


def eager_diff(model: Any, data: Any, reference: Any) -> float:
    """How far the farm's fp32 reference (the export on ONNX Runtime) is from eager torch."""
    import torch

    with torch.inference_mode():
        eager = model(torch.from_numpy(data.eval.x)).numpy()
    return relative_diff(reference, eager)


def farm_torch_source(name: str, model: Any, size: int) -> tuple[Any, Any, Any]:
    """The cpu-torch artifact as the farm builds it from a torch model (``export_torch`` on a
    ``torch-state`` artifact), with synthetic data and the eager reference."""
    from farm.artifact import Artifact
    from farm.engine import CandidateRunner, reference_predictions
    from workloads import register_builder
    from workloads.datasets.config import parse_data_config
    from workloads.datasets.imagefolder import load_data
    from workloads.tasks import Classification

    register_builder("model_zoo")(zoo_builder)
    cfg = parse_data_config({"synthetic_samples": SAMPLES}, ROOT, "classification")
    data = load_data(cfg, 1000, (3, size, size))
    source = Artifact(
        "torch-state",
        {"state_dict.pt": state_dict_with_versions(model)},
        {
            "builder": "model_zoo",
            "builder_kwargs": {"name": name},
            "input_shape": [3, size, size],
            "num_classes": 1000,
            "workload": name,
        },
    )
    task = Classification()
    reference = reference_predictions(source, data, task)
    here = CandidateRunner(source, data, reference, task, seed=SEED, here=True)
    artifact, _ = here.build(trial_candidate("cpu-torch", "fp32"))
    return artifact, data, reference


def state_dict_with_versions(model: Any) -> bytes:
    """``torch.save(model.state_dict())``: unlike ``workloads.state_dict_bytes`` it keeps the
    state dict's ``_metadata`` (module versions), which MNASNet's loader requires."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getvalue()


def zoo_builder(name: str) -> Any:
    """The builder the cpu-torch source artifact names (registered in the task's process)."""
    import torchvision

    return torchvision.models.get_model(name, weights=None)


def trial_candidate(target: str, precision: str) -> Any:
    """The candidate of ``target``'s baseline trial at ``precision`` (batch 1, one thread,
    every quantizer knob at its first value) for an ONNX-file workload, planned by the farm."""
    from farm.search.space import baseline_params, plan, target_space
    from farm.spec.job import parse_job

    spec = parse_job(
        {
            "name": "model-zoo",
            "targets": [target],
            "workload": {"onnx": "model.onnx"},
            "search": {"precision": ["fp32", precision], "batch_size": [1], "threads": [1]},
        },
        source="benchmarks/model_zoo.py",
    )
    from workloads.base import WorkloadTraits

    torch_source = target == "cpu-torch"
    space = target_space(spec, target, 1, WorkloadTraits(torch_source=torch_source))
    params = {**baseline_params(space), "precision": precision}
    return plan(spec, target, params, "", torch_source=torch_source)


def documented_params(name: str) -> int:
    """torchvision's documented parameter count (no model is built): the sweep's order."""
    import torchvision

    return int(next(iter(torchvision.models.get_model_weights(name))).meta["num_params"])
