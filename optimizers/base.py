"""The transform registry: config dataclasses, a decorator that records a handler per name, and
one public :func:`apply` (in the style of torchao's ``transform_module``).

A transform turns one :class:`~farm.artifact.Artifact` into another (prune, export, quantize).
Each one declares, when it registers, the artifact formats it accepts, the format it makes, a
config dataclass whose fields are its knobs, the build *stage* it is (the word a failed build's
error starts with) and its *order* in a chain, the libraries it loads, and optionally the search
space it offers on a target (given the workload's :class:`~workloads.base.WorkloadTraits`).
Nothing else in the farm lists transforms: a new one is one module.

A :class:`Transform` is a plain frozen object: the engine hands the registered ones to its build
workers, so a transform registered from Python outside this package (a plug-in, a test) builds
on Ray workers that never imported it. This module and the transform modules import no heavy
library at import time: torch, ONNX Runtime, NNCF and OpenVINO are imported inside the
transform functions.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farm.errors import UsageError

if TYPE_CHECKING:
    from farm.artifact import Artifact
    from targets.base import TargetSpec
    from workloads import WorkloadData, WorkloadTraits
    from workloads.tasks import Task


@dataclass(frozen=True, eq=False)
class BuildContext:
    """What a transform may use besides its input artifact: the workload's data and a seed."""

    data: WorkloadData
    seed: int = 0
    #: Where transforms may keep one-time work shared by many builds (quantization sensitivity
    #: rankings); None keeps it in memory only.
    cache_dir: Path | None = None
    #: The workload's task: transforms that fine-tune take its loss and protected head.
    task: Task | None = None


Handler = Callable[[Any, "Artifact", BuildContext], "Artifact"]
SpaceFn = Callable[["TargetSpec", "WorkloadTraits | None"], dict[str, Any]]


@dataclass(frozen=True)
class Transform:
    """A registered transform: what it takes and makes, where it sits in a chain, and how to
    run it."""

    name: str
    config_cls: type
    handler: Handler
    inputs: tuple[str, ...]
    output: str
    #: The build step it is (``export``, ``quantize``, ``prune``, ``resize``): what a failed
    #: build's error names first.
    stage: str
    #: Its place in a chain, whatever order a job lists its transforms in (lower first).
    order: int
    #: Needs a torch module as input (not offered for ONNX-file workloads).
    needs_torch: bool = False
    #: Python modules it loads while it runs (a measurement refuses a process that has them).
    requires: tuple[str, ...] = ()
    #: ``space(target, traits_or_None) -> {"<field>": distribution}``
    space: SpaceFn | None = None

    def make_config(self, config: dict[str, Any] | None = None) -> Any:
        """Validate ``config`` into the transform's dataclass (see :func:`make_config`)."""
        return _make_config(self, config)

    def apply(self, config: dict[str, Any] | None, artifact: Artifact, ctx: BuildContext) -> Any:
        """Run the transform on ``artifact`` (see :func:`apply`)."""
        return _apply(self, config, artifact, ctx)


_TRANSFORMS: dict[str, Transform] = {}


def register_transform(
    name: str,
    config_cls: type,
    *,
    inputs: tuple[str, ...],
    output: str,
    stage: str,
    order: int,
    needs_torch: bool = False,
    requires: tuple[str, ...] = (),
) -> Callable[[Handler], Handler]:
    """Decorator: record ``handler(config, artifact, ctx) -> Artifact`` as transform ``name``.

    ``stage``: the build step it is; ``order``: its place in a chain (the input resolution
    first at 10, pruning 20, export 30, quantization 40: every later step calibrates, fine-tunes
    and exports at the resolution served, and pruning's fine-tune needs a torch model)."""
    if not dataclasses.is_dataclass(config_cls):
        raise TypeError(f"config of transform {name!r} must be a dataclass")

    def decorator(handler: Handler) -> Handler:
        if name in _TRANSFORMS and _TRANSFORMS[name].handler is not handler:
            raise ValueError(f"transform {name!r} is registered twice")
        _TRANSFORMS[name] = Transform(
            name, config_cls, handler, inputs, output, stage, order, needs_torch, requires
        )
        return handler

    return decorator


def unregister_transform(name: str) -> None:
    """Forget a transform (one a test registered)."""
    _TRANSFORMS.pop(name, None)


def register_space(name: str) -> Callable[[SpaceFn], SpaceFn]:
    """Decorator: record the search-space function of an already registered transform."""

    def decorator(fn: SpaceFn) -> SpaceFn:
        _TRANSFORMS[name] = dataclasses.replace(get_transform(name), space=fn)
        return fn

    return decorator


def get_transform(name: str) -> Transform:
    try:
        return _TRANSFORMS[name]
    except KeyError:
        known = ", ".join(sorted(_TRANSFORMS))
        raise UsageError(f"unknown transform {name!r}; known transforms: {known}") from None


def transform_names() -> tuple[str, ...]:
    return tuple(sorted(_TRANSFORMS))


