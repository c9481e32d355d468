"""``farm targets`` on the local Ray instance, and the probe's verdicts on this real machine."""

from __future__ import annotations

import json
import platform

import pytest

from farm.cli import main
from farm.cluster.capabilities import local_targets
from farm.cluster.fleet import probe_node
from targets import catalog


def _run_json(capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    rc = main(["targets", "--json"])
    return rc, json.loads(capsys.readouterr().out)


def test_lists_this_node_with_its_hardware_and_the_targets_it_serves(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rc, report = _run_json(capsys)
    assert rc == 0
    (node,) = report["nodes"]
    probe = node["probe"]
    assert probe["arch"] == platform.machine() == "x86_64"
    assert probe["cpu_model"] and probe["logical_cores"] >= 1
    assert node["error"] is None and node["mislabelled"] == {}
    # Locally the farm advertises exactly the targets whose runtimes import here.
    assert sorted(node["advertised"]) == sorted(local_targets())
    assert {"cpu-onnxruntime", "cpu-openvino", "cpu-torch"} <= set(node["serves"])
    assert not [t for t in node["serves"] if catalog()[t].arch != "x86_64"]
    assert probe["runtimes"]["onnxruntime"] is None  # None: it runs here


def test_table_output_names_the_node_and_its_targets(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["targets"]) == 0
    out = capsys.readouterr().out
    assert platform.node() in out
    assert "x86_64" in out and "cpu-onnxruntime" in out


def test_a_mislabelled_claim_is_flagged_with_the_reason() -> None:
    """The probe itself, run here: an x86_64 machine claiming an arm64 target."""
    report = probe_node(["arm64-onnxruntime", "cpu-onnxruntime", "no-such-target"])
    assert report["mislabelled"] == {
        "arm64-onnxruntime": "machine is x86_64, arm64-onnxruntime needs aarch64"
    }
    assert report["unknown_targets"] == ["no-such-target"]
    assert "cpu-onnxruntime" in report["servable"]


def test_without_a_gpu_cuda_targets_are_not_servable_and_say_why() -> None:
    from farm.cluster.capabilities import has_cuda_gpu

    if has_cuda_gpu():
        pytest.skip("this machine has a CUDA GPU")
    report = probe_node(["cuda-torch"])
    assert "cuda-torch" not in report["servable"]
    assert "no CUDA GPU" in report["mislabelled"]["cuda-torch"]


def test_a_bad_timeout_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["targets", "--timeout", "0"]) == 2
    assert "--timeout" in capsys.readouterr().err
