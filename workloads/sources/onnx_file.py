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

Everything is checked by :meth:`OnnxWorkload.validate` when the job is loaded: each error names
the job file and the field to change.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farm._io import hash_file
from farm._validate import Fields
from farm.errors import SpecError
from workloads import fields
from workloads.base import Workload
from workloads.data import WorkloadData, channels_last
from workloads.datasets.config import DataConfig
from workloads.tasks import DEFAULT_TASK, TASKS, ModelFacts, Task, make_task

if TYPE_CHECKING:
    from farm.artifact import Artifact

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
#: The ``[workload]`` fields of an ONNX source (besides the task's).
FIELDS = frozenset({"onnx", "data", "num_classes", "layout"})

Dims = tuple[int | str, ...]


@dataclass(frozen=True)
class GraphFacts:
    """What the farm reads from an ONNX file, once, after ``onnx.checker`` accepts it."""

    #: The model as one self-contained file when its weights were in external data files
    #: (``torch.onnx.export(dynamo=True)`` writes ``<model>.onnx.data``); None: the file itself.
    model_bytes: bytes | None
    #: The external data files the weights came from (their contents are part of the recipe).
    external_files: tuple[Path, ...]
    input_name: str
    #: Static dims as ints, symbolic ones as their name (or "?").
    input_dims: Dims
    #: ``NCHW`` / ``NHWC`` when the input's static dims tell, else None.
    layout: str | None
    #: Output names and dims, in graph order.
    outputs: tuple[str, ...]
    output_dims: tuple[Dims, ...]
    #: Operators of an already quantized graph (0: a float model).
    quantized_nodes: int
    #: The file's ``metadata_props`` (exporters record class names, keypoint shapes, charsets).
    metadata: dict[str, str]

    @classmethod
    def read(cls, path: Path, source: str) -> GraphFacts:
        """The facts of the ONNX file ``path``; a :class:`SpecError` naming ``source`` (the job
        file) and ``workload.onnx`` when it is not a model the farm can feed."""
        import onnx

        try:
            model = onnx.load(str(path), load_external_data=False)
            external = _external_files(model, path, source)
            onnx.load_external_data_for_model(model, str(path.parent))
            onnx.checker.check_model(model)
        except SpecError:
            raise
        except Exception as exc:
            text = str(exc).strip().splitlines()
            why = text[0] if text else type(exc).__name__
            raise SpecError(
                source,
                "workload.onnx",
                f"an ONNX model file ({path} is not a valid ONNX model: {why})",
            ) from None
        if external and model.ByteSize() > MAX_INLINE_BYTES:
            raise SpecError(
                source,
                "workload.onnx",
                "a model that fits one ONNX file (< 2 GB); this one keeps "
                f"{model.ByteSize() / 2**30:.1f} GB of weights in external data files",
                str(path),
            )
        initializers = {i.name for i in model.graph.initializer}
        inputs = [i for i in model.graph.input if i.name not in initializers]
        image = _image_input(inputs, path, source)
        return cls(
            model_bytes=model.SerializeToString() if external else None,
            external_files=tuple(external),
            input_name=image.name,
            input_dims=_dims(image),
            layout=_layout_from_dims(_dims(image)),
            outputs=tuple(o.name for o in model.graph.output),
            output_dims=tuple(_dims(o) for o in model.graph.output),
            quantized_nodes=sum(n.op_type in QUANTIZED_OPS for n in model.graph.node),
            metadata={p.key: p.value for p in model.metadata_props},
        )