def chain_order(names: Iterable[str]) -> list[str]:
    """``names`` in chain order (each transform's declared ``order``; ties keep their order)."""
    names = list(names)
    return sorted(names, key=lambda n: (get_transform(n).order, names.index(n)))


def transforms() -> tuple[Transform, ...]:
    """Every registered transform."""
    return tuple(_TRANSFORMS.values())


def transform_config_fields(name: str) -> tuple[str, ...]:
    """The knobs of a transform, i.e. the fields of its config dataclass."""
    return tuple(f.name for f in dataclasses.fields(get_transform(name).config_cls))


def make_config(name: str, config: dict[str, Any] | None = None) -> Any:
    """Validate ``config`` into the transform's dataclass.

    Unknown fields and wrong types raise :class:`UsageError` naming ``<transform>.<field>``;
    value rules (choices, ranges) are checked by the dataclass's ``__post_init__``, which raises
    ``ValueError`` and is turned into a ``UsageError`` here.
    """
    return _make_config(get_transform(name), config)


def _make_config(transform: Transform, config: dict[str, Any] | None) -> Any:
    name = transform.name
    config = dict(config or {})
    fields = {f.name: f for f in dataclasses.fields(transform.config_cls)}
    unknown = sorted(set(config) - set(fields))
    if unknown:
        raise UsageError(
            f"transform {name!r}: unknown config field(s) {', '.join(unknown)}; "
            f"known fields: {', '.join(fields) or '(none)'}"
        )
    hints = typing.get_type_hints(transform.config_cls)
    for key, value in config.items():
        if not _type_ok(value, hints[key]):
            raise UsageError(
                f"transform {name!r}: field `{name}.{key}` expected {_type_name(hints[key])}, "
                f"got {value!r}"
            )
    try:
        return transform.config_cls(**config)
    except ValueError as exc:
        raise UsageError(f"transform {name!r}: {exc}") from None


def is_identity(name: str, config: dict[str, Any] | None = None) -> bool:
    """True when transform ``name`` with ``config`` would leave the model as it is (a pruning
    ratio of 0), so the engine can leave it out of the chain. A config class says so through an
    ``is_identity`` property; transforms without one always change the artifact."""
    return bool(getattr(make_config(name, config), "is_identity", False))


def apply(
    name: str, config: dict[str, Any] | None, artifact: Artifact, ctx: BuildContext
) -> Artifact:
    """Run transform ``name`` with ``config`` on ``artifact``.

    The result's meta keeps the input's meta (builder, input shape, number of classes…) and
    appends ``{"name", "config"}`` to ``meta["transforms"]``, the chain that made it.
    """
    return _apply(get_transform(name), config, artifact, ctx)


def _apply(
    transform: Transform, config: dict[str, Any] | None, artifact: Artifact, ctx: BuildContext
) -> Artifact:
    name = transform.name
    cfg = _make_config(transform, config)
    if artifact.format not in transform.inputs:
        raise UsageError(
            f"transform {name!r} takes a {' or '.join(transform.inputs)} artifact, "
            f"got {artifact.format!r}"
        )
    out = transform.handler(cfg, artifact, ctx)
    if out.format != transform.output:
        raise RuntimeError(f"transform {name!r} made {out.format!r}, not {transform.output!r}")
    chain = [
        *artifact.meta.get("transforms", []),
        {"name": name, "config": dataclasses.asdict(cfg)},
    ]
    meta = {**artifact.meta, **out.meta, "transforms": chain}
    return type(out)(out.format, out.files, meta)


def search_space(
    name: str, target: TargetSpec, traits: WorkloadTraits | None = None
) -> dict[str, Any]:
    """Knobs transform ``name`` offers on ``target``: ``{"<name>.<field>": optuna distribution}``.

    ``traits`` (the workload's, optional) let a transform restrict itself (no pruning of an
    ONNX file, no resolution change for a model that takes one input size).
    """
    transform = get_transform(name)
    if transform.space is None:
        return {}
    return {f"{name}.{k}": v for k, v in transform.space(target, traits).items()}


def split_params(params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Group Optuna params named ``<transform>.<field>`` into one config dict per transform.

    Params without a dot (batch size, threads: runtime options) are not transform knobs and are
    left out.
    """
    configs: dict[str, dict[str, Any]] = {}
    for key, value in params.items():
        name, dot, field = key.partition(".")
        if dot and name in _TRANSFORMS:
            configs.setdefault(name, {})[field] = value
    return configs


# --- config validation helpers -------------------------------------------------------------


def _type_ok(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, arg) for arg in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is not None:
        return isinstance(value, origin)
    return isinstance(value, hint)


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    return getattr(hint, "__name__", str(hint))


def check_choice(field: str, value: Any, choices: tuple[Any, ...]) -> None:
    """For ``__post_init__``: raise ValueError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"`{field}` must be one of {list(choices)}, got {value!r}")


def check_range(field: str, value: float, low: float, high: float) -> None:
    """For ``__post_init__``: raise ValueError unless ``low <= value <= high``."""
    if not low <= value <= high:
        raise ValueError(f"`{low} <= {field} <= {high}` must hold, got {field}={value!r}")
