"""A user's ONNX file as the model source (torch-only transforms such as pruning are off).

The file is checked with ``onnx.checker``; it must have one float32 image input, 4-D, channels
first (NCHW) or last (NHWC, as tf2onnx exports Keras models). The layout is read from the
static dims (a channel axis of 1 or 3 at one end and not the other), else taken from
``[workload] layout``; channels-last models get their data in their own layout, so that what is
measured is the model as it is served, with no transpose added. The input size is the graph's
static H and W, else the job's declared size (``[workload] input_size``, or the data's ``crop``
for a square classifier input); a model with a dynamic height or width and no declared size is
refused, naming the field to set. The task (``[workload] task``) says what the outputs mean:
class scores (classification), boxes in one of the declared conventions (detection,
``outputs``), per-pixel class scores (segmentation), or any tensors judged by their agreement
with the fp32 model's (generic).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farm.errors import UsageError
from workloads.base import Workload, WorkloadData, hash_file
from workloads.datasets.config import DataConfig

if TYPE_CHECKING:
    from farm.artifact import Artifact
    from workloads.tasks import Task


#: The largest model (protobuf) that can hold its weights inline.
MAX_INLINE_BYTES = 2**31 - 1
#: Input layouts the farm feeds: channels first or last.
LAYOUTS = ("NCHW", "NHWC")
#: Channel counts that identify the channel axis of an image input.
IMAGE_CHANNELS = (1, 3)
#: Operators of an already quantized graph (QDQ or integer-operator form).
QUANTIZED_OPS = frozenset(
    {
        "QuantizeLinear",
        "DequantizeLinear",
        "DynamicQuantizeLinear",
        "QLinearConv",
        "QLinearMatMul",
        "ConvInteger",
        "MatMulInteger",
    }
)


class OnnxWorkload(Workload):
    allows_torch_transforms = False

    def __init__(self, path: Path, data: DataConfig, section: dict[str, Any] | None = None) -> None:
        from workloads import tasks

        self.path = Path(path)
        self.data_config = data
        self.section = dict(section or {})
        self.name = self.path.name
        self.task_name = tasks.task_name(self.section)
        self.declared_size = tasks.input_size(self.section)
        self.letterbox = tasks.letterbox(self.section)

    @cached_property
    def _graph_facts(self) -> dict[str, Any]:
        """Input/output names and static dims, after ``onnx.checker`` accepts the file."""
        import onnx

        try:
            model = onnx.load(str(self.path), load_external_data=False)
            external = _external_files(model, self.path)
            onnx.load_external_data_for_model(model, str(self.path.parent))
            onnx.checker.check_model(model)
        except UsageError:
            raise
        except Exception as exc:
            text = str(exc).strip().splitlines()
            raise UsageError(
                f"`workload.onnx`: {self.path} is not a valid ONNX model: "
                f"{text[0] if text else type(exc).__name__}"
            ) from None
        if external and model.ByteSize() > MAX_INLINE_BYTES:
            raise UsageError(
                f"`workload.onnx`: {self.path} keeps {model.ByteSize() / 2**30:.1f} GB of weights "
                "in external data files; the farm takes models that fit one ONNX file (< 2 GB)"
            )
        initializers = {i.name for i in model.graph.initializer}
        inputs = [i for i in model.graph.input if i.name not in initializers]
        if len(inputs) != 1 or len(model.graph.output) < 1:
            raise UsageError(
                f"`workload.onnx`: {self.path}: expected one image input, got "
                f"{[i.name for i in inputs]}"
            )
        in_dims = _dims(inputs[0])
        if len(in_dims) != 4:
            raise UsageError(
                f"`workload.onnx`: {self.path}: expected a 4-D image input (NCHW or NHWC), got "
                f"input {inputs[0].name!r} with dims {in_dims}"
            )
        elem = inputs[0].type.tensor_type.elem_type
        if elem != onnx.TensorProto.FLOAT:
            raise UsageError(
                f"`workload.onnx`: {self.path}: input {inputs[0].name!r} is "
                f"{onnx.TensorProto.DataType.Name(elem).lower()}; the farm feeds float32 images "
                "(normalised as `workload.data` says) and makes the other precisions itself: "
                "export the model with a float32 input"
            )
        return {
            # external data (``torch.onnx.export(dynamo=True)`` writes ``<model>.onnx.data``)
            # read into the model: the artifact is one self-contained file
            "model_bytes": model.SerializeToString() if external else None,
            "external_files": external,
            "input_name": inputs[0].name,
            "output_name": model.graph.output[0].name,
            "input_dims": in_dims,
            "layout": _layout_from_dims(in_dims),
            "output_dims": _dims(model.graph.output[0]),
            "all_output_dims": [_dims(o) for o in model.graph.output],
            "outputs": [o.name for o in model.graph.output],
            "quantized_nodes": sum(n.op_type in QUANTIZED_OPS for n in model.graph.node),
        }

    @cached_property
    def task(self) -> Task:  # type: ignore[override]
        from workloads import tasks

        num_classes = None
        if self.task_name == "segmentation":
            num_classes = self.num_classes
        task = tasks.make_task(self.section, num_classes=num_classes)
        outputs = self._graph_facts["outputs"]
        if task.name == "generic":
            self._check_batch_first()
            self.num_classes  # noqa: B018 - refuses a `num_classes` the task does not use
        if getattr(task, "outputs", None) == "boxes_scores_labels" and len(outputs) < 3:
            raise UsageError(
                f'`workload.outputs`: "boxes_scores_labels" needs three outputs (boxes, scores, '
                f"labels), but {self.path} has {len(outputs)}: {outputs}"
            )
        return task

    def _check_batch_first(self) -> None:
        """The generic task splits every output into samples along its first axis: refuse an
        output whose dims show the batch elsewhere (a ``[T, N, C]`` sequence output)."""
        facts = self._graph_facts
        batch = facts["input_dims"][0]
        for name, dims in zip(facts["outputs"], facts["all_output_dims"], strict=True):
            elsewhere = isinstance(batch, str) and batch != "?" and batch in dims[1:]
            fixed = bool(dims) and isinstance(dims[0], int) and dims[0] != batch
            if not dims or elsewhere or fixed:
                raise UsageError(
                    f'`workload.task`: "generic" compares outputs sample by sample along their '
                    f"first axis, the batch; {self.path}'s output {name!r} has dims {dims} for "
                    f"an input batch of {batch!r}: export it batch-first"
                )

    @property
    def prequantized(self) -> int:
        """How many quantization operators the file already has (0 for a float model): such a
        model is measured as given, not quantized again."""
        return int(self._graph_facts["quantized_nodes"])

    @cached_property
    def layout(self) -> str:
        """``NCHW`` or ``NHWC``: from the graph's static dims, else ``[workload] layout``
        (default NCHW); a declared layout the dims contradict is refused."""
        declared = self.section.get("layout")
        if declared is not None and declared not in LAYOUTS:
            raise UsageError(
                f"`workload.layout`: expected one of {list(LAYOUTS)}, got {declared!r}"
            )
        seen = self._graph_facts["layout"]
        if declared is not None and seen is not None and declared != seen:
            raise UsageError(
                f"`workload.layout`: {declared!r}, but {self.path}'s input dims "
                f"{self._graph_facts['input_dims']} are {seen}"
            )
        return str(declared or seen or "NCHW")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The input's dims without the batch, in the model's own layout: (C, H, W) or, for a
        channels-last model, (H, W, C). See :attr:`image_shape` for (C, H, W) either way."""
        c, h, w = self.image_shape
        return (h, w, c) if self.layout == "NHWC" else (c, h, w)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """C, H, W: static dims from the graph, else the declared size (see the module doc)."""
        _, *dims = self._graph_facts["input_dims"]
        c, h, w = (dims[2], dims[0], dims[1]) if self.layout == "NHWC" else dims
        declared = self.declared_size
        if declared is None and self.task_name == "classification" and self.data_config.crop_given:
            declared = (self.data_config.crop, self.data_config.crop)
        static = (h if isinstance(h, int) else None, w if isinstance(w, int) else None)
        if declared is not None:
            for axis, got, want in zip(("height", "width"), static, declared, strict=True):
                if got is not None and got != want:
                    raise UsageError(
                        f"`workload.input_size`: {self.path} has a fixed input {axis} of {got}, "
                        f"but the job declares {want}"
                    )
            return (c if isinstance(c, int) else 3, *declared)
        if None in static:
            raise UsageError(
                f"`workload.input_size`: {self.path} has a dynamic input height or width "
                f"(dims {self._graph_facts['input_dims']}); declare the size the model is served "
                "at, e.g. `input_size = [224, 224]` in [workload]"
            )
        return (c if isinstance(c, int) else 3, static[0], static[1])  # type: ignore[return-value]

    @property
    def fixed_batch(self) -> int | None:
        """The batch size the graph's input is fixed to, or None when the batch is dynamic."""
        batch = self._graph_facts["input_dims"][0]
        if isinstance(batch, int):
            return batch
        return self.task.max_batch

    @cached_property
    def num_classes(self) -> int:
        dims = self._graph_facts["output_dims"]
        explicit = self.section.get("num_classes")
        if explicit is not None and (
            not isinstance(explicit, int) or isinstance(explicit, bool) or explicit < 1
        ):
            raise UsageError(
                f"`workload.num_classes`: expected a positive integer, got {explicit!r}"
            )
        if self.task_name == "generic":
            if explicit is not None:
                raise UsageError(
                    '`workload.num_classes`: not used by `task = "generic"` (its outputs are '
                    "compared with the fp32 model's whole)"
                )
            return 0
        if self.task_name == "segmentation":
            static = dims[1] if len(dims) == 4 and isinstance(dims[1], int) else None
            if explicit is not None and static is not None and explicit != static:
                raise UsageError(
                    f"`workload.num_classes`: {explicit}, but {self.path}'s first output has "
                    f"{static} class channels"
                )
            n = explicit or static
            if n is None:
                raise UsageError(
                    f"`workload.num_classes`: required: {self.path}'s output channels are dynamic"
                )
            return n
        if self.task_name == "detection":
            return int(explicit or 0)  # known from the annotations once the data is read
        while len(dims) > 2 and dims[-1] == 1:  # (N, classes, 1, 1): a convolutional head
            dims = dims[:-1]
        if dims and isinstance(dims[-1], int):
            return dims[-1]
        if explicit is not None:
            return explicit
        if not self.data_config.synthetic:
            from workloads.datasets.imagefolder import class_names

            assert self.data_config.eval is not None
            return len(class_names(self.data_config.eval, "eval"))
        raise UsageError(f"`workload.onnx`: {self.path}: the number of classes is not static")

    def recipe(self) -> dict[str, Any]:
        from workloads.datasets.imagefolder import data_fingerprint

        recipe: dict[str, Any] = {
            "workload": "onnx",
            "onnx_sha256": hash_file(self.path),
            "data": data_fingerprint(self.data_config),
        }
        external = self._graph_facts["external_files"]
        if external:  # new weights in the data file make a new workload
            recipe["external_data_sha256"] = {p.name: hash_file(p) for p in external}
        if self.task_name != "classification":
            recipe["task"] = {k: v for k, v in sorted(self.section.items()) if k != "data"}
        elif self.declared_size is not None:
            recipe["input_size"] = list(self.declared_size)
        if "layout" in self.section:
            recipe["layout"] = self.layout
        return recipe

    def data(self) -> WorkloadData:
        return self._data

    @cached_property
    def _data(self) -> WorkloadData:
        from workloads.base import channels_last

        data = self._image_data()
        return channels_last(data) if self.layout == "NHWC" else data

    def _image_data(self) -> WorkloadData:
        """The splits as NCHW images (the loaders' layout)."""
        cfg = self.data_config
        generic = self.task_name == "generic"
        if self.task_name == "classification" or (generic and cfg.synthetic):
            from workloads.datasets.imagefolder import load_data

            num_classes = 0 if generic else self.num_classes
            return load_data(cfg, num_classes, self.image_shape, self.declared_size)
        if self.image_shape[0] != 3:
            raise UsageError(
                f"`workload.data.eval`: {self.path} takes {self.image_shape[0]}-channel images; "
                "image folders are read as RGB (3 channels): leave out `data.eval` to measure "
                "it on synthetic inputs"
            )
        from workloads.datasets import dense

        pre = dense.Preprocess(
            tuple(self.image_shape[1:]),  # type: ignore[arg-type]
            self.letterbox and self.task_name == "detection",
            cfg.mean,
            cfg.std,
        )
        return dense.task_data(self.task_name, cfg, pre, self.num_classes, self.section)

    def source_artifact(self, cache_dir: Path) -> Artifact:
        from farm.artifact import Artifact

        facts = self._graph_facts
        return Artifact(
            "onnx",
            {"model.onnx": facts["model_bytes"] or self.path.read_bytes()},
            {
                "input_shape": list(self.input_shape),
                "layout": self.layout,
                "num_classes": self.num_classes,
                "input_name": facts["input_name"],
                "output_name": facts["output_name"],
                "dynamic_batch": not isinstance(facts["input_dims"][0], int),
                "task": self.task_name,
                "workload": self.name,
                "recipe_hash": self.recipe_hash,
            },
        )