class OnnxWorkload(Workload):
    """A user's ONNX file (``[workload] onnx = "model.onnx"``) with its data and task."""

    allows_torch_transforms = False

    def __init__(
        self,
        path: Path,
        data: DataConfig,
        section: Fields,
        task_name: str,
        base_dir: Path | None = None,
    ) -> None:
        self.path = Path(path)
        self.data_config = data
        self.fields = section
        self.source = str(section.source)
        #: The raw ``[workload]`` table (part of the recipe).
        self.section = dict(section.table)
        self.name = self.path.name
        self.task_name = task_name
        self.task_cls = TASKS[task_name]
        #: Where the task's own relative paths resolve (the job file's folder).
        self.base_dir = None if base_dir is None else Path(base_dir)
        self.declared_size = fields.input_size(section)
        self.letterbox = "letterbox" in self.task_cls.fields and fields.letterbox(section)

    def validate(self) -> None:
        """Read the graph and check it against every field of the job: the input, the layout,
        the input size, the class count and the task's output convention."""
        self.image_shape  # noqa: B018 - the input size and layout, checked
        self.num_classes  # noqa: B018 - the class count the task needs, checked
        self.task  # noqa: B018 - the task's fields and output convention, checked

    @cached_property
    def facts(self) -> GraphFacts:
        """The graph's facts (read once)."""
        return GraphFacts.read(self.path, self.source)

    @cached_property
    def task(self) -> Task:
        facts = self.facts
        classes = self.num_classes if self.task_cls.class_count is not None else None
        model = ModelFacts(num_classes=classes, metadata=facts.metadata, base_dir=self.base_dir)
        task = make_task(self.task_name, self.fields, model)
        try:
            task.check_output_dims(
                dict(zip(facts.outputs, facts.output_dims, strict=True)), facts.input_dims[0]
            )
        except ValueError as exc:
            raise SpecError(
                self.source,
                "workload.task",
                f"a model whose outputs fit the task: {exc}",
                str(self.path),
            ) from None
        return task

    @property
    def prequantized(self) -> int:
        """How many quantization operators the file already has (0 for a float model): such a
        model is measured as given, not quantized again."""
        return self.facts.quantized_nodes

    @cached_property
    def layout(self) -> str:
        """``NCHW`` or ``NHWC``: from the graph's static dims, else ``[workload] layout``
        (default NCHW); a declared layout the dims contradict is refused."""
        declared = self.fields.string("layout", None, choices=LAYOUTS)
        seen = self.facts.layout
        if declared is not None and seen is not None and declared != seen:
            raise self.fields.error(
                "layout",
                f"{seen!r}, the layout of the input dims {list(self.facts.input_dims)}",
                declared,
            )
        return str(declared or seen or "NCHW")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The input's dims without the batch, in the model's own layout: (C, H, W) or, for a
        channels-last model, (H, W, C). See :attr:`image_shape` for (C, H, W) either way."""
        c, h, w = self.image_shape
        return (h, w, c) if self.layout == "NHWC" else (c, h, w)

    @cached_property
    def image_shape(self) -> tuple[int, int, int]:
        """C, H, W: static dims from the graph, else the declared size (see the module doc)."""
        _, *dims = self.facts.input_dims
        c, h, w = (dims[2], dims[0], dims[1]) if self.layout == "NHWC" else dims
        declared = self.declared_size
        cfg = self.data_config
        if declared is None and "classes" in self.task_cls.truth and cfg.crop_given:
            declared = (cfg.crop, cfg.crop)
        channels = c if isinstance(c, int) else 3
        static = (h if isinstance(h, int) else None, w if isinstance(w, int) else None)
        if declared is not None:
            for axis, got, want in zip(("height", "width"), static, declared, strict=True):
                if got is not None and got != want:
                    raise self.fields.error(
                        "input_size", f"{got}, the fixed input {axis} of {self.path}", want
                    )
            return (channels, *declared)
        if static[0] is None or static[1] is None:
            raise self.fields.error(
                "input_size",
                f"the size the model is served at, e.g. `input_size = [224, 224]` in [workload] "
                f"({self.path} has a dynamic input height or width: dims "
                f"{list(self.facts.input_dims)})",
            )
        return (channels, static[0], static[1])

    @property
    def fixed_batch(self) -> int | None:
        """The batch size the graph's input is fixed to, else the task's limit (or None)."""
        batch = self.facts.input_dims[0]
        if isinstance(batch, int):
            return batch
        return self.task.max_batch

    @cached_property
    def num_classes(self) -> int:
        """The class count, where the task's ``class_count`` says to find it."""
        explicit = self.fields.positive_int("num_classes", None)
        where = self.task_cls.class_count
        if where is None:
            if explicit is not None:
                raise self.fields.error(
                    "num_classes",
                    f'no `num_classes`: `task = "{self.task_name}"` has no classes (its outputs '
                    "are compared with the fp32 model's whole)",
                    explicit,
                )
            return 0
        dims = self.facts.output_dims[0]
        if where == "data":
            return int(explicit or 0)  # known from the annotations once the data is read
        if where == "channels":
            return self._channels(dims, explicit)
        return self._class_scores(dims, explicit)

    def _channels(self, dims: Dims, explicit: int | None) -> int:
        """Classes of a score map ``[B, C, H, W]``: its static C, or the job's count."""
        static = dims[1] if len(dims) == 4 and isinstance(dims[1], int) else None
        if explicit is not None and static is not None and explicit != static:
            raise self.fields.error(
                "num_classes",
                f"{static}, the class channels of {self.path}'s first output",
                explicit,
            )
        n = explicit or static
        if n is None:
            raise self.fields.error(
                "num_classes",
                f"a positive integer: required, {self.path}'s output channels are dynamic",
            )
        return n

    def _class_scores(self, dims: Dims, explicit: int | None) -> int:
        """Classes of class scores ``(N, classes)``: the static last axis, the job's count, or
        the eval folder's classes."""
        while len(dims) > 2 and dims[-1] == 1:  # (N, classes, 1, 1): a convolutional head
            dims = dims[:-1]
        if dims and isinstance(dims[-1], int):
            return dims[-1]
        if explicit is not None:
            return int(explicit)
        if self.data_config.eval is not None:
            from workloads.datasets.imagefolder import class_names

            return len(class_names(self.data_config.eval, self.data_config, "eval"))
        raise self.fields.error(
            "num_classes",
            f"a positive integer: {self.path}'s number of classes is not static",
        )

    def recipe(self) -> dict[str, Any]:
        from workloads.datasets.imagefolder import data_fingerprint

        recipe: dict[str, Any] = {
            "workload": "onnx",
            "onnx_sha256": hash_file(self.path),
            "data": data_fingerprint(self.data_config),
        }
        external = self.facts.external_files
        if external:  # new weights in the data file make a new workload
            recipe["external_data_sha256"] = {p.name: hash_file(p) for p in external}
        # a workload of the default task hashes as it did before tasks were configurable
        if self.task_name != DEFAULT_TASK:
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
        data = self._image_data()
        return channels_last(data) if self.layout == "NHWC" else data

    def _image_data(self) -> WorkloadData:
        """The splits as NCHW images (the loaders' layout)."""
        cfg = self.data_config
        truth = self.task_cls.truth
        if "classes" in truth or (not truth and cfg.synthetic):
            from workloads.datasets.imagefolder import load_data

            return load_data(cfg, self.num_classes, self.image_shape, self.declared_size)
        if self.image_shape[0] != 3:
            raise cfg.error(
                "eval",
                "no `data.eval` (synthetic inputs): image folders are read as RGB (3 channels), "
                f"and {self.path} takes {self.image_shape[0]}-channel images",
                str(cfg.eval),
            )
        if "labels" in truth:  # OCR: text lines or pages with their label file
            from workloads.datasets import ocr
            from workloads.tasks.text_recognition import CHANNEL_ORDERS

            kind = getattr(self.task_cls, "label_kind", "text")
            size = (self.image_shape[1], self.image_shape[2])
            bgr = self.fields.string("channels", "rgb", choices=CHANNEL_ORDERS) == "bgr"
            return ocr.task_data(kind, cfg, size, self.letterbox, bgr)
        from workloads.datasets import dense

        pre = dense.Preprocess(
            (self.image_shape[1], self.image_shape[2]), self.letterbox, cfg.mean, cfg.std
        )
        # [workload] class_names name a score map's channels (a COCO file names its categories)
        channels = self.task_cls.class_count == "channels"
        names = fields.class_names(self.fields, self.num_classes) if channels else None
        return dense.task_data(truth, cfg, pre, self.num_classes, names)

    def source_artifact(self, cache_dir: Path) -> Artifact:
        from farm.artifact import Artifact

        facts = self.facts
        return Artifact(
            "onnx",
            {"model.onnx": facts.model_bytes or self.path.read_bytes()},
            {
                "input_shape": list(self.input_shape),
                "layout": self.layout,
                "num_classes": self.num_classes,
                "input_name": facts.input_name,
                "output_name": facts.outputs[0],
                "dynamic_batch": not isinstance(facts.input_dims[0], int),
                "task": self.task_name,
                "workload": self.name,
                "recipe_hash": self.recipe_hash,
            },
        )


