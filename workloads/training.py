"""Training torch models deterministically: the embedded demos' first training and the
fine-tunes of transforms that change a model (pruning, a new input resolution).

The loss is the task's (:meth:`workloads.tasks.base.FineTuning.finetune_loss`): a classifier
trains with cross-entropy on class labels; a task that defines no fine-tune cannot be pruned with
one. Imports torch: import this module lazily.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

#: ``loss(outputs, targets) -> scalar tensor`` (a ``torch.nn`` loss module is one).
Loss = Callable[[Any, Any], torch.Tensor]


@contextlib.contextmanager
def deterministic_torch(seed: int, threads: int | None = None) -> Iterator[None]:
    """Seed torch, force deterministic kernels and a fixed thread count; restore afterwards.

    Two runs with the same seed on the same machine then give the same weights, which is what
    lets a trained demo model or a fine-tuned candidate be cached by the hash of its recipe."""
    threads = threads or min(2, os.cpu_count() or 1)
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    old_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det, warn_only=old_warn)


def train(
    model: nn.Module,
    x: np.ndarray,
    targets: np.ndarray,
    *,
    loss: Loss,
    epochs: int | None = None,
    steps: int | None = None,
    batch_size: int,
    lr: float,
    weight_decay: float = 0.0,
    seed: int,
) -> dict[str, Any]:
    """Train ``model`` with AdamW + a one-cycle schedule on ``loss(model(x), targets)``, for
    whole epochs or a number of steps.

    The data order comes from a seeded generator, so two calls with the same arguments on the
    same machine give the same weights. Returns the final training loss and the steps taken.
    """
    xt, yt = torch.from_numpy(x), torch.from_numpy(targets)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    total_steps = steps if steps is not None else (epochs or 1) * -(-len(xt) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total_steps)
    model.train()
    done, value = 0, torch.tensor(0.0)
    while done < total_steps:
        order = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            opt.zero_grad(set_to_none=True)
            value = loss(model(xt[idx]), yt[idx])
            value.backward()
            opt.step()
            sched.step()
            done += 1
            if done >= total_steps:
                break
    model.eval()
    return {"final_loss": float(value.detach()), "steps": done}


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Outputs of ``model`` (eval mode) on ``x`` as a float32 array."""
    model.eval()
    out = [model(torch.from_numpy(x[i : i + batch_size])) for i in range(0, len(x), batch_size)]
    return torch.cat(out).numpy().astype(np.float32)
