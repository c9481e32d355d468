"""Record and re-apply the channel counts of a structurally pruned model.

Structured pruning changes layer shapes, so a pruned ``state_dict`` no longer loads into the
architecture its builder makes. A pruned ``torch-state`` artifact therefore records, in
``meta["pruned_layers"]``, the new shape of every layer whose shape changed;
:func:`apply_layer_shapes` replaces those layers in a freshly built module (same kernel, stride,
padding…, new channel counts) so that the pruned weights load. Only the layer types that channel
pruning touches in CNNs are handled: ``Conv2d``, ``BatchNorm2d`` and ``Linear``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn


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
