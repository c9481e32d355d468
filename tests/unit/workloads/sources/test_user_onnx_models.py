"""ONNX models users bring: dynamic input sizes, external weights, quantization that keeps its
temporary files to itself, jobs in which nothing could be measured, and failures that name
their step.

The models are tiny (a few convolutions, built with ``onnx.helper`` or exported from the tiny
CNN); a torchvision RegNet is exported at 32×32 and marked ``slow``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support.predict import predictions
from support.tiny_models import tiny_cnn

from farm.errors import SpecError, StepError
from targets import RuntimeOptions
from workloads import load_workload

#: A measurement that takes a fraction of a second.
QUICK = {"warmup_s": 0.0, "warmup_iters": 1, "min_duration_s": 0.0, "min_samples": 4}


def export_tiny(path: Path, dynamic_hw: bool = False, external: bool = False) -> Path:
    """The tiny CNN (10 classes) as ONNX with a dynamic batch and, optionally, dynamic H/W (as
    many OCR and detection backbones are exported) or weights in an external data file (as
    ``torch.onnx.export(dynamo=True)`` writes them)."""
    import onnx
    import torch

    axes = {0: "batch", 2: "height", 3: "width"} if dynamic_hw else {0: "batch"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            tiny_cnn(),  # type: ignore[arg-type]
            (torch.randn(2, 3, 32, 32),),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": axes, "logits": {0: "batch"}},
        )
    if external:
        model = onnx.load(str(path))
        onnx.save_model(
            model,
            str(path),
            save_as_external_data=True,
            location=f"{path.name}.data",
            size_threshold=0,
        )
    return path


def job_file(directory: Path, workload: str, targets: str = '["cpu-onnxruntime"]') -> Path:
    path = directory / "job.toml"
    path.write_text(
        f"""
