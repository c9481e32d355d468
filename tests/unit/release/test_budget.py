"""Budget files: parsing, merging, and errors that name the file, the field and the rule."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.factories import trial

from farm.errors import SpecError
from farm.release.budget import Limits, check, load_budget


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "budget.toml"
    p.write_text(text)
    return p


def test_target_limits_override_all_field_by_field(tmp_path: Path) -> None:
    b = load_budget(
        write(
            tmp_path,
            "confidence = 0.9\n[all]\nmax_p95_ms = 5\nmax_accuracy_drop = 0.01\n"
            "[targets.cpu-openvino]\nmax_p95_ms = 2.5\nmin_throughput_ips = 100\n",
        )
    )
    assert b.confidence == 0.9
    assert b.limits_for("cpu-openvino") == Limits(
        max_p95_ms=2.5, max_accuracy_drop=0.01, min_throughput_ips=100
    )
    assert b.limits_for("cpu-onnxruntime") == Limits(max_p95_ms=5, max_accuracy_drop=0.01)
    assert b.applies_to(["cpu-onnxruntime", "cpu-openvino"]) == ["cpu-onnxruntime", "cpu-openvino"]


def test_check_reports_each_failed_limit_and_missing_values() -> None:
    limits = Limits(max_p95_ms=2, min_accuracy=0.9, max_cost_per_1k_usd=1e-5)
    record = trial(1, latency_p95_ms=3.0, quality=0.95, cost_per_1k_usd=None)
    got = {v.field: v for v in check(limits, record)}
    assert set(got) == {"max_p95_ms", "max_cost_per_1k_usd"}
    assert "p95 latency 3 ms > 2 ms" in got["max_p95_ms"].describe()
    assert "not measured" in got["max_cost_per_1k_usd"].describe()


def test_quality_limits_and_their_accuracy_aliases_are_one_limit(tmp_path: Path) -> None:
    """``min_quality`` / ``max_quality_drop`` limit the task's primary metric; the documented
    aliases ``min_accuracy`` / ``max_accuracy_drop`` are the same limits, kept as written."""
    quality = load_budget(write(tmp_path, "[all]\nmax_quality_drop = 0.01\nmin_quality = 0.6\n"))
    alias = Limits(max_accuracy_drop=0.01, min_accuracy=0.6)
    detector = trial(1, quality_metric="map", quality=0.55, quality_drop=0.03)
    for limits in (quality.limits_for("cpu-a"), alias):
        assert limits.max_quality_drop == 0.01 and limits.min_quality == 0.6
        described = sorted(v.describe() for v in check(limits, detector))
        assert described == ["map 0.55 < 0.6", "map drop vs baseline 0.03 > 0.01"]
    assert [k for k, _ in alias.items()] == ["min_accuracy", "max_accuracy_drop"]
    # A target's own alias overrides [all]'s limit of the other spelling, field by field.
    assert Limits(min_quality=0.9).merged_over(alias).items() == [
        ("min_quality", 0.9),
        ("max_accuracy_drop", 0.01),
    ]


@pytest.mark.parametrize(
    ("text", "field", "expected"),
    [
        ("[all]\nmax_p95 = 3\n", "all.max_p95", "one of max_p95_ms"),
        ("[all]\nmax_p95_ms = 'fast'\n", "all.max_p95_ms", "a finite number >= 0"),
        ("[all]\nmax_p95_ms = -1\n", "all.max_p95_ms", "a finite number >= 0"),
        ("[all]\nmin_accuracy = 97\n", "all.min_accuracy", "a fraction in [0, 1]"),
        ("[all]\nmax_quality_drop = 2\n", "all.max_quality_drop", "a fraction in [0, 1]"),
        ("[all]\nmax_p95_ms = true\n", "all.max_p95_ms", "a finite number >= 0"),
        ("[targets]\ncpu-openvino = 3\n", "targets.cpu-openvino", "a table of limits"),
        ("[all]\n", "all / targets.<name>", "at least one limit"),
        ("max_p95_ms = 3\n", "max_p95_ms", "one of the top-level keys"),
        ("confidence = 1.5\n[all]\nmax_p95_ms = 3\n", "confidence", "a number in [0.5, 1)"),
        ("[all\n", "(file)", "valid TOML"),
    ],
)
def test_bad_budget_files_name_file_field_and_rule(
    tmp_path: Path, text: str, field: str, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as err:
        load_budget(path)
    assert str(path) in str(err.value)
    assert f"`{field}`" in str(err.value)
    assert expected in str(err.value)


def test_missing_file_and_unknown_target(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="readable budget file"):
        load_budget(tmp_path / "nope.toml")
    b = load_budget(write(tmp_path, "[targets.cpu-typo]\nmax_p95_ms = 3\n"))
    with pytest.raises(SpecError, match=r"`targets.cpu-typo`: expected a target of the job"):
        b.applies_to(["cpu-openvino"])
