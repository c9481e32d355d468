"""A user's ONNX file as the model source (torch-only transforms such as pruning are off)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farm.errors import UsageError
from workloads.base import Workload, WorkloadData, hash_file
from workloads.config import DataConfig

if TYPE_CHECKING:
    from farm.artifact import Artifact


class OnnxWorkload(Workload):
    allows_torch_transforms = False

    def __init__(self, path: Path, data: DataConfig) -> None:
        self.path = Path(path)
        self.data_config = data
        self.name = self.path.name

    @cached_property
    def _graph_facts(self) -> dict[str, Any]:
        """Input/output names and static dims, after ``onnx.checker`` accepts the file."""
        import onnx

        try:
            model = onnx.load(str(self.path))
            onnx.checker.check_model(model)
        except Exception as exc:
            text = str(exc).strip().splitlines()
            raise UsageError(
                f"`workload.onnx`: {self.path} is not a valid ONNX model: "
                f"{text[0] if text else type(exc).__name__}"
            ) from None
        initializers = {i.name for i in model.graph.initializer}
        inputs = [i for i in model.graph.input if i.name not in initializers]
        if len(inputs) != 1 or len(model.graph.output) < 1:
            raise UsageError(
                f"`workload.onnx`: {self.path}: expected one image input, got "
                f"{[i.name for i in inputs]}"
            )
        in_dims = _dims(inputs[0])
        out_dims = _dims(model.graph.output[0])
        if len(in_dims) != 4:
            raise UsageError(
                f"`workload.onnx`: {self.path}: expected an NCHW image input, got dims {in_dims}"
            )
        return {
            "input_name": inputs[0].name,
            "output_name": model.graph.output[0].name,
            "input_dims": in_dims,
            "output_dims": out_dims,
        }

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """C, H, W from the graph; dynamic H/W fall back to the data config's crop."""
        _, c, h, w = self._graph_facts["input_dims"]
        crop = self.data_config.crop
        return (
            c if isinstance(c, int) else 3,
            h if isinstance(h, int) else crop,
            w if isinstance(w, int) else crop,
        )

    @property
    def fixed_batch(self) -> int | None:
        """The batch size the graph's input is fixed to, or None when the batch is dynamic."""
        batch = self._graph_facts["input_dims"][0]
        return batch if isinstance(batch, int) else None

    @property
    def num_classes(self) -> int:
        dims = self._graph_facts["output_dims"]
        if dims and isinstance(dims[-1], int):
            return dims[-1]
        if not self.data_config.synthetic:
            from workloads.imagefolder import class_names

            assert self.data_config.eval is not None
            return len(class_names(self.data_config.eval, "eval"))
        raise UsageError(f"`workload.onnx`: {self.path}: the number of classes is not static")

    def recipe(self) -> dict[str, Any]:
        from workloads.imagefolder import data_fingerprint

        return {
            "workload": "onnx",
            "onnx_sha256": hash_file(self.path),
            "data": data_fingerprint(self.data_config),
        }

    def data(self) -> WorkloadData:
        return self._data

    @cached_property
    def _data(self) -> WorkloadData:
        from workloads.imagefolder import load_data

        return load_data(self.data_config, self.num_classes, self.input_shape)

    def source_artifact(self, cache_dir: Path) -> Artifact:
        from farm.artifact import Artifact

        facts = self._graph_facts
        return Artifact(
            "onnx",
            {"model.onnx": self.path.read_bytes()},
            {
                "input_shape": list(self.input_shape),
                "num_classes": self.num_classes,
                "input_name": facts["input_name"],
                "output_name": facts["output_name"],
                "dynamic_batch": not isinstance(facts["input_dims"][0], int),
                "workload": self.name,
                "recipe_hash": self.recipe_hash,
            },
        )


def _dims(value_info: Any) -> list[int | str]:
    """Static dims as ints, symbolic ones as their name (or "?")."""
    dims: list[int | str] = []
    for d in value_info.type.tensor_type.shape.dim:
        dims.append(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?"))
    return dims
