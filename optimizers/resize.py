"""Input resolution: serve a model at a smaller (or larger) square input than it was trained at.

For CNNs that end in global average pooling (the digits CNN, the torchvision classifiers) the
weights do not depend on the input size, so the transform returns the ``torch-state`` artifact
with ``meta["input_shape"] = [C, size, size]`` and the same weights, or, with
``finetune_steps``, weights fine-tuned at the new size on the train split. Everything after it
follows that shape: the export transforms export at it, and the build and evaluate tasks resize
the workload's data to it (:func:`workloads.resize_data`), so quantizers calibrate, pruning
fine-tunes and the runtime is evaluated and measured at the new resolution.

It runs first in a chain (its registered ``order``) and is offered only for workloads
that allow it (``WorkloadTraits.allows_resolution``: torch models, not ONNX files). The
fine-tune trains with the task's loss (:class:`workloads.tasks.FineTuning`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from farm.artifact import Artifact
from farm.errors import UsageError
from optimizers.base import BuildContext, check_range, register_space, register_transform

if TYPE_CHECKING:
    from targets.base import TargetSpec
    from workloads.base import WorkloadTraits

#: Default search points, as fractions of the native size (rounded to multiples of ``ROUND``).
FRACTIONS = (0.75, 0.5)
ROUND = 8
MAX_SIZE = 4096


@dataclass(frozen=True)
class ResizeInputConfig:
    #: Height and width of the model's input; 0 keeps the native size.
    size: int = 0
    #: Optional fine-tune at the new size on the train split (0: weights unchanged). A CNN
    #: trained at one scale loses accuracy well below it (digits: 0.99 at 32, 0.44 at 16);
    #: a short fine-tune recovers most of it.
    finetune_steps: int = 0
    lr: float = 2e-3
    batch_size: int = 64

    def __post_init__(self) -> None:
        if self.size != 0:
            check_range("size", self.size, ROUND, MAX_SIZE)
        check_range("finetune_steps", self.finetune_steps, 0, 100_000)
        check_range("lr", self.lr, 1e-6, 1.0)
        check_range("batch_size", self.batch_size, 1, 4096)

    @property
    def is_identity(self) -> bool:
        """Size 0 is the native resolution: the chain skips the transform."""
        return self.size == 0


@register_transform(
    "resize_input",
    ResizeInputConfig,
    inputs=("torch-state",),
    output="torch-state",
    stage="resize",
    order=10,
    needs_torch=True,
    requires=("torch",),
)
def resize_input(cfg: ResizeInputConfig, artifact: Artifact, ctx: BuildContext) -> Artifact:
    c, h, w = artifact.meta["input_shape"]
    size = cfg.size or h
    meta: dict[str, Any] = {"input_shape": [c, size, size], "native_input_shape": [c, h, w]}
    if not cfg.finetune_steps:
        return Artifact("torch-state", dict(artifact.files), meta)

    from workloads.data import resize_split
    from workloads.sources.builders import build_module, state_dict_bytes
    from workloads.tasks import FineTuning
    from workloads.training import deterministic_torch, train

    if not isinstance(ctx.task, FineTuning):
        what = "no task" if ctx.task is None else f"a {ctx.task.name} task"
        raise UsageError(
            f"resize_input.finetune_steps fine-tunes with the task's loss, and {what} defines none"
        )
    train_split = ctx.data.train
    targets = None if train_split is None else ctx.task.finetune_targets(train_split)
    if train_split is None or targets is None:
        raise UsageError("resize_input.finetune_steps needs a labelled train split")
    x = resize_split(train_split, (size, size)).x
    with deterministic_torch(ctx.seed):
        model = build_module(artifact)
        for p in model.parameters():
            p.requires_grad_(True)
        meta["finetune"] = train(
            model,
            x,
            targets,
            loss=ctx.task.finetune_loss(),
            steps=cfg.finetune_steps,
            batch_size=cfg.batch_size,
            lr=cfg.lr,
            seed=ctx.seed,
        )
    return Artifact("torch-state", {"state_dict.pt": state_dict_bytes(model)}, meta)


def default_sizes(native: int) -> list[int]:
    """Native (as 0), then about 0.75× and 0.5× of it, rounded to multiples of 8."""
    sizes = [0]
    for f in FRACTIONS:
        s = max(ROUND, round(native * f / ROUND) * ROUND)
        if s != native and s not in sizes:
            sizes.append(s)
    return sizes


@register_space("resize_input")
def _space(target: TargetSpec, traits: WorkloadTraits | None) -> dict[str, Any]:
    """Offered only for workloads that allow another resolution, at sizes around the native
    one. Without a workload (spec checks) only the native size is offered, which a job may
    replace through ``[search.knobs] "resize_input.size" = [...]``."""
    from optuna.distributions import CategoricalDistribution

    if traits is not None and not traits.allows_resolution:
        return {}
    native = None if traits is None or traits.input_shape is None else traits.input_shape[-1]
    return {
        "size": CategoricalDistribution([0] if native is None else default_sizes(int(native))),
        "finetune_steps": CategoricalDistribution([ResizeInputConfig.finetune_steps]),
    }
