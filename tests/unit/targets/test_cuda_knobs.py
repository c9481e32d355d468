"""The CUDA targets' knobs and their search space, with ``torch.cuda`` unavailable: what the
catalog offers, what the runtime refuses, and the runtime options the engine searches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.tiny_models import TinyModels

from farm.artifact import Artifact
from farm.errors import UsageError
from targets import RuntimeOptions, get_target, runtime_class
from targets.cuda_torch_runtime import (
    COMPILE_MODES,
    GpuKnobs,
)


def test_the_catalog_offers_what_matters_on_gpus_and_the_runtime_accepts_all_of_it() -> None:
    target = get_target("cuda-torch")
    assert set(target.precisions) == {"fp32", "fp16", "bf16"}
    assert target.knobs == {
        "channels_last": [False, True],
        "cuda_graphs": [False, True],
        "compile": list(COMPILE_MODES),
        "fp32_math": ["ieee", "tf32"],
    }
    for knob, values in target.knobs.items():
        for value in values:
            assert getattr(GpuKnobs.from_extra("cuda-torch", {knob: value}), knob) == value
    assert get_target("cuda-onnxruntime").knobs == {"provider": ["cuda", "tensorrt"]}


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ({"channels_last": "yes"}, "channels_last`: expected true or false"),
        ({"compile": "turbo"}, "compile`: expected one of"),
        ({"fp32_math": "fp32"}, "fp32_math`: expected one of"),
        ({"graphs": True}, r"unknown option\(s\) \['graphs'\]"),
    ],
)
def test_bad_knob_values_are_the_jobs_error_even_without_a_gpu(
    extra: dict[str, Any],
    match: str,
    tiny: TinyModels,
    tmp_path: Path,
) -> None:
    with pytest.raises(UsageError, match=match):
        GpuKnobs.from_extra("cuda-torch", extra)
    artifact = Artifact.read_from("torch-export", [tiny.pt2])
    with pytest.raises(UsageError, match=match):  # refused before the GPU is even looked for
        runtime_class("cuda-torch")().compile(artifact, RuntimeOptions(extra=extra), tmp_path)


def test_inductor_graph_modes_capture_their_own_cuda_graphs() -> None:
    assert GpuKnobs(compile="reduce-overhead").graphs == "inductor"
    assert GpuKnobs(compile="max-autotune", cuda_graphs=True).graphs == "inductor"
    assert GpuKnobs(compile="max-autotune-no-cudagraphs", cuda_graphs=True).graphs == "farm"
    assert GpuKnobs(cuda_graphs=True).graphs == "farm"
    assert GpuKnobs().graphs is None


def test_the_engine_searches_the_knobs_as_runtime_options_with_batches_up_to_256() -> None:
    from farm.search.space import baseline_params, plan, target_space
    from farm.spec.job import parse_job

    spec = parse_job(
        {
            "name": "gpu",
            "targets": ["cuda-torch"],
            "workload": {"name": "digits"},
            "search": {
                "precision": ["fp32", "fp16", "bf16"],
                "batch_size": [1, 64, 256],
                "knobs": {
                    "runtime.channels_last": [False, True],
                    "runtime.cuda_graphs": [False, True],
                    "runtime.compile": ["off", "max-autotune"],
                    "runtime.fp32_math": ["ieee", "tf32"],
                },
            },
        },
        source="gpu.toml",
    )
    space = target_space(spec, "cuda-torch", max_threads=4)
    assert space["precision"].choices == ("fp32", "fp16", "bf16")  # type: ignore[attr-defined]
    assert space["batch_size"].choices == (1, 64, 256)  # type: ignore[attr-defined]
    assert space["runtime.compile"].choices == ("off", "max-autotune")  # type: ignore[attr-defined]
    base = baseline_params(space)
    assert base["runtime.compile"] == "off" and base["runtime.cuda_graphs"] is False
    point = {**base, "precision": "bf16", "batch_size": 256, "runtime.cuda_graphs": True}
    options = plan(spec, "cuda-torch", point, "w").options
    knobs = GpuKnobs.from_extra("cuda-torch", options.extra)  # what the runtime will read
    assert (options.precision, options.batch_size, knobs.cuda_graphs) == ("bf16", 256, True)
