"""The embedded detection and segmentation demos: ``[workload] name = "shapes-detect"`` and
``"shapes-segment"``.

Like the digits demo they run offline: a seeded synthetic data set of shapes on textured, noisy
backgrounds (``workloads/demos/shapes_data.py``) is written to disk on first use, as a user's data
would
be (PNG images with a COCO instances file, or with class-index masks), and read back through
the same loaders as a user's data; a small model (``workloads/demos/shapes_nets.py``) is trained on
its train split on first use and cached by the hash of its recipe.

The detector's output is a raw YOLO-style head (``outputs = "yolo"``, labels are 0-based indices
into the categories); the segmenter's a score map. Both take RGB in [0, 1], 64×64.
"""

from __future__ import annotations

import inspect
import time
from functools import cached_property
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from workloads.base import Workload
from workloads.data import WorkloadData
from workloads.demos import shapes_data as shapes
from workloads.sources.builders import register_builder
from workloads.tasks import Detection, Segmentation, Task

if TYPE_CHECKING:
    from torch import nn

    from farm.artifact import Artifact

KINDS = {"shapes-detect": "detection", "shapes-segment": "segmentation"}
IMAGE_SIZE = 64
DATA_SEED = 0
WIDTH = 16
TRAIN_SEED = 0
#: The generator's split sizes (the defaults of workloads/demos/shapes_data.py, stated for the
#: recipe).
SPLITS = {
    "detection": {"n_train": 3000, "n_calib": 128, "n_eval": 200},
    "segmentation": {"n_train": 1500, "n_calib": 128, "n_eval": 200},
}
UNIT = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
#: How errors about the demos' own files name their origin.
SOURCE = "the shapes demo"


@register_builder("shapes_detector")
def shapes_detector(num_classes: int = len(shapes.CATEGORIES), width: int = WIDTH) -> nn.Module:
    from workloads.demos.shapes_nets import ShapesDetector

    return ShapesDetector(num_classes=num_classes, width=width)


@register_builder("shapes_segmenter")
def shapes_segmenter(num_classes: int = len(shapes.SEG_CLASSES), width: int = WIDTH) -> nn.Module:
    from workloads.demos.shapes_nets import ShapesSegmenter

    return ShapesSegmenter(num_classes=num_classes, width=width)


def _train_defaults(kind: str) -> dict[str, Any]:
    """The training hyper-parameters (the trainer's own defaults), for the recipe hash."""
    from workloads.demos import shapes_nets

    fn = shapes_nets.train_detector if kind == "detection" else shapes_nets.train_segmenter
    return {
        name: p.default
        for name, p in inspect.signature(fn).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is not inspect.Parameter.empty
    }


