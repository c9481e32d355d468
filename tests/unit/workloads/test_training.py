"""The training loop transforms fine-tune with: the task's loss, whole epochs or a step count,
the same weights for the same seed, and the caller's torch settings left as they were."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from workloads.tasks import Classification
from workloads.training import deterministic_torch, predict, train


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 96)
    x = rng.standard_normal((96, 6)).astype(np.float32) + np.eye(3, 6, dtype=np.float32)[y] * 3
    return x, y.astype(np.int64)


def _fit(steps: int | None = None, epochs: int | None = None) -> tuple[nn.Module, dict]:
    x, y = _data()
    with deterministic_torch(0):
        model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
        fit = train(
            model,
            x,
            y,
            loss=Classification().finetune_loss(),
            steps=steps,
            epochs=epochs,
            batch_size=32,
            lr=1e-2,
            seed=0,
        )
    return model, fit


def test_training_with_the_tasks_loss_learns_the_task() -> None:
    model, fit = _fit(epochs=20)
    x, y = _data()
    assert fit["steps"] == 20 * 3
    assert (predict(model, x).argmax(1) == y).mean() > 0.9
    assert not model.training  # handed back in eval mode


def test_a_step_count_stops_mid_epoch() -> None:
    _, fit = _fit(steps=5)
    assert fit["steps"] == 5 and np.isfinite(fit["final_loss"])


def test_the_same_seed_gives_the_same_weights() -> None:
    a, _ = _fit(steps=7)
    b, _ = _fit(steps=7)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_deterministic_torch_restores_the_callers_settings() -> None:
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    with deterministic_torch(0, threads=1):
        assert torch.get_num_threads() == 1 and torch.are_deterministic_algorithms_enabled()
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == det
