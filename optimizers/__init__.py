"""Optimizers: transforms from one artifact to the next (resize_input → prune → export →
quantize; :func:`chain_order` puts a job's transforms in that order).

``apply(name, config, artifact, ctx)`` runs one transform; ``search_space(name, target)`` lists
the knobs it offers as Optuna distributions named ``<transform>.<field>``. Importing this package
is cheap: each transform module imports its heavy library inside the transform function.
"""

from __future__ import annotations

# Importing the transform modules registers them (a fixed list: user input never picks a module).
from optimizers import export, prune, quantize_nncf, quantize_ort, resize  # noqa: F401
from optimizers.base import (
    CHAIN_ORDER,
    BuildContext,
    Transform,
    apply,
    chain_order,
    get_transform,
    is_identity,
    make_config,
    search_space,
    split_params,
    transform_config_fields,
    transform_names,
)

__all__ = [
    "CHAIN_ORDER",
    "BuildContext",
    "Transform",
    "apply",
    "chain_order",
    "get_transform",
    "is_identity",
    "make_config",
    "search_space",
    "split_params",
    "transform_config_fields",
    "transform_names",
]
