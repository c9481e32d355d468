"""``farm measure`` end to end through ``farm.cli.main`` on a real tiny model."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from support.tiny_models import TinyModels, build_tiny_models

from farm.cli import main

#: A short contract so each measurement takes well under a second.
QUICK = [
    "--warmup-s",
    "0.02",
    "--min-duration-s",
    "0.15",
    "--min-samples",
    "12",
    "--max-duration-s",
    "0.5",
]


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    return build_tiny_models(tmp_path_factory.mktemp("tiny-models-cli"))


def measure_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(["measure", *argv, *QUICK, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_report_on_onnxruntime(tiny: TinyModels, capsys: pytest.CaptureFixture[str]) -> None:
    r = measure_json(
        capsys, str(tiny.onnx), "--target", "cpu-onnxruntime", "--batch", "4", "--threads", "1"
    )
    m = r["measurement"]
    assert r["target"] == "cpu-onnxruntime" and r["batch_size"] == 4 and r["threads"] == 1
    assert r["actual_precision"] == "fp32"
    assert 0 < m["p50_ms"] <= m["p90_ms"] <= m["p95_ms"] <= m["p99_ms"]
    assert m["n_samples"] >= 12 and m["duration_s"] > 0 and m["throughput_ips"] > 0
    assert isinstance(m["stable"], bool)
    assert m["stable"] or m["unstable_reason"]
    assert m["cold_ms"] > 0 and r["compile_s"] > 0
    assert m["contract"]["percentile_method"] == "inverted_cdf"
    assert m["contract"]["min_samples"] == 12
    assert r["model_size_bytes"] == tiny.onnx.stat().st_size
    assert r["peak_rss_mib"] > 10
    assert len(r["env_id"]) == 16 and r["environment"]["arch"]


def test_pins_to_the_thread_count_and_restores_affinity(
    tiny: TinyModels, capsys: pytest.CaptureFixture[str]
) -> None:
    before = os.sched_getaffinity(0)
    r = measure_json(capsys, str(tiny.onnx), "--threads", "1")
    if len(before) > 1:
        assert len(r["pinned_cpus"]) == 1 and set(r["pinned_cpus"]) <= before
    else:
        assert r["pinned_cpus"] is None
    assert os.sched_getaffinity(0) == before
    assert measure_json(capsys, str(tiny.onnx), "--threads", "1", "--no-pin")["pinned_cpus"] is None


def test_openvino_bf16_reports_bf16(tiny: TinyModels, capsys: pytest.CaptureFixture[str]) -> None:
    r = measure_json(capsys, str(tiny.onnx), "--target", "cpu-openvino", "--precision", "bf16")
    assert r["actual_precision"] == "bf16"
    r = measure_json(capsys, str(tiny.onnx), "--target", "cpu-openvino", "--precision", "fp32")
    assert r["actual_precision"] == "fp32"


def test_torch_export_program(tiny: TinyModels, capsys: pytest.CaptureFixture[str]) -> None:
    r = measure_json(capsys, str(tiny.pt2), "--target", "cpu-torch", "--batch", "2")
    assert r["runtime"] == "torch" and r["actual_precision"] == "fp32"


def test_server_scenario(tiny: TinyModels, capsys: pytest.CaptureFixture[str]) -> None:
    r = measure_json(capsys, str(tiny.onnx), "--scenario", "server", "--qps", "200")
    assert r["measurement"]["contract"]["scenario"] == "server"
    assert r["measurement"]["contract"]["qps"] == 200


def test_table_output(tiny: TinyModels, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["measure", str(tiny.onnx), "--scenario", "offline", *QUICK]) == 0
    out = capsys.readouterr().out
    for label in (
        "p99 latency",
        "throughput",
        "stable",
        "cold latency",
        "compile time",
        "peak RSS",
        "model size",
        "environment",
        "nearest rank",
    ):
        assert label in out


def _error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(["measure", *argv, *QUICK]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    return captured.err


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.onnx"
    err = _error(capsys, str(missing))
    assert str(missing) in err and "not found" in err


def test_corrupt_onnx_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage that is not protobuf")
    err = _error(capsys, str(bad))
    assert str(bad) in err and "corrupt" in err


def test_corrupt_pt2_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.pt2"
    bad.write_bytes(b"not a zip")
    err = _error(capsys, str(bad), "--target", "cpu-torch")
    assert str(bad) in err and "could not" in err


def test_batch_the_static_shape_cannot_take(
    tiny: TinyModels, capsys: pytest.CaptureFixture[str]
) -> None:
    for target in ("cpu-onnxruntime", "cpu-openvino"):
        err = _error(capsys, str(tiny.onnx_static2), "--target", target, "--batch", "8")
        assert str(tiny.onnx_static2) in err and "static batch of 2" in err


def test_unknown_target(tiny: TinyModels, capsys: pytest.CaptureFixture[str]) -> None:
    err = _error(capsys, str(tiny.onnx), "--target", "cpu-tflite")
    assert "--target" in err and "cpu-tflite" in err and "cpu-onnxruntime" in err


def test_precision_the_target_does_not_run(
    tiny: TinyModels, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _error(capsys, str(tiny.onnx), "--target", "cpu-onnxruntime", "--precision", "bf16")
    assert "--precision" in err and "bf16" in err


def test_file_type_the_target_does_not_take(
    tiny: TinyModels, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _error(capsys, str(tiny.pt2), "--target", "cpu-onnxruntime")
    assert str(tiny.pt2) in err and ".onnx" in err


def test_server_needs_qps(tiny: TinyModels, capsys: pytest.CaptureFixture[str]) -> None:
    assert "--qps" in _error(capsys, str(tiny.onnx), "--scenario", "server")


def test_bad_contract_value_names_the_field(
    tiny: TinyModels, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["measure", str(tiny.onnx), "--min-samples", "0"]) == 2
    assert "`min_samples`" in capsys.readouterr().err


def test_runtime_not_installed(
    tiny: TinyModels, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A None entry in sys.modules makes `import openvino` fail, as on a machine without it.
    monkeypatch.setitem(sys.modules, "openvino", None)
    err = _error(capsys, str(tiny.onnx), "--target", "cpu-openvino")
    assert "cpu-openvino" in err and "not installed" in err