def _image_input(inputs: list[Any], path: Path, source: str) -> Any:
    """The one float32 4-D input of an image model, checked."""
    import onnx

    if len(inputs) != 1:
        raise SpecError(
            source,
            "workload.onnx",
            "a model with one image input",
            f"{path}: inputs {[i.name for i in inputs]}",
        )
    dims = _dims(inputs[0])
    if len(dims) != 4:
        raise SpecError(
            source,
            "workload.onnx",
            "a 4-D image input (NCHW or NHWC)",
            f"{path}: input {inputs[0].name!r} with dims {list(dims)}",
        )
    elem = inputs[0].type.tensor_type.elem_type
    if elem != onnx.TensorProto.FLOAT:
        raise SpecError(
            source,
            "workload.onnx",
            "a float32 image input: the farm feeds float32 images (normalised as "
            "`workload.data` says) and makes the other precisions itself; export the model "
            "with a float32 input",
            f"{path}: input {inputs[0].name!r} is {onnx.TensorProto.DataType.Name(elem).lower()}",
        )
    return inputs[0]


def _external_files(model: Any, path: Path, source: str) -> list[Path]:
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
        raise SpecError(
            source,
            "workload.onnx",
            "a model whose external data files are beside it (keep the data file(s) the "
            "exporter wrote)",
            f"{path}: {missing[0]} is missing",
        )
    return files


def _layout_from_dims(dims: Dims) -> str | None:
    """``NCHW`` / ``NHWC`` when exactly one end of an image input's dims is a channel count
    (1 or 3); None when the dims do not tell (both, or neither, e.g. all dynamic)."""
    first, last = dims[1] in IMAGE_CHANNELS, dims[3] in IMAGE_CHANNELS
    if first != last:
        return "NCHW" if first else "NHWC"
    return None


def _dims(value_info: Any) -> Dims:
    """Static dims as ints, dynamic ones as their name (or "?"). A dim whose value is not
    positive is dynamic too: PaddlePaddle's exporter (Paddle2ONNX) writes a dynamic batch as
    ``dim_value = -1`` rather than as a named ``dim_param``."""
    return tuple(
        d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or "?")
        for d in value_info.type.tensor_type.shape.dim
    )
