"""Optimizers: transforms from one artifact to the next (resize_input → prune → export →
quantize; :func:`chain_order` puts a job's transforms in the order each one declares).

``apply(name, config, artifact, ctx)`` runs one transform; ``search_space(name, target, traits)``
lists the knobs it offers as Optuna distributions named ``<transform>.<field>``. Importing this
package is cheap: each transform module imports its heavy library inside the transform function.

Every module of this package is imported here, which registers the transforms it defines
(``@register_transform``): adding a transform is adding one module. The modules are this
package's own files, never names from user input.
"""

from __future__ import annotations

import importlib
import pkgutil

from optimizers.base import (
    BuildContext,
    Transform,
    apply,
    chain_order,
    get_transform,
    is_identity,
    make_config,
    register_space,
    register_transform,
    search_space,
    split_params,
    transform_config_fields,
    transform_names,
    transforms,
    unregister_transform,
)

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "BuildContext",
    "Transform",
    "apply",
    "chain_order",
    "get_transform",
    "is_identity",
    "make_config",
    "register_space",
    "register_transform",
    "search_space",
    "split_params",
    "transform_config_fields",
    "transform_names",
    "transforms",
    "unregister_transform",
]
