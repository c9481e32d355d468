"""The search space: what each target is offered, and the baseline every study starts from."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm.errors import SpecError
from farm.search.space import baseline_params, check_baseline, plan, target_space
from farm.spec.job import parse_job
from workloads import load_workload


def spec(**search: object) -> object:
    raw = {
        "name": "s",
        "targets": ["cpu-onnxruntime", "cpu-openvino"],
        "workload": {"name": "digits"},
        "search": {"precision": ["fp32", "bf16", "int8"], "batch_size": [1, 8], **search},
    }
    return parse_job(raw, source="s.toml")


def test_each_target_is_offered_only_what_it_supports() -> None:
    s = spec(threads=[1, 2, 4])
    ort = target_space(s, "cpu-onnxruntime", max_threads=2)
    ov = target_space(s, "cpu-openvino", max_threads=2)
    assert ort["precision"].choices == ("fp32", "int8")  # no bf16 on ONNX Runtime
    assert ov["precision"].choices == ("fp32", "bf16", "int8")
    assert ort["threads"].choices == (1, 2)  # never more than the serving nodes have
    assert any(k.startswith("quantize_ort.") for k in ort)
    assert not any(k.startswith("quantize_nncf.") for k in ort)


def test_the_baseline_is_fp32_batch1_and_unoptimized() -> None:
    s = spec(transforms=["prune"], knobs={"prune.ratio": [0.5, 0.0]})
    workload = load_workload({"name": "digits"}, Path("."))
    space = target_space(s, "cpu-onnxruntime", 2, workload.traits())
    params = baseline_params(space)
    assert (params["precision"], params["batch_size"], params["threads"]) == ("fp32", 1, 1)
    candidate = plan(s, "cpu-onnxruntime", params, "h")
    assert [name for name, _ in candidate.chain] == ["export_onnx"]


def test_a_space_without_the_unoptimized_model_is_refused() -> None:
    s = spec(transforms=["prune"], knobs={"prune.ratio": [0.25, 0.5]})
    workload = load_workload({"name": "digits"}, Path("."))
    space = target_space(s, "cpu-onnxruntime", 2, workload.traits())
    with pytest.raises(SpecError) as err:
        check_baseline(s, "cpu-onnxruntime", space, torch_source=True)
    assert err.value.field == "search.knobs.prune.ratio"
    assert "unoptimized baseline" in str(err.value)


def test_a_model_with_a_fixed_batch_is_offered_only_that_batch(tmp_path: Path) -> None:
    import torch

    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4, 3),
    ).eval()
    path = tmp_path / "fixed.onnx"
    torch.onnx.export(model, (torch.zeros(1, 3, 16, 16),), str(path), dynamo=False)
    raw = {
        "name": "s",
        "targets": ["cpu-onnxruntime"],
        "workload": {"onnx": str(path)},
        "search": {"batch_size": [1, 8]},
    }
    s = parse_job(raw, source=str(tmp_path / "job.toml"))
    workload = load_workload(s.workload, tmp_path)
    assert workload.fixed_batch == 1
    space = target_space(s, "cpu-onnxruntime", 2, workload.traits())
    assert space["batch_size"].choices == (1,)
