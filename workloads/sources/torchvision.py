"""Torchvision classification architectures by name, with the user's weights or random ones.

Weights are a plain ``state_dict`` loaded with ``torch.load(..., weights_only=True)``: arbitrary
pickled objects are never unpickled. Without weights the model is randomly initialised (seeded)
and a study measures latency, with quality as fidelity to the fp32 reference.
"""

from __future__ import annotations

import io
from functools import cached_property
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farm._io import hash_file
from farm._validate import Fields
from farm.errors import SpecError
from workloads.base import Workload
from workloads.data import WorkloadData
from workloads.datasets.config import DataConfig
from workloads.sources.builders import register_builder, state_dict_bytes
from workloads.tasks import Classification

if TYPE_CHECKING:
    from torch import nn

    from farm.artifact import Artifact

#: Architecture -> the state_dict key of its classifier weight (rows = classes). A fixed table:
#: user input never picks an arbitrary torchvision function.
ARCHITECTURES: dict[str, str] = {
    "resnet18": "fc.weight",
    "resnet50": "fc.weight",
    "mobilenet_v3_small": "classifier.3.weight",
    "mobilenet_v3_large": "classifier.3.weight",
    "efficientnet_b0": "classifier.1.weight",
}
DEFAULT_NUM_CLASSES = 1000
INIT_SEED = 0


#: The ``[workload]`` fields of a torchvision source.
FIELDS = frozenset({"model", "weights", "num_classes", "data"})


@register_builder("torchvision")
def torchvision_model(arch: str, num_classes: int) -> nn.Module:
    import torchvision

    if arch not in ARCHITECTURES:
        raise ValueError(f"`arch` must be one of {list(ARCHITECTURES)}, got arch={arch!r}")
    return getattr(torchvision.models, arch)(weights=None, num_classes=num_classes)


def check_model_section(
    section: Fields, base_dir: Path, known: tuple[str, ...] = tuple(ARCHITECTURES)
) -> tuple[str, Path | None, int | None]:
    """Validate ``model`` (one of ``known``), ``weights`` and ``num_classes`` of a
    ``[workload]`` table."""
    arch = str(section.string("model", choices=known))
    weights = section.path("weights", base_dir, None, kind="file")
    num_classes = section.integer("num_classes", None, low=2)
    return arch, None if weights is None else weights.resolve(), num_classes


def load_state_dict_file(path: Path, source: str = "<memory>") -> dict[str, Any]:
    """A plain state_dict from ``path``; anything else is a :class:`SpecError` naming the job
    file ``source``, ``workload.weights`` and the file."""
    import torch

    expected = (
        "a plain state_dict that loads with torch.load(weights_only=True): save "
        "`model.state_dict()`, not the model"
    )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SpecError(source, "workload.weights", expected, f"{path}: {first_line}") from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise SpecError(
            source,
            "workload.weights",
            expected + " (a dict of parameter name -> tensor)",
            f"{path}: a {type(state).__name__}",
        )
    return state


def check_state_dict(
    module: nn.Module, state: dict[str, Any], path: Path, arch: str, source: str = "<memory>"
) -> None:
    """Raise a :class:`SpecError` listing the first keys/shapes that don't fit ``module``."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:3]}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:3]}")
        if shapes:
            parts.append(f"shape mismatch {shapes[:3]}")
        raise SpecError(
            source,
            "workload.weights",
            f"the weights of architecture {arch!r}",
            f"{path}, which does not match: " + "; ".join(parts),
        )


class TorchvisionWorkload(Workload):
    """A torchvision classifier (``[workload] model = "resnet18"``) with the user's weights or
    seeded random ones."""

    #: The architectures offered all end in adaptive average pooling: any input size works.
    allows_resolution = True
    task = Classification()

    def __init__(
        self,
        arch: str,
        weights: Path | None,
        num_classes: int | None,
        data: DataConfig,
        source: str = "<memory>",
    ) -> None:
        self.arch = arch
        self.weights = weights
        self._num_classes_arg = num_classes
        self.data_config = data
        self.source = source
        self.name = arch

    @cached_property
    def _state(self) -> dict[str, Any] | None:
        return load_state_dict_file(self.weights, self.source) if self.weights else None

    @cached_property
    def num_classes(self) -> int:
        """From the weights' classifier, else ``num_classes``, else the data, else 1000."""
        n = self._num_classes_arg
        if self._state is not None:
            key = ARCHITECTURES[self.arch]
            if key in self._state:
                from_weights = int(self._state[key].shape[0])
                if n is not None and n != from_weights:
                    raise SpecError(
                        self.source,
                        "workload.num_classes",
                        f"{from_weights}, the outputs of the weights' classifier ({key})",
                        n,
                    )
                n = from_weights
        if n is None and not self.data_config.synthetic:
            from workloads.datasets.imagefolder import class_names

            assert self.data_config.eval is not None
            n = len(class_names(self.data_config.eval, self.data_config, "eval"))
        return n or DEFAULT_NUM_CLASSES

    def recipe(self) -> dict[str, Any]:
        from workloads.datasets.imagefolder import data_fingerprint

        return {
            "workload": "torchvision",
            "arch": self.arch,
            "weights_sha256": hash_file(self.weights) if self.weights else None,
            "init_seed": None if self.weights else INIT_SEED,
            "num_classes": self._num_classes_arg,
            "data": data_fingerprint(self.data_config),
            "torchvision": version("torchvision"),
        }

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (3, self.data_config.crop, self.data_config.crop)

    def data(self) -> WorkloadData:
        return self._data

    @cached_property
    def _data(self) -> WorkloadData:
        from workloads.datasets.imagefolder import load_data

        return load_data(self.data_config, self.num_classes)

    def source_artifact(self, cache_dir: Path) -> Artifact:
        """The fp32 model; a :class:`SpecError` naming the job file and ``workload.weights``
        when the weights don't fit the architecture."""
        import torch

        from farm.artifact import Artifact

        num_classes = self.num_classes
        if self._state is None:
            torch.manual_seed(INIT_SEED)
        module = torchvision_model(self.arch, num_classes)
        if self._state is not None:
            assert self.weights is not None
            check_state_dict(module, self._state, self.weights, self.arch, self.source)
            module.load_state_dict(self._state)
            blob = _state_bytes(self._state)
        else:
            blob = state_dict_bytes(module)
        return Artifact(
            "torch-state",
            {"state_dict.pt": blob},
            {
                "builder": "torchvision",
                "builder_kwargs": {"arch": self.arch, "num_classes": num_classes},
                "input_shape": list(self.input_shape),
                "num_classes": num_classes,
                "workload": self.name,
                "recipe_hash": self.recipe_hash,
                "pretrained": self.weights is not None,
            },
        )


def _state_bytes(state: dict[str, Any]) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save({k: v.detach().cpu().contiguous() for k, v in state.items()}, buf)
    return buf.getvalue()