name = "user-model"
targets = {targets}
[workload]
{workload}
[search]
trials_per_target = 1
precision = ["fp32"]
batch_size = [1]
threads = [1]
[measurement]
min_duration_s = 0.0
min_samples = 4
warmup_s = 0.0
"""
    )
    return path


# -- dynamic height and width -------------------------------------------------------------------


def test_dynamic_hw_without_input_size_is_refused_by_farm_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from farm.cli import main

    export_tiny(tmp_path / "model.onnx", dynamic_hw=True)
    job = job_file(tmp_path, 'onnx = "model.onnx"')
    db = tmp_path / "farm.duckdb"
    assert main(["run", str(job), "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert "`workload.input_size`" in err and "dynamic input height or width" in err
    assert "input_size = [" in err  # says what to write
    assert not db.exists()  # nothing written


def test_declared_size_sets_the_input_and_the_synthetic_data(tmp_path: Path) -> None:
    export_tiny(tmp_path / "model.onnx", dynamic_hw=True)
    section = {"onnx": "model.onnx", "input_size": [24, 40], "data": {"synthetic_samples": 5}}
    workload = load_workload(section, tmp_path)
    assert workload.input_shape == (3, 24, 40)
    data = workload.data()
    assert data.eval.x.shape == (5, 3, 24, 40) and data.calib.x.shape == (5, 3, 24, 40)
    assert workload.source_artifact(tmp_path).meta["input_shape"] == [3, 24, 40]
    other = load_workload({**section, "input_size": [32, 32]}, tmp_path)
    assert other.recipe_hash != workload.recipe_hash  # another size is another workload


def test_imagefolder_images_are_resized_to_exactly_the_declared_size(tmp_path: Path) -> None:
    from PIL import Image

    export_tiny(tmp_path / "model.onnx", dynamic_hw=True)
    rng = np.random.default_rng(0)
    for c in range(10):  # the model has 10 outputs: one folder per class
        folder = tmp_path / "val" / f"class{c}"
        folder.mkdir(parents=True)
        for i, size in enumerate([(50, 30), (31, 77)]):  # (width, height), other aspect ratios
            pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")
    section = {"onnx": "model.onnx", "input_size": [24, 40], "data": {"eval": "val"}}
    data = load_workload(section, tmp_path).data()
    assert data.eval.x.shape[1:] == (3, 24, 40) and data.calib.x.shape[1:] == (3, 24, 40)
    assert len(data.eval) + len(data.calib) == 20


def test_a_declared_size_that_contradicts_the_graph_is_refused(tmp_path: Path) -> None:
    export_tiny(tmp_path / "model.onnx")  # static 32x32
    with pytest.raises(SpecError, match=r"expected 32, the fixed input height of .*, got 24"):
        load_workload({"onnx": "model.onnx", "input_size": [24, 32]}, tmp_path)


@pytest.mark.slow
def test_the_same_model_with_input_size_runs_as_a_job(tmp_path: Path) -> None:
    from farm.engine.runner import JobRunner
    from farm.spec.job import load_job
    from farm.store.db import Store

    export_tiny(tmp_path / "model.onnx", dynamic_hw=True)
    job = job_file(tmp_path, 'onnx = "model.onnx"\ninput_size = [24, 40]')
    store = Store(tmp_path / "farm.duckdb")
    runner = JobRunner(load_job(job), store)
    assert runner.run() == "completed"
    (trial,) = store.trials(runner.job_id)
    assert trial.status == "completed" and trial.quality == 1.0  # top-1 vs itself
    assert runner.unmeasured == {}


# -- a job in which nothing could be measured ---------------------------------------------------


@pytest.mark.slow
def test_a_job_whose_every_baseline_fails_is_failed(tmp_path: Path) -> None:
    from support.faulty import FailingEvaluations

    from farm.engine.runner import JobRunner
    from farm.spec.job import load_job
    from farm.store.db import Store

    export_tiny(tmp_path / "model.onnx")
    targets = ["cpu-onnxruntime", "cpu-openvino"]
    job = job_file(tmp_path, 'onnx = "model.onnx"', targets=str(targets).replace("'", '"'))
    store = Store(tmp_path / "farm.duckdb")
    baselines_fail = FailingEvaluations(lambda label: label.trial == 0)
    runner = JobRunner(load_job(job), store, executor=baselines_fail)
    assert runner.run() == "failed"
    assert sorted(runner.unmeasured) == targets
    assert all("injected fault" in why for why in runner.unmeasured.values())
    (row,) = store.query("SELECT status, message FROM jobs WHERE job_id = ?", [runner.job_id])
    assert row["status"] == "failed"
    for t in targets:  # one line per target, with the reason
        assert f"{t}: nothing measured: trial #0 failed: " in row["message"]


# -- external data --------------------------------------------------------------------------------


def test_weights_in_an_external_data_file_travel_inside_the_artifact(tmp_path: Path) -> None:
    import onnxruntime as ort

    export_tiny(tmp_path / "model.onnx", external=True)
    assert (tmp_path / "model.onnx.data").stat().st_size > 1000
    workload = load_workload({"onnx": "model.onnx"}, tmp_path)
    artifact = workload.source_artifact(tmp_path)
    assert list(artifact.files) == ["model.onnx"]
    elsewhere = artifact.write_to(tmp_path / "elsewhere")  # no data file beside it
    session = ort.InferenceSession(str(elsewhere), providers=["CPUExecutionProvider"])
    x = np.zeros((1, 3, 32, 32), np.float32)
    assert session.run(None, {"input": x})[0].shape == (1, 10)

    before = workload.recipe_hash
    data = bytearray((tmp_path / "model.onnx.data").read_bytes())
    data[:4] = b"\0\0\0\0"  # other weights, same graph file
    (tmp_path / "model.onnx.data").write_bytes(bytes(data))
    assert load_workload({"onnx": "model.onnx"}, tmp_path).recipe_hash != before


def test_a_missing_external_data_file_is_named(tmp_path: Path) -> None:
    export_tiny(tmp_path / "model.onnx", external=True)
    (tmp_path / "model.onnx.data").unlink()
    with pytest.raises(SpecError, match=r"`workload.onnx`: .*model.onnx.data is missing") as err:
        load_workload({"onnx": "model.onnx"}, tmp_path, source="job.toml")
    assert err.value.path == "job.toml"


# -- quantization: temporary files, pre-processing ----------------------------------------------


def shape_puzzle_onnx(path: Path) -> Path:
    """A small CNN that ONNX Runtime runs and quantizes but whose symbolic shape inference gives
    up (a data-dependent Slice feeds an Add): the case in which ``quant_pre_process`` writes
    ``sym_shape_infer_temp.onnx`` and a uuid-named ``.data`` file into the current directory."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def const(name: str, value: Any) -> Any:
        return numpy_helper.from_array(np.asarray(value), name)

    inits = [
        const("W", rng.standard_normal((16, 3, 3, 3)).astype(np.float32)),  # > 1 KB: external
        const("B", np.zeros(16, np.float32)),
        const("FW", rng.standard_normal((10, 16)).astype(np.float32)),
        const("FB", np.zeros(10, np.float32)),
        const("starts", np.array([0], np.int64)),
        const("axes", np.array([0], np.int64)),
        const("big", np.array([1_000_000], np.int64)),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "W", "B"], ["y"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["y"], ["r"], name="relu"),
        helper.make_node("ReduceMax", ["r"], ["m"], keepdims=0, name="max"),
        helper.make_node("Cast", ["m"], ["mi"], to=TensorProto.INT64, name="cast"),
        helper.make_node("Unsqueeze", ["mi", "axes"], ["mi1"], name="unsqueeze"),
        helper.make_node("Add", ["mi1", "big"], ["ends"], name="ends"),
        helper.make_node("Slice", ["r", "starts", "ends", "axes"], ["s"], name="slice"),
        helper.make_node("Add", ["r", "s"], ["a"], name="add"),
        helper.make_node("GlobalAveragePool", ["a"], ["g"], name="pool"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "FW", "FB"], ["logits"], transB=1, name="fc"),
    ]
    graph = helper.make_graph(
        nodes,
        "shape-puzzle",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_quantize_ort_leaves_no_files_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import onnx
    from support.worker import build_here

    shape_puzzle_onnx(tmp_path / "model.onnx")
    workload = load_workload({"onnx": "model.onnx", "data": {"synthetic_samples": 8}}, tmp_path)
    source, data = workload.source_artifact(tmp_path), workload.data()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    (artifact,) = build_here(source, [("quantize_ort", ())], data)
    assert sorted(p.name for p in cwd.iterdir()) == []
    # the pre-processing that writes there did run and give up, and the artifact says so
    assert artifact.meta["quant_preprocess"] == "skip_symbolic_shape"
    (why,) = artifact.meta["quant_preprocess_errors"]
    assert why.startswith("full: ") and "Incomplete symbolic shape inference" in why
    ops = {n.op_type for n in onnx.load_from_string(artifact.files["model.onnx"]).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops


# -- failures that name their step --------------------------------------------------------------


def test_a_quantization_failure_names_the_step_and_keeps_the_runtime_message(
    tmp_path: Path,
) -> None:
    from dataclasses import replace

    from support.worker import build_here

    from workloads import Split

    export_tiny(tmp_path / "model.onnx")
    workload = load_workload({"onnx": "model.onnx", "data": {"synthetic_samples": 8}}, tmp_path)
    data = workload.data()
    wrong = replace(data, calib=Split(np.zeros((8, 3, 16, 16), np.float32)))  # not 32x32
    with pytest.raises(StepError) as info:
        build_here(workload.source_artifact(tmp_path), [("quantize_ort", ())], wrong)
    message = str(info.value)
    assert message.startswith("quantize failed (quantize_ort): ")
    assert "Got invalid dimensions for input: input" in message and "\n" not in message


def test_a_runtime_failure_names_the_step_the_runtime_and_the_node(tmp_path: Path) -> None:
    """A graph exported with its batch baked into a Reshape (a classic of user exports): batch 1
    runs, batch 2 fails inside the classifier, and the error says where."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from support.worker import evaluate_here

    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "W"),
        numpy_helper.from_array(np.array([1, -1], np.int64), "flat"),
        numpy_helper.from_array(rng.standard_normal((10, 4 * 8 * 8)).astype(np.float32), "FW"),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "W"], ["y"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Reshape", ["y", "flat"], ["f"], name="baked_batch"),
        helper.make_node("Gemm", ["f", "FW"], ["logits"], transB=1, name="classifier"),
    ]
    graph = helper.make_graph(
        nodes,
        "baked",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        inits,
    )
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "m.onnx"
    )
    workload = load_workload({"onnx": "m.onnx", "data": {"synthetic_samples": 4}}, tmp_path)
    source, data = workload.source_artifact(tmp_path), workload.data()
    reference = predictions(source, data.eval, workload.task)  # batch 1: fine
    options = RuntimeOptions(threads=1, batch_size=2)
    with pytest.raises(StepError) as info:
        evaluate_here(source, "cpu-onnxruntime", options, data, reference, QUICK, workload.task)
    message = str(info.value)
    assert message.startswith("evaluate failed (onnxruntime ")
    assert "on cpu-onnxruntime): " in message
    assert "Name:'classifier'" in message or "Name:'baked_batch'" in message, message


# -- a RegNet exported with a static batch ---------------------------------------------------


@pytest.mark.slow
def test_regnet_exported_with_the_torchscript_exporter_quantizes_and_runs(tmp_path: Path) -> None:
    """torchvision ``regnet_x_400mf`` exported as users do (``dynamo=False``, no
    dynamic axes: a static batch of 1), at 32×32: its int8 trial on cpu-onnxruntime used to fail
    with ONNX Runtime's bare "Please fix either the inputs/outputs or the model." (calibration
    ran batches of 8 through a batch-1 graph)."""
    import torch
    import torchvision
    from support.worker import build_here, evaluate_here

    torch.manual_seed(0)
    model = torchvision.models.regnet_x_400mf(weights=None).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (torch.randn(1, 3, 32, 32),), tmp_path / "regnet.onnx", dynamo=False
        )
    workload = load_workload({"onnx": "regnet.onnx", "data": {"synthetic_samples": 16}}, tmp_path)
    assert workload.fixed_batch == 1
    source, data = workload.source_artifact(tmp_path), workload.data()
    reference = predictions(source, data.eval, workload.task)
    (int8,) = build_here(source, [("quantize_ort", ())], data)
    assert int8.meta["quant_preprocess"] == "full" and int8.meta["quantizable_nodes"] > 50
    options = RuntimeOptions(threads=1)
    ev = evaluate_here(int8, "cpu-onnxruntime", options, data, reference, QUICK, workload.task)
    assert ev.precision_actual == "int8+fp32"
    assert ev.metrics["top1_agreement"] >= 0.5  # random weights: close logits, some flips


# -- attention ----------------------------------------------------------------------------------


def tiny_vit() -> Any:
    """Patch embedding, one attention block and an encoder layer: ViT's shape, tiny."""
    import torch
    from torch import nn

    class TinyViT(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Conv2d(3, 16, 8, stride=8)
            self.attn = nn.MultiheadAttention(16, 2, batch_first=True)
            self.encoder = nn.TransformerEncoderLayer(16, 2, 32, batch_first=True)
            self.head = nn.Linear(16, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            tokens = self.embed(x).flatten(2).transpose(1, 2)
            tokens = tokens + self.attn(tokens, tokens, tokens, need_weights=False)[0]
            return self.head(self.encoder(tokens).mean(1))

    torch.manual_seed(0)
    return TinyViT().eval()


def test_attention_models_export_to_onnx(tmp_path: Path) -> None:
    """In eval mode without gradients attention runs fused kernels the TorchScript exporter
    cannot export (torchvision's ViT failed with ``aten::_native_multi_head_attention``)."""
    import onnxruntime as ort
    import torch

    import optimizers
    from farm.artifact import Artifact
    from workloads import register_builder, state_dict_bytes

    register_builder("test-tiny-vit")(tiny_vit)
    module = tiny_vit()
    source = Artifact(
        "torch-state",
        {"state_dict.pt": state_dict_bytes(module)},
        {"builder": "test-tiny-vit", "input_shape": [3, 32, 32], "num_classes": 10},
    )
    data = load_workload({"onnx": str(export_tiny(tmp_path / "m.onnx"))}, tmp_path).data()
    ctx = optimizers.BuildContext(data=data)
    exported = optimizers.apply("export_onnx", {}, source, ctx)
    assert torch.backends.mha.get_fastpath_enabled()  # the setting is given back

    path = exported.write_to(tmp_path / "exported")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32), dtype=np.float32)
    with torch.inference_mode():
        eager = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(session.run(None, {"input": x})[0], eager, rtol=1e-4, atol=1e-5)


# -- operators a runtime lacks ------------------------------------------------------------------


def test_an_operator_a_runtime_lacks_is_named_when_compiling(tmp_path: Path) -> None:
    from onnx import TensorProto, helper, numpy_helper

    from farm.artifact import Artifact
    from farm.measure.bench import compiled
    from targets import get_target, runtime_class

    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Conv", ["input", "W"], ["y"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("FancyActivation", ["y"], ["r"], domain="com.example", name="fancy"),
        helper.make_node("GlobalAveragePool", ["r"], ["g"], name="pool"),
        helper.make_node("Flatten", ["g"], ["logits"], name="flatten"),
    ]
    graph = helper.make_graph(
        nodes,
        "custom-op",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 4])],
        [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "W")],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    artifact = Artifact("onnx", {"model.onnx": model.SerializeToString()})
    for target in ("cpu-onnxruntime", "cpu-openvino"):
        spec = get_target(target)
        with (
            pytest.raises(StepError) as info,
            compiled(artifact, spec, runtime_class(spec.runtime), RuntimeOptions()),
        ):
            pass
        message = " ".join(str(info.value).split())
        assert message.startswith("compile failed (") and f"on {target})" in message
        assert "FancyActivation" in message, message
