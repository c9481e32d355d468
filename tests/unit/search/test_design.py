"""A search that finds the optimum: every study starts with its baseline and a
one-factor-at-a-time screening design (``farm.search.space.screening_design``) before its sampler
(the studies that queue it: ``tests/unit/engine/test_studies.py``).
"""

from __future__ import annotations

from typing import Any

from farm.search.space import baseline_params, initial_points, screening_design, target_space
from farm.spec.job import parse_job

KNOBS = {
    "quantize_nncf.preset": ["performance", "mixed"],
    "quantize_nncf.keep_float_layers": [0, 1, 2],
    "runtime.performance_hint": ["LATENCY", "THROUGHPUT"],
}


def job(target: str = "cpu-openvino", **search: Any) -> Any:
    raw = {
        "name": "design",
        "targets": [target],
        "workload": {"model": "resnet18"},
        "search": {
            "precision": ["fp32", "bf16", "int8"],
            "batch_size": [1, 4],
            "threads": [1, 2],
            "knobs": KNOBS if target == "cpu-openvino" else {},
            **search,
        },
    }
    return parse_job(raw, source="design.toml")


def differences(a: dict[str, Any], b: dict[str, Any]) -> set[str]:
    return {k for k in a if a[k] != b[k]}


def test_each_design_point_changes_one_knob_of_the_baseline_or_of_its_int8_point() -> None:
    space = target_space(job(), "cpu-openvino", max_threads=2)
    base = baseline_params(space)
    int8 = {**base, "precision": "int8"}
    design = screening_design(space, "cpu-openvino")
    assert len(design) == len({tuple(sorted(p.items())) for p in design})  # no repeats
    for point in design:
        assert len(differences(point, base)) == 1 or len(differences(point, int8)) == 1, point
    # every value of every knob is measured once the design is done
    for knob, dist in space.items():
        seen = {base[knob], *(p[knob] for p in design)}
        assert seen == set(getattr(dist, "choices", ())), knob


def test_the_design_varies_precision_then_batch_then_the_artifacts_knobs() -> None:
    space = target_space(job(), "cpu-openvino", max_threads=2)
    design = screening_design(space, "cpu-openvino")
    assert [(p["precision"], p["batch_size"]) for p in design[:3]] == [
        ("bf16", 1),
        ("int8", 1),
        ("fp32", 4),
    ]
    quantizer = [p for p in design[3:] if p["precision"] == "int8"]
    assert quantizer and all(p["batch_size"] == 1 and p["threads"] == 2 for p in quantizer)
    rest = design[3 + len(quantizer) :]
    assert rest and all(p["precision"] == "fp32" and p["batch_size"] == 1 for p in rest)


def test_the_design_takes_at_most_half_a_small_budget() -> None:
    space = target_space(job(), "cpu-openvino", max_threads=2)
    everything = initial_points(space, "cpu-openvino")
    assert len(everything) > 5
    assert initial_points(space, "cpu-openvino", budget=9) == everything[:5]
    assert initial_points(space, "cpu-openvino", budget=1) == everything[:1]
    assert initial_points(space, "cpu-openvino", budget=100) == everything


def test_quantizer_knobs_are_varied_only_at_int8() -> None:
    # a target with a quantizer, a job without int8: nothing of the quantizer is varied
    space = target_space(job(precision=["fp32", "bf16"]), "cpu-openvino", max_threads=2)
    assert "quantize_nncf.preset" not in space
    assert all(p["precision"] != "int8" for p in screening_design(space, "cpu-openvino"))
