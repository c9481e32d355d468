"""Terminal tables show the knobs that distinguish candidates, not constants."""

from __future__ import annotations

from support.factories import trial

from farm.display import cell, short_params, signed, varying_keys


def test_constant_knobs_are_left_out_of_the_params_column() -> None:
    nncf = {"precision": "int8", "threads": 2, "quantize_nncf.subset_size": 300}
    params = [
        {"precision": "fp32", "batch_size": 1, "threads": 2},
        {**nncf, "batch_size": 1, "quantize_nncf.preset": "mixed"},
        {**nncf, "batch_size": 8, "quantize_nncf.preset": "performance"},
    ]
    trials = [trial(i, params=p) for i, p in enumerate(params)]
    keys = varying_keys(trials)
    assert keys == {"precision", "batch_size", "threads", "quantize_nncf.preset"}
    assert short_params(trials[1].params, keys) == (
        "batch_size=1 precision=int8 preset=mixed threads=2"
    )
    assert "subset_size=300" in short_params(trials[1].params)


def test_a_change_that_rounds_to_zero_prints_without_a_minus_sign() -> None:
    assert cell("{:+.4f}", -0.0) == "+0.0000"
    assert cell("{:+.4f}", -1e-9) == "+0.0000"
    assert cell("{:.4f}", -0.0) == "0.0000"
    assert cell("{:+.4f}", -0.0019) == "-0.0019"
    assert cell("{:.2e}", -3e-5) == "-3.00e-05"
    assert cell("{:+.4f}", None) == "—"
    assert signed(-0.0) == "+0.0000" and signed(-0.00191, 3) == "-0.002"
