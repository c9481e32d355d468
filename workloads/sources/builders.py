"""Model builders: how a ``torch-state`` artifact becomes a ``torch.nn.Module`` again.

A torch source records in its artifact the *builder* that makes its architecture
(``meta["builder"]``, ``meta["builder_kwargs"]``); :func:`build_module` calls it and loads the
stored weights. Builders are registered by name with :func:`register_builder` by the modules of
:data:`BUILDER_MODULES`, a fixed table, so that user input never chooses what gets imported.

Structured pruning changes layer shapes, so a pruned ``state_dict`` no longer loads into the
architecture its builder makes. A pruned artifact therefore records, in
``meta["pruned_layers"]``, the new shape of every layer whose shape changed
(:func:`changed_layer_shapes`); :func:`apply_layer_shapes` replaces those layers in a freshly
built module (same kernel, stride, padding…, new channel counts) so that the pruned weights
load. Only the layer types that channel pruning touches in CNNs are handled: ``Conv2d``,
``BatchNorm2d`` and ``Linear``.

Importing this module does not import torch.
"""

from __future__ import annotations

import importlib
import io
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from farm.errors import UsageError

if TYPE_CHECKING:
    from torch import nn

    from farm.artifact import Artifact

Builder = Callable[..., "nn.Module"]
_BUILDERS: dict[str, Builder] = {}
#: The modules that register builders, imported when a builder is looked up.
BUILDER_MODULES = (
    "workloads.demos.digits",
    "workloads.sources.torchvision",
    "workloads.sources.torchvision_dense",
    "workloads.sources.torchvision_keypoints",
    "workloads.demos.shapes",
    "workloads.demos.shapes_keypoints",
)


def register_builder(name: str) -> Callable[[Builder], Builder]:
    """Decorator: record ``fn`` as the builder called ``name`` (used in artifact meta)."""

    def decorator(fn: Builder) -> Builder:
        if name in _BUILDERS and _BUILDERS[name] is not fn:
            raise ValueError(f"builder {name!r} is registered twice")
        _BUILDERS[name] = fn
        return fn

    return decorator


def get_builder(name: str) -> Builder:
    """The builder called ``name``; a :class:`UsageError` listing the known ones otherwise."""
    for module in BUILDER_MODULES:
        importlib.import_module(module)
    try:
        return _BUILDERS[name]
    except KeyError:
        raise UsageError(
            f"unknown model builder {name!r}; known builders: {', '.join(sorted(_BUILDERS))}"
        ) from None


def state_dict_bytes(module: nn.Module) -> bytes:
    """``torch.save(module.state_dict())`` as bytes (tensors made contiguous, on the CPU)."""
    import torch

    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def build_module(artifact: Artifact) -> nn.Module:
    """Rebuild the ``torch.nn.Module`` of a ``torch-state`` artifact, in eval mode.

    The builder named in ``meta["builder"]`` makes the original architecture; when the artifact
    was pruned, ``meta["pruned_layers"]`` gives the new shape of each pruned layer and those
    layers are replaced before the weights are loaded.
    """
    import torch

    if artifact.format != "torch-state":
        raise ValueError(f"build_module needs a torch-state artifact, got {artifact.format!r}")
    meta = artifact.meta
    module = get_builder(meta["builder"])(**meta.get("builder_kwargs", {}))
    if meta.get("pruned_layers"):
        apply_layer_shapes(module, meta["pruned_layers"])
    state = torch.load(io.BytesIO(artifact.files["state_dict.pt"]), weights_only=True)
    module.load_state_dict(state)
    return module.eval()


# -- pruned layer shapes ---------------------------------------------------------------------


def layer_shape(module: nn.Module) -> dict[str, Any] | None:
    """The shape-defining fields of a layer, or None for layers without channel counts."""
    from torch import nn

    if isinstance(module, nn.Conv2d):
        return {
            "type": "Conv2d",
            "in_channels": module.in_channels,
            "out_channels": module.out_channels,
            "groups": module.groups,
        }
    if isinstance(module, nn.BatchNorm2d):
        return {"type": "BatchNorm2d", "num_features": module.num_features}
    if isinstance(module, nn.Linear):
        return {
            "type": "Linear",
            "in_features": module.in_features,
            "out_features": module.out_features,
        }
    return None


def changed_layer_shapes(original: nn.Module, pruned: nn.Module) -> dict[str, dict[str, Any]]:
    """Shapes of the layers of ``pruned`` that differ from the same layers in ``original``."""
    before = {name: layer_shape(m) for name, m in original.named_modules()}
    changed = {}
    for name, module in pruned.named_modules():
        shape = layer_shape(module)
        if shape is not None and shape != before.get(name):
            changed[name] = shape
    return changed


def apply_layer_shapes(module: nn.Module, shapes: dict[str, dict[str, Any]]) -> None:
    """Replace, in place, each named layer of ``module`` by one with the recorded shape."""
    for name, shape in shapes.items():
        parent_name, _, child = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        old = getattr(parent, child)
        setattr(parent, child, _resized(old, shape))


def _resized(old: nn.Module, shape: dict[str, Any]) -> nn.Module:
    from torch import nn

    kind = shape["type"]
    if kind == "Conv2d" and isinstance(old, nn.Conv2d):
        return nn.Conv2d(
            shape["in_channels"],
            shape["out_channels"],
            kernel_size=old.kernel_size,  # type: ignore[arg-type]
            stride=old.stride,  # type: ignore[arg-type]
            padding=old.padding,  # type: ignore[arg-type]
            dilation=old.dilation,  # type: ignore[arg-type]
            groups=shape["groups"],
            bias=old.bias is not None,
            padding_mode=old.padding_mode,
        )
    if kind == "BatchNorm2d" and isinstance(old, nn.BatchNorm2d):
        return nn.BatchNorm2d(
            shape["num_features"],
            eps=old.eps,
            momentum=old.momentum,
            affine=old.affine,
            track_running_stats=old.track_running_stats,
        )
    if kind == "Linear" and isinstance(old, nn.Linear):
        return nn.Linear(shape["in_features"], shape["out_features"], bias=old.bias is not None)
    raise ValueError(f"cannot resize a {type(old).__name__} as a {kind}")
