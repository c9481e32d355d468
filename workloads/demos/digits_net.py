"""The digits CNN and its training loop. Imports torch: only import this module lazily."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn


def _block(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


class DigitsCNN(nn.Module):
    """Four conv-BN-ReLU blocks, two max-pools, global average pool, linear head (~98k params)."""

    def __init__(self, num_classes: int = 10, width: int = 16, in_channels: int = 3) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            *_block(in_channels, w),
            *_block(w, 2 * w),
            nn.MaxPool2d(2),
            *_block(2 * w, 4 * w),
            nn.MaxPool2d(2),
            *_block(4 * w, 8 * w),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.classifier = nn.Linear(8 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@contextlib.contextmanager
def deterministic_torch(seed: int, threads: int | None = None) -> Iterator[None]:
    """Seed torch, force deterministic kernels and a fixed thread count; restore afterwards."""
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
    y: np.ndarray,
    *,
    epochs: int | None = None,
    steps: int | None = None,
    batch_size: int,
    lr: float,
    weight_decay: float = 0.0,
    seed: int,
) -> dict[str, Any]:
    """Train ``model`` with AdamW + cross-entropy, for whole epochs or a number of steps.

    The data order comes from a seeded generator, so two calls with the same arguments on the
    same machine give the same weights. Returns the final training loss.
    """
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    total_steps = steps if steps is not None else (epochs or 1) * -(-len(xt) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total_steps)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    done, loss = 0, torch.tensor(0.0)
    while done < total_steps:
        order = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            sched.step()
            done += 1
            if done >= total_steps:
                break
    model.eval()
    return {"final_loss": float(loss.detach()), "steps": done}


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Logits of ``model`` (eval mode) on ``x`` as a float32 array."""
    model.eval()
    out = [model(torch.from_numpy(x[i : i + batch_size])) for i in range(0, len(x), batch_size)]
    return torch.cat(out).numpy().astype(np.float32)
