"""Structured channel pruning with torch-pruning, followed by a short fine-tune.

Input and output are ``torch-state`` artifacts. A pruned model no longer has the shapes its
builder makes, so the output's meta records ``pruned_layers`` (the new shape of each changed
Conv2d / BatchNorm2d / Linear) and :func:`workloads.build_module` rebuilds the pruned
architecture from the builder plus those shapes before loading the weights. This keeps the
artifact a plain state_dict (loadable with ``weights_only=True``, no pickled modules) that every
export transform consumes unchanged.

Fine-tuning is not optional: 50 % channel pruning without it drops digits accuracy to 0.10.
The task supplies what a fine-tune needs (:class:`workloads.tasks.FineTuning`): the loss (also
the Taylor importance's), the training targets and the head pruning keeps whole; the loop is
:func:`workloads.training.train`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from farm.artifact import Artifact
from farm.errors import UsageError
from optimizers.base import (
    BuildContext,
    check_choice,
    check_range,
    register_space,
    register_transform,
)

if TYPE_CHECKING:
    from torch import nn

    from targets.base import TargetSpec
    from workloads.base import WorkloadTraits
    from workloads.tasks import FineTuning

IMPORTANCES = ("l2", "l1", "bn_scale", "taylor", "random")


@dataclass(frozen=True)
class PruneConfig:
    #: Fraction of channels removed from each prunable layer.
    ratio: float = 0.3
    importance: str = "l2"
    #: Keep channel counts a multiple of this (SIMD-friendly); 1 = no rounding.
    round_to: int = 8
    finetune_steps: int = 200
    lr: float = 2e-3
    batch_size: int = 64

    def __post_init__(self) -> None:
        check_range("ratio", self.ratio, 0.0, 0.9)
        check_choice("importance", self.importance, IMPORTANCES)
        check_range("round_to", self.round_to, 1, 64)
        check_range("finetune_steps", self.finetune_steps, 0, 100_000)
        check_range("lr", self.lr, 1e-6, 1.0)
        check_range("batch_size", self.batch_size, 1, 4096)

    @property
    def is_identity(self) -> bool:
        """Ratio 0 prunes nothing: the chain skips the transform (and its fine-tune)."""
        return self.ratio == 0


@register_transform(
    "prune",
    PruneConfig,
    inputs=("torch-state",),
    output="torch-state",
    stage="prune",
    order=20,
    needs_torch=True,
    requires=("torch", "torch_pruning"),
)
def prune(cfg: PruneConfig, artifact: Artifact, ctx: BuildContext) -> Artifact:
    import torch
    import torch_pruning as tp

    from workloads.sources.builders import (
        build_module,
        changed_layer_shapes,
        get_builder,
        state_dict_bytes,
    )
    from workloads.training import deterministic_torch, train

    task = _finetuning(ctx)
    targets = None
    if cfg.finetune_steps:
        targets = _targets(
            task, ctx, "transform 'prune' needs a labelled train split for its fine-tune"
        )
    meta = artifact.meta
    c, h, w = meta["input_shape"]
    with deterministic_torch(ctx.seed):
        model = build_module(artifact)
        for p in model.parameters():
            p.requires_grad_(True)
        example = torch.zeros(1, c, h, w)
        macs_before, params_before = tp.utils.count_ops_and_params(model, example)
        if cfg.ratio > 0:
            pruner = tp.pruner.BasePruner(
                model,
                example,
                importance=_importance(cfg, model, task, ctx),
                pruning_ratio=cfg.ratio,
                ignored_layers=task.protected_layers(model),
                round_to=cfg.round_to if cfg.round_to > 1 else None,
            )
            pruner.step()
        macs_after, params_after = tp.utils.count_ops_and_params(model, example)
        fit: dict[str, Any] = {}
        if cfg.finetune_steps:
            assert ctx.data.train is not None and targets is not None
            fit = train(
                model,
                ctx.data.train.x,
                targets,
                loss=task.finetune_loss(),
                steps=cfg.finetune_steps,
                batch_size=cfg.batch_size,
                lr=cfg.lr,
                seed=ctx.seed,
            )
        model.eval()
    reference = get_builder(meta["builder"])(**meta.get("builder_kwargs", {}))
    return Artifact(
        "torch-state",
        {"state_dict.pt": state_dict_bytes(model)},
        {
            "pruned_layers": changed_layer_shapes(reference, model),
            "pruning": {
                "ratio": cfg.ratio,
                "params_before": int(params_before),
                "params_after": int(params_after),
                "macs_before": int(macs_before),
                "macs_after": int(macs_after),
                "finetune": fit,
            },
        },
    )


@register_space("prune")
def _space(target: TargetSpec, traits: WorkloadTraits | None) -> dict[str, Any]:
    """Offered only for torch sources. ``round_to`` and ``finetune_steps`` are offered at their
    defaults (one value each, so they don't grow the space) so that a job can set or search
    them with ``[search.knobs] "prune.finetune_steps" = [...]``."""
    from optuna.distributions import CategoricalDistribution

    if traits is not None and not traits.torch_source:
        return {}
    return {
        "ratio": CategoricalDistribution([0.0, 0.25, 0.5, 0.7]),
        "importance": CategoricalDistribution(["l2", "l1", "bn_scale"]),
        "round_to": CategoricalDistribution([PruneConfig.round_to]),
        "finetune_steps": CategoricalDistribution([PruneConfig.finetune_steps]),
    }


def _finetuning(ctx: BuildContext) -> FineTuning:
    """The task's fine-tune hooks; a task without them cannot be pruned."""
    from workloads.tasks import FineTuning

    if not isinstance(ctx.task, FineTuning):
        what = "no task" if ctx.task is None else f"a {ctx.task.name} task"
        raise UsageError(
            f"transform 'prune' fine-tunes with the task's loss and keeps its head whole, and "
            f"{what} defines none"
        )
    return ctx.task


def _targets(task: FineTuning, ctx: BuildContext, why: str) -> Any:
    """The train split's targets for ``task``'s loss (None without a train split)."""
    split = ctx.data.train
    targets = None if split is None else task.finetune_targets(split)
    if targets is None:
        raise UsageError(why)
    return targets


def _importance(cfg: PruneConfig, model: nn.Module, task: FineTuning, ctx: BuildContext) -> Any:
    import torch
    import torch_pruning as tp

    if cfg.importance == "l2":
        return tp.importance.GroupMagnitudeImportance(p=2)
    if cfg.importance == "l1":
        return tp.importance.GroupMagnitudeImportance(p=1)
    if cfg.importance == "bn_scale":
        return tp.importance.BNScaleImportance()
    if cfg.importance == "random":
        return tp.importance.RandomImportance()
    # Taylor: |weight × gradient| of the task's loss on one labelled batch of the train split.
    targets = _targets(task, ctx, "prune.importance 'taylor' needs a labelled train split")
    assert ctx.data.train is not None
    model.zero_grad()
    x = torch.from_numpy(ctx.data.train.x[: cfg.batch_size])
    y = torch.from_numpy(targets[: cfg.batch_size])
    task.finetune_loss()(model(x), y).backward()
    return tp.importance.GroupTaylorImportance()
