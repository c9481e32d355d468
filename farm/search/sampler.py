"""The sampler a study asks, and how many points a space holds."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

    from farm.spec.job import SearchSpec


def make_sampler(search: SearchSpec, seed: int) -> optuna.samplers.BaseSampler:
    """The job's sampler (``[search] sampler``). Constraints reach it through
    ``Trial.set_constraint`` (a constraint, not a penalty: infeasible trials are ranked after
    feasible ones)."""
    import optuna

    if search.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    population = max(4, min(50, search.trials_per_target // 3))
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=population)


def space_size(space: Mapping[str, Any]) -> float:
    """How many points a space of distributions holds (``math.inf`` with a continuous one)."""
    from optuna.distributions import CategoricalDistribution

    size: float = 1
    for dist in space.values():
        size *= len(dist.choices) if isinstance(dist, CategoricalDistribution) else math.inf
    return size
