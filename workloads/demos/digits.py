"""The embedded default workload: UCI handwritten digits and a small CNN trained on first use.

The data ships with scikit-learn (``load_digits``: 1,797 8×8 grey images, 10 classes), so the
farm runs a real accuracy study without downloading anything. Images are upsampled to 32×32
(bilinear), repeated to 3 channels and normalised with the stated mean/std. The splits are fixed,
seeded and stratified: 60 % train (1,077 images), 10 % calibration (180), 30 % eval (540).

The CNN is trained deterministically on first use (~10 s on 2 cores) and cached under the cache
directory by the hash of its recipe (architecture, hyper-parameters, split seed, torch version);
later calls load the cached weights.
"""

from __future__ import annotations

import time
from functools import cached_property
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workloads.base import Workload
from workloads.data import Split, WorkloadData
from workloads.sources.builders import register_builder
from workloads.tasks import Classification

if TYPE_CHECKING:
    from torch import nn

    from farm.artifact import Artifact

IMAGE_SIZE = 32
#: Mean and std of the upsampled pixel values (scaled to [0, 1]) of all digits images.
MEAN = 0.306
STD = 0.324
SPLIT_SEED = 0
#: Fractions of (train, calib, eval).
SPLIT_FRACTIONS = (0.6, 0.1, 0.3)
ARCH_KWARGS: dict[str, Any] = {"num_classes": 10, "width": 16}
TRAIN_RECIPE: dict[str, Any] = {
    "epochs": 8,
    "batch_size": 64,
    "lr": 5e-3,
    "weight_decay": 1e-4,
    "seed": 0,
    "optimizer": "AdamW+OneCycle",
}


@register_builder("digits_cnn")
def digits_cnn(num_classes: int = 10, width: int = 16) -> nn.Module:
    from workloads.demos.digits_net import DigitsCNN

    return DigitsCNN(num_classes=num_classes, width=width)


class DigitsWorkload(Workload):
    """The embedded default workload (``[workload] name = "digits"``): a classifier."""

    name = "digits"
    #: The CNN ends in global average pooling: any input size works.
    allows_resolution = True
    task = Classification()

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (3, IMAGE_SIZE, IMAGE_SIZE)

    def recipe(self) -> dict[str, Any]:
        return {
            "workload": "digits",
            "builder": "digits_cnn",
            "builder_kwargs": ARCH_KWARGS,
            "image_size": IMAGE_SIZE,
            "normalise": {"mean": MEAN, "std": STD},
            "split": {"seed": SPLIT_SEED, "fractions": list(SPLIT_FRACTIONS)},
            "train": TRAIN_RECIPE,
            "torch": version("torch"),
        }

    def data(self) -> WorkloadData:
        return self._data

    @cached_property
    def _data(self) -> WorkloadData:
        x, y = _load_images()
        # every image is named by its index in scikit-learn's data set ("digits/0042"), which is
        # what a slices CSV (`[workload.data] slices`) refers to
        info = tuple({"file": f"digits/{i:04d}"} for i in range(len(y)))
        whole = Split(x, y, None, info, tuple(i["file"] for i in info))
        train_idx, calib_idx, eval_idx = split_indices(y, SPLIT_FRACTIONS, SPLIT_SEED)
        return WorkloadData(
            train=whole.subset(train_idx),
            calib=whole.subset(calib_idx),
            eval=whole.subset(eval_idx),
            num_classes=10,
            input_shape=self.input_shape,
            has_labels=True,
            class_names=tuple(str(d) for d in range(10)),
            normalization=((MEAN,) * 3, (STD,) * 3),
        )

    def source_artifact(self, cache_dir: Path) -> Artifact:
        """The trained fp32 CNN, from ``cache_dir/digits/<recipe_hash>.pt`` or trained now."""
        from farm.artifact import Artifact
        from workloads.demos.cache import cached_training

        path = Path(cache_dir) / "digits" / f"{self.recipe_hash}.pt"
        state, report = cached_training(path, self._train)
        return Artifact(
            "torch-state",
            {"state_dict.pt": state},
            {
                "builder": "digits_cnn",
                "builder_kwargs": dict(ARCH_KWARGS),
                "input_shape": list(self.input_shape),
                "num_classes": 10,
                "workload": self.name,
                "recipe_hash": self.recipe_hash,
                "training": report,
            },
        )

    def _train(self) -> tuple[bytes, dict[str, Any]]:
        from workloads.sources.builders import state_dict_bytes
        from workloads.training import deterministic_torch, predict, train

        data = self.data()
        assert data.train is not None and data.train.y is not None and data.eval.y is not None
        t0 = time.perf_counter()
        with deterministic_torch(TRAIN_RECIPE["seed"]):
            model = digits_cnn(**ARCH_KWARGS)
            fit = train(
                model,
                data.train.x,
                data.train.y,
                loss=self.task.finetune_loss(),
                epochs=TRAIN_RECIPE["epochs"],
                batch_size=TRAIN_RECIPE["batch_size"],
                lr=TRAIN_RECIPE["lr"],
                weight_decay=TRAIN_RECIPE["weight_decay"],
                seed=TRAIN_RECIPE["seed"],
            )
            logits = predict(model, data.eval.x)
        accuracy = float((logits.argmax(1) == data.eval.y).mean())
        report = {
            "train_seconds": round(time.perf_counter() - t0, 2),
            "eval_accuracy": accuracy,
            "parameters": sum(p.numel() for p in model.parameters()),
            **fit,
        }
        return state_dict_bytes(model), report


def _load_images() -> tuple[Any, Any]:
    """All 1,797 digits as (N, 3, 32, 32) float32 normalised images and int64 labels."""
    import numpy as np
    import torch
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.from_numpy(digits.images.astype(np.float32) / 16.0)[:, None]
    x = torch.nn.functional.interpolate(
        x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False
    )
    x = ((x - MEAN) / STD).repeat(1, 3, 1, 1).contiguous()
    return x.numpy().astype(np.float32), digits.target.astype(np.int64)


def split_indices(y: Any, fractions: tuple[float, float, float], seed: int) -> tuple[Any, Any, Any]:
    """Disjoint, stratified (train, calib, eval) index arrays, sorted, fixed by ``seed``."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    _, calib_frac, eval_frac = fractions
    rest, eval_idx = train_test_split(idx, test_size=eval_frac, stratify=y, random_state=seed)
    train_idx, calib_idx = train_test_split(
        rest, test_size=calib_frac / (1 - eval_frac), stratify=y[rest], random_state=seed
    )
    return np.sort(train_idx), np.sort(calib_idx), np.sort(eval_idx)
