"""The studies: what each measures first, what it asks next, and the budget it gets (a real
Optuna study, no executor)."""

from __future__ import annotations

from typing import Any

from support.fake_executor import prepared_job, spec

from farm.engine.studies import Study, ask, enqueue_first_points, make_studies
from farm.search.space import baseline_params, initial_points

ORT = "cpu-onnxruntime"


def asked_in_order(s: Study, count: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(count):
        trial = s.optuna.ask(dict(s.space))
        out.append(dict(trial.params))
        s.optuna.tell(trial, [1.0, 1.0, 1.0])
    return out


def test_a_study_asks_its_baseline_then_the_design() -> None:
    prepared = prepared_job(spec(trials_per_target=100))
    s = make_studies(prepared, "job")[ORT]
    enqueue_first_points(prepared, s)
    points = initial_points(dict(s.space), ORT, s.budget)
    assert asked_in_order(s, len(points)) == points
    assert points[0] == baseline_params(dict(s.space))


def test_a_resumed_study_skips_what_it_measured() -> None:
    prepared = prepared_job(spec(trials_per_target=100))
    s = make_studies(prepared, "job")[ORT]
    points = initial_points(dict(s.space), ORT, s.budget)
    s.seen = {prepared.plan(ORT, p).content_hash for p in points[:2]}
    enqueue_first_points(prepared, s)
    assert asked_in_order(s, len(points) - 2) == points[2:]


def test_a_budget_larger_than_the_space_is_cut_to_its_distinct_candidates() -> None:
    """fp32 and int8 at batch 1 and 8, the quantizer's activation type U8 or S8: 8 points, but
    the quantizer's knob makes no new candidate at fp32, so 2 + 4 = 6 distinct ones."""
    knobs = {
        "quantize_ort.calibration_method": ["MinMax"],
        "quantize_ort.activation_type": ["U8", "S8"],
        "quantize_ort.keep_float_layers": [0],
    }
    prepared = prepared_job(spec(trials_per_target=100, knobs=knobs))
    assert make_studies(prepared, "job")[ORT].budget == 6
    small = prepared_job(spec(trials_per_target=4, knobs=knobs))
    assert make_studies(small, "job")[ORT].budget == 4


def test_a_sampler_repeating_measured_points_stops_the_study() -> None:
    prepared = prepared_job(spec(trials_per_target=100, precision=["fp32"], batch_size=[1]))
    s = make_studies(prepared, "job")[ORT]
    s.budget = 100  # more than the space holds
    first = ask(prepared, s, 0.0)
    assert first is not None and first.is_baseline
    assert ask(prepared, s, 0.0) is None
    assert s.stopped is not None and "search space exhausted" in s.stopped