class ShapesWorkload(Workload):
    """One of the two shapes demos; ``results_dir`` holds its data set and trained model."""

    allows_resolution = False

    def __init__(self, name: str, results_dir: Path) -> None:
        self.name = name
        self.kind = KINDS[name]
        self.results_dir = Path(results_dir)

    @property
    def task(self) -> Task:
        """A raw YOLO head whose labels index the categories, or a score map."""
        if self.kind == "detection":
            return Detection(outputs="yolo", class_ids="index")
        return Segmentation(num_classes=len(shapes.SEG_CLASSES))

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (3, IMAGE_SIZE, IMAGE_SIZE)

    @property
    def builder(self) -> tuple[str, dict[str, Any]]:
        classes = len(shapes.CATEGORIES if self.kind == "detection" else shapes.SEG_CLASSES)
        name = "shapes_detector" if self.kind == "detection" else "shapes_segmenter"
        return name, {"num_classes": classes, "width": WIDTH}

    def recipe(self) -> dict[str, Any]:
        builder, kwargs = self.builder
        return {
            "workload": self.name,
            "generator": shapes.GENERATOR_VERSION,
            "data": {"seed": DATA_SEED, "image_size": IMAGE_SIZE, **SPLITS[self.kind]},
            "builder": builder,
            "builder_kwargs": kwargs,
            "train": {"seed": TRAIN_SEED, **_train_defaults(self.kind)},
            "torch": version("torch"),
        }

    @cached_property
    def paths(self) -> Any:
        """The data set on disk (written on first use, then reused)."""
        root = self.results_dir / "datasets" / f"{self.name}-v{shapes.GENERATOR_VERSION}"
        write = (
            shapes.write_detection_dataset
            if self.kind == "detection"
            else shapes.write_segmentation_dataset
        )
        return write(root, seed=DATA_SEED, image_size=IMAGE_SIZE, **SPLITS[self.kind])

    def data(self) -> WorkloadData:
        return self._data

    @cached_property
    def _data(self) -> WorkloadData:
        from workloads.datasets import dense
        from workloads.datasets.config import DataConfig

        pre = dense.Preprocess((IMAGE_SIZE, IMAGE_SIZE), self.kind == "detection", *UNIT)
        p = self.paths
        if self.kind == "detection":
            cfg = DataConfig(
                eval=p.eval_images,
                eval_annotations=p.eval_annotations,
                calib=p.calib_images,
                source=SOURCE,
            )
            return dense.detection_data(cfg, pre, len(shapes.CATEGORIES))
        cfg = DataConfig(
            eval=p.eval_images, eval_masks=p.eval_masks, calib=p.calib_images, source=SOURCE
        )
        return dense.segmentation_data(cfg, pre, len(shapes.SEG_CLASSES), tuple(shapes.SEG_CLASSES))

    def source_artifact(self, cache_dir: Path) -> Artifact:
        """The trained model, from ``cache_dir/shapes/<recipe_hash>.pt`` or trained now."""
        from farm.artifact import Artifact
        from workloads.demos.cache import cached_training

        path = Path(cache_dir) / "shapes" / f"{self.recipe_hash}.pt"
        state, report = cached_training(path, self._train)
        builder, kwargs = self.builder
        return Artifact(
            "torch-state",
            {"state_dict.pt": state},
            {
                "builder": builder,
                "builder_kwargs": kwargs,
                "input_shape": list(self.input_shape),
                "num_classes": kwargs["num_classes"],
                "output_names": ["output0" if self.kind == "detection" else "logits"],
                "task": self.kind,
                "workload": self.name,
                "recipe_hash": self.recipe_hash,
                "training": report,
            },
        )

    def _train(self) -> tuple[bytes, dict[str, Any]]:
        """Train on the train split, read from disk like any user's data."""
        import torch

        from workloads.sources.builders import state_dict_bytes
        from workloads.training import deterministic_torch

        builder, kwargs = self.builder
        start = time.perf_counter()
        with deterministic_torch(TRAIN_SEED):
            torch.manual_seed(TRAIN_SEED)
            if builder == "shapes_detector":
                model = shapes_detector(**kwargs)
                fit = self._fit_detector(model)
            else:
                model = shapes_segmenter(**kwargs)
                fit = self._fit_segmenter(model)
        report = {"train_seconds": round(time.perf_counter() - start, 2), **fit}
        return state_dict_bytes(model.eval()), report

    def _fit_detector(self, model: nn.Module) -> dict[str, Any]:
        from workloads.datasets import dense
        from workloads.datasets.coco import read_coco
        from workloads.datasets.config import DataConfig
        from workloads.demos import shapes_nets

        p = self.paths
        coco = read_coco(p.train_annotations, "the shapes train annotations", SOURCE)
        pre = dense.Preprocess((IMAGE_SIZE, IMAGE_SIZE), False, *UNIT)
        split = dense.coco_split(p.train_images, coco, pre, DataConfig(source=SOURCE), "train")
        assert split.truth is not None
        index = {c: i for i, c in enumerate(sorted(coco.categories))}  # category id -> class
        boxes = [t["boxes"] for t in split.truth]
        labels = [np.asarray([index[int(c)] for c in t["labels"]]) for t in split.truth]
        return shapes_nets.train_detector(model, split.x, boxes, labels, seed=TRAIN_SEED)

    def _fit_segmenter(self, model: nn.Module) -> dict[str, Any]:
        from workloads.datasets import dense
        from workloads.datasets.config import DataConfig
        from workloads.demos import shapes_nets

        p = self.paths
        pre = dense.Preprocess((IMAGE_SIZE, IMAGE_SIZE), False, *UNIT)
        classes = len(shapes.SEG_CLASSES)
        cfg = DataConfig(source=SOURCE)
        split = dense.mask_split(p.train_images, p.train_masks, pre, classes, cfg, "train")
        assert split.truth is not None
        return shapes_nets.train_segmenter(model, split.x, np.stack(split.truth), seed=TRAIN_SEED)
