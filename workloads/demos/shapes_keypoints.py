"""The embedded keypoints demo: ``[workload] name = "shapes-keypoints"``.

Like the other shapes demos it runs offline: a seeded data set of squares whose five keypoints
(corners and centre) are known (``workloads/demos/shapes_keypoints_data.py``) is written to disk
on first use as a user's would be (PNG images and a COCO person-keypoints JSON) and read back
through the same loader as a user's; a small pose net (``shapes_keypoints_net.py``) is trained on
its train split on first use and cached by the hash of its recipe.

The net's output is a raw Ultralytics-style pose head (``outputs = "yolo"``, ``[B, 4 + 1 + 5·3,
A]``, labels index the categories); its keypoints are judged by COCO OKS mAP with the demo's own
sigmas (:data:`SIGMAS`: five keypoints are not COCO's person keypoints).
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
from workloads.demos import shapes_keypoints_data as kpdata
from workloads.sources.builders import register_builder
from workloads.tasks import Keypoints, Task

if TYPE_CHECKING:
    from torch import nn

    from farm.artifact import Artifact

NAME = "shapes-keypoints"
IMAGE_SIZE = 64
DATA_SEED = 0
TRAIN_SEED = 0
WIDTH = 8
#: The generator's split sizes (stated for the recipe).
SPLITS = {"n_train": 1000, "n_calib": 64, "n_eval": 150}
#: The demo's OKS sigmas: one per keypoint (corners, centre).
SIGMAS = (0.07, 0.07, 0.07, 0.07, 0.07)
UNIT = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
SOURCE = "the shapes keypoints demo"


@register_builder("shapes_pose")
def shapes_pose(
    num_classes: int = 1, num_keypoints: int = len(kpdata.KEYPOINTS), width: int = WIDTH
) -> nn.Module:
    from workloads.demos.shapes_keypoints_net import ShapesPoseNet

    return ShapesPoseNet(num_classes=num_classes, num_keypoints=num_keypoints, width=width)


def _train_defaults() -> dict[str, Any]:
    """The trainer's own hyper-parameters, for the recipe hash."""
    from workloads.demos.shapes_keypoints_net import train_pose_net

    return {
        name: p.default
        for name, p in inspect.signature(train_pose_net).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is not inspect.Parameter.empty
    }


class ShapesKeypointsWorkload(Workload):
    """The keypoints demo; ``results_dir`` holds its data set."""

    allows_resolution = False

    def __init__(self, results_dir: Path) -> None:
        self.name = NAME
        self.results_dir = Path(results_dir)

    @property
    def task(self) -> Task:
        return Keypoints(outputs="yolo", class_ids="index", oks_sigmas=SIGMAS)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (3, IMAGE_SIZE, IMAGE_SIZE)

    @property
    def builder(self) -> tuple[str, dict[str, Any]]:
        return "shapes_pose", {"num_classes": 1, "num_keypoints": len(SIGMAS), "width": WIDTH}

    def recipe(self) -> dict[str, Any]:
        builder, kwargs = self.builder
        return {
            "workload": self.name,
            "generator": kpdata.GENERATOR_VERSION,
            "data": {"seed": DATA_SEED, "image_size": IMAGE_SIZE, **SPLITS},
            "builder": builder,
            "builder_kwargs": kwargs,
            "train": {"seed": TRAIN_SEED, **_train_defaults()},
            "torch": version("torch"),
        }

    @cached_property
    def paths(self) -> kpdata.KeypointPaths:
        """The data set on disk (written on first use, then reused)."""
        root = self.results_dir / "datasets" / f"{self.name}-v{kpdata.GENERATOR_VERSION}"
        return kpdata.write_keypoints_dataset(root, seed=DATA_SEED, image_size=IMAGE_SIZE, **SPLITS)

    def data(self) -> WorkloadData:
        return self._data

    @cached_property
    def _data(self) -> WorkloadData:
        from workloads.datasets import dense
        from workloads.datasets.config import DataConfig

        p = self.paths
        cfg = DataConfig(
            eval=p.eval_images,
            eval_annotations=p.eval_annotations,
            calib=p.calib_images,
            source=SOURCE,
        )
        pre = dense.Preprocess((IMAGE_SIZE, IMAGE_SIZE), True, *UNIT)
        return dense.keypoints_data(cfg, pre, 1)

    def source_artifact(self, cache_dir: Path) -> Artifact:
        """The trained net, from ``cache_dir/shapes/<recipe_hash>.pt`` or trained now."""
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
                "output_names": ["output0"],
                "task": "keypoints",
                "workload": self.name,
                "recipe_hash": self.recipe_hash,
                "training": report,
            },
        )

    def _train(self) -> tuple[bytes, dict[str, Any]]:
        """Train on the train split, read from disk like any user's data."""
        import torch

        from workloads.datasets import dense
        from workloads.datasets.coco_keypoints import read_keypoints, with_keypoints
        from workloads.datasets.config import DataConfig
        from workloads.demos.shapes_keypoints_net import train_pose_net
        from workloads.sources.builders import state_dict_bytes
        from workloads.training import deterministic_torch

        p = self.paths
        start = time.perf_counter()
        kp = read_keypoints(p.train_annotations, "the keypoints train annotations", SOURCE)
        pre = dense.Preprocess((IMAGE_SIZE, IMAGE_SIZE), False, *UNIT)
        split = dense.coco_split(p.train_images, kp.coco, pre, DataConfig(source=SOURCE), "train")
        split = with_keypoints(split, kp)
        assert split.truth is not None
        _, kwargs = self.builder
        with deterministic_torch(TRAIN_SEED):
            torch.manual_seed(TRAIN_SEED)
            model = shapes_pose(**kwargs)
            fit = train_pose_net(
                model,
                split.x,
                [t["boxes"] for t in split.truth],
                [np.asarray(t["keypoints"])[..., :2] for t in split.truth],
                seed=TRAIN_SEED,
            )
        report = {"train_seconds": round(time.perf_counter() - start, 2), **fit}
        return state_dict_bytes(model.eval()), report
