"""``benchmarks/model_zoo.py``: the size rule, resuming, the pass rates and the published matrix.

The helpers are tested on toy results; one ``slow`` test sweeps a real torchvision model
through the farm's tasks end to end.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "benchmarks"))

import model_zoo  # noqa: E402
from model_zoo import COLUMNS, Sweep, cell_key  # noqa: E402


def cells(*failed: str) -> dict[str, dict[str, Any]]:
    """Every column ok but the ``failed`` ones (column keys)."""
    out = {}
    for column in COLUMNS:
        key = cell_key(*column)
        status = "failed" if key in failed else "ok"
        out[key] = {"status": status, "reason": f"why {key}" if key in failed else "", "seconds": 1}
    return out


def results(tmp_path: Path) -> Path:
    data = {
        "date": "2026-11-29",
        "machine": "test machine",
        "versions": {"torch": "9.9"},
        "models": {
            "good": {"params": 2e6, "size": 32, "cells": cells(), "seconds": 60.0},
            "bad": {
                "params": 5e6,
                "size": 64,
                "seconds": 120.0,
                "cells": cells("dynamo/cpu-onnxruntime/int8", "torchscript/cpu-openvino/fp32"),
            },
            "huge": {"params": 5e8, "skip": "500M parameters > 100M", "cells": {}},
        },
    }
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    return path


def test_smallest_size_is_the_first_size_the_eager_model_takes() -> None:
    import torch
    from torch import nn

    class NeedsAtLeast64(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.shape[-1] < 64:
                raise RuntimeError("input too small")
            return torch.zeros(x.shape[0], 1000)

    size, before = model_zoo.smallest_size(NeedsAtLeast64())
    assert size == 64 and "32: RuntimeError: input too small" in before
    assert model_zoo.smallest_size(nn.Flatten())[0] is None  # never (2, 1000) logits


def test_only_missing_or_asked_for_cells_are_run_again(tmp_path: Path) -> None:
    results(tmp_path)
    sweep = Sweep(tmp_path)
    assert sweep.todo("good", "none") == [] and sweep.todo("good", "failed") == []
    assert len(sweep.todo("good", "all")) == len(COLUMNS)
    assert sweep.todo("bad", "failed") == [
        ("torchscript", "cpu-openvino", "fp32"),
        ("dynamo", "cpu-onnxruntime", "int8"),
    ]
    assert sweep.todo("huge", "failed") == []  # skipped by size: not re-run
    assert sweep.todo("new", "none") == COLUMNS


def test_pass_rates_count_the_swept_models_and_either_export(tmp_path: Path) -> None:
    data = json.loads(results(tmp_path).read_text())
    rates = {r["column"]: r for r in model_zoo.pass_rates(data["models"])}
    assert rates["TS ORT fp32"]["rate"] == 1.0 and rates["TS ORT fp32"]["models"] == 2
    assert rates["TS OV fp32"]["ok"] == 1 and rates["TS OV fp32"]["failed"] == 1
    assert rates["dynamo ORT int8"]["rate"] == 0.5
    assert rates["either export OV fp32"]["rate"] == 1.0  # the dynamo export passed
    assert rates["either export ORT int8"]["rate"] == 1.0


def test_the_matrix_numbers_each_reason_once_and_keeps_the_hand_written_text(
    tmp_path: Path,
) -> None:
    data = json.loads(results(tmp_path).read_text())
    body = model_zoo.markdown(data, "the sweep took 0.1 h")
    assert "| good | 2.0M | 32 | ok |" in body
    assert "✗ [1]" in body and "1. why torchscript/cpu-openvino/fp32" in body
    assert "2. why dynamo/cpu-onnxruntime/int8" in body
    assert "- huge: 500M parameters > 100M" in body
    assert "Swept on 2026-11-29 on test machine; the sweep took 0.1 h." in body

    doc = tmp_path / "support_matrix.md"
    doc.write_text("# Support matrix\n\nWritten by hand.\n\n## Limitations\n\nAlso by hand.\n")
    model_zoo.write_markdown(doc, body)
    model_zoo.write_markdown(doc, body.replace("0.1 h", "0.2 h"))  # regenerated in place
    text = doc.read_text()
    assert text.count(model_zoo.MARK_BEGIN) == 1 and "0.2 h" in text and "0.1 h" not in text
    assert "Written by hand." in text and "Also by hand." in text


def test_a_run_stopped_half_way_keeps_its_wall_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run's wall time is saved after each model, not only when the whole run ends."""
    sweep = Sweep(tmp_path)
    swept: list[str] = []

    def run_model(self: Sweep, name: str, todo: Any, say: Any) -> None:
        if swept:
            raise KeyboardInterrupt  # the user stops the sweep during the second model
        swept.append(name)

    monkeypatch.setattr(Sweep, "run_model", run_model)
    with pytest.raises(KeyboardInterrupt):
        model_zoo.run_all(sweep, ["a", "b"], "none", 1)
    runs = json.loads((tmp_path / "results.json").read_text())["runs"]
    assert len(runs) == 1 and runs[0]["models"] == 2 and runs[0]["wall_s"] >= 0.0
    assert "in 1 run(s)" in model_zoo.time_note(json.loads(sweep.path.read_text()))


@pytest.mark.slow
def test_a_model_is_swept_through_the_farm_and_resumed(tmp_path: Path) -> None:
    """squeezenet1_1 (1.2M parameters): every column runs through the farm's tasks; a second
    run has nothing left to do."""
    out = tmp_path / "zoo"
    doc = tmp_path / "matrix.md"
    argv = ["--models", "squeezenet1_1", "--results", str(out), "--markdown", str(doc)]
    # As a user runs it: a script whose Ray tasks must import in fresh worker processes.
    script = ROOT / "benchmarks" / "model_zoo.py"
    done = subprocess.run([sys.executable, str(script), *argv], cwd=ROOT, timeout=1200)
    assert done.returncode == 0
    record = json.loads((out / "results.json").read_text())["models"]["squeezenet1_1"]
    assert record["size"] == 32 and record["params"] < 2e6
    statuses = {k: c["status"] for k, c in record["cells"].items()}
    assert set(statuses) == {cell_key(*c) for c in COLUMNS}
    assert statuses["torchscript/cpu-onnxruntime/fp32"] == "ok", record["cells"]
    assert statuses["torchscript/cpu-onnxruntime/int8"] == "ok", record["cells"]
    int8 = record["cells"]["torchscript/cpu-onnxruntime/int8"]
    assert int8["precision_actual"] == "int8+fp32"
    assert "| squeezenet1_1 | 1.2M | 32 |" in doc.read_text()
    assert json.loads((out / "results.json").read_text())["runs"][0]["wall_s"] > 0
    assert Sweep(out).todo("squeezenet1_1", "none") == []
