"""A user's ONNX file as the model source: its facts read once (GraphFacts), everything checked
when the job is loaded (validate), every error naming the job file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm.errors import SpecError
from targets import get_target
from workloads import load_workload
from workloads.sources.onnx_file import GraphFacts, OnnxWorkload


def _tiny_onnx(path: Path, classes: int = 5) -> Path:
    import torch

    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4, classes),
    ).eval()
    torch.onnx.export(  # the legacy exporter warns; its output is what we test
        model,
        (torch.zeros(1, 3, 16, 16),),
        str(path),
        dynamo=False,
        input_names=["images"],
        dynamic_axes={"images": {0: "n"}},
    )
    return path


def test_an_onnx_file_is_a_classifier_source_on_synthetic_inputs(tmp_path: Path) -> None:
    import optimizers

    _tiny_onnx(tmp_path / "m.onnx")
    wl = load_workload({"onnx": "m.onnx"}, tmp_path)
    assert not wl.allows_torch_transforms and wl.task.name == "classification"
    art = wl.source_artifact(tmp_path)
    assert art.format == "onnx"
    assert art.meta["input_shape"] == [3, 16, 16] and art.meta["num_classes"] == 5
    assert art.meta["input_name"] == "images" and art.meta["dynamic_batch"]
    data = wl.data()
    assert data.eval.x.shape[1:] == (3, 16, 16) and not data.has_labels
    q = optimizers.apply("quantize_ort", {}, art, optimizers.BuildContext(data))
    assert q.format == "onnx"
    target = get_target("cpu-onnxruntime")
    assert optimizers.search_space("prune", target, wl.traits()) == {}


def test_the_graph_facts_are_read_once_into_a_record(tmp_path: Path) -> None:
    _tiny_onnx(tmp_path / "m.onnx")
    facts = GraphFacts.read(tmp_path / "m.onnx", "job.toml")
    assert facts.input_name == "images" and facts.input_dims == ("n", 3, 16, 16)
    assert facts.layout == "NCHW" and facts.outputs and facts.output_dims[0][-1] == 5
    assert facts.quantized_nodes == 0 and facts.model_bytes is None and not facts.external_files


def test_the_traits_say_what_the_search_may_do_with_it(tmp_path: Path) -> None:
    _tiny_onnx(tmp_path / "m.onnx")
    traits = load_workload({"onnx": "m.onnx"}, tmp_path).traits()
    assert not traits.torch_source and not traits.allows_resolution
    assert not traits.torch_exportable and traits.prequantized == 0
    assert traits.fixed_batch is None and traits.input_shape == (3, 16, 16)
    assert traits.fixed_shape_outputs


def test_a_corrupt_file_names_the_job_file_and_the_field(tmp_path: Path) -> None:
    (tmp_path / "bad.onnx").write_bytes(b"this is not a protobuf")
    with pytest.raises(SpecError, match=r"bad.onnx is not a valid ONNX model") as err:
        load_workload({"onnx": "bad.onnx"}, tmp_path, source="job.toml")
    assert err.value.field == "workload.onnx" and err.value.path == "job.toml"


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="an existing file") as err:
        load_workload({"onnx": "none.onnx"}, tmp_path, source="job.toml")
    assert err.value.field == "workload.onnx"


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"num_classes": 0}, "workload.num_classes"),
        ({"layout": "CHW"}, "workload.layout"),
        ({"input_size": [4, 4]}, "workload.input_size"),
        ({"task": "classify"}, "workload.task"),
        ({"weights": "w.pt"}, "workload.weights"),
        ({"letterbox": True}, "workload.letterbox"),  # a detection field
    ],
)
def test_a_bad_field_is_refused_when_the_job_is_loaded(
    tmp_path: Path, extra: dict, field: str
) -> None:
    _tiny_onnx(tmp_path / "m.onnx")
    with pytest.raises(SpecError) as err:
        load_workload({"onnx": "m.onnx", **extra}, tmp_path, source="job.toml")
    assert err.value.field == field and err.value.path == "job.toml"


def test_validate_checks_everything_before_any_data_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tiny_onnx(tmp_path / "m.onnx", classes=3)
    calls: list[str] = []
    monkeypatch.setattr(OnnxWorkload, "data", lambda self: calls.append("data"))
    wl = load_workload({"onnx": "m.onnx"}, tmp_path)
    assert calls == [] and wl.num_classes == 3 and wl.image_shape == (3, 16, 16)


def test_the_recipe_of_a_classifier_is_what_it_was_before_tasks_were_configurable(
    tmp_path: Path,
) -> None:
    """Recipe hashes key the artifact cache: the default task adds nothing to the recipe, any
    other task adds the `[workload]` table."""
    from farm._io import hash_file, hash_json

    _tiny_onnx(tmp_path / "m.onnx")
    wl = load_workload({"onnx": "m.onnx"}, tmp_path)
    assert set(wl.recipe()) == {"workload", "onnx_sha256", "data"}
    assert wl.recipe()["onnx_sha256"] == hash_file(tmp_path / "m.onnx")
    assert wl.recipe_hash == hash_json(wl.recipe())
    generic = load_workload({"onnx": "m.onnx", "task": "generic"}, tmp_path)
    assert generic.recipe()["task"] == {"onnx": "m.onnx", "task": "generic"}