def _external_files(model: Any, path: Path) -> list[Path]:
    """The external data files ``model`` (loaded without them) refers to, checked to exist
    beside ``path``: exporters write the weights of a model as ``<model>.onnx.data``."""
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    files: list[Path] = []
    for tensor in model.graph.initializer:
        if uses_external_data(tensor):
            location = path.parent / ExternalDataInfo(tensor).location
            if location not in files:
                files.append(location)
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise UsageError(
            f"`workload.onnx`: {path} keeps its weights in external data, but {missing[0]} is "
            "missing: keep the data file(s) the exporter wrote beside the model"
        )
    return files


def _layout_from_dims(dims: list[int | str]) -> str | None:
    """``NCHW`` / ``NHWC`` when exactly one end of an image input's dims is a channel count
    (1 or 3); None when the dims do not tell (both, or neither, e.g. all dynamic)."""
    first, last = dims[1] in IMAGE_CHANNELS, dims[3] in IMAGE_CHANNELS
    if first != last:
        return "NCHW" if first else "NHWC"
    return None


def _dims(value_info: Any) -> list[int | str]:
    """Static dims as ints, symbolic ones as their name (or "?")."""
    dims: list[int | str] = []
    for d in value_info.type.tensor_type.shape.dim:
        dims.append(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?"))
    return dims
