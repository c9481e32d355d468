"""Which knobs mattered: Optuna parameter importances computed from stored trials.

The job's studies are not kept, so one is rebuilt in memory per target from the stored params and
objective values (``optuna.create_study`` + ``add_trial(create_trial(...))``, every knob as a
categorical distribution over the values tried) and handed to
``optuna.importance.get_param_importances`` with the fANOVA evaluator (seeded). Importances are
per objective: quality (the task's metric), p95 latency, cost per 1k. Only knobs present in every
completed trial and taking at least two values are ranked (Optuna's own rule for conditional
knobs).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from farm._io import json_mapping

OBJECTIVES = (
    ("quality", "quality"),
    ("latency_p95_ms", "p95 latency"),
    ("cost_per_1k_usd", "cost per 1k"),
)
#: Fewer completed trials than this: importances would be noise; say so instead.
MIN_TRIALS = 4


def param_importances(rows: pd.DataFrame) -> dict[str, dict[str, float]] | str:
    """{objective label: {param: importance}} for one target's completed trials, or the reason
    why none can be computed."""
    import optuna
    from optuna.distributions import BaseDistribution, CategoricalDistribution
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances
    from optuna.trial import create_trial

    if len(rows) < MIN_TRIALS:
        return f"{len(rows)} completed trials; importances need at least {MIN_TRIALS}"
    params = [json_mapping(p) for p in rows["params"]]
    shared = set.intersection(*(set(p) for p in params))
    choices = {k: sorted({_key(p[k]) for p in params}, key=str) for k in shared}
    varied = sorted(k for k, v in choices.items() if len(v) > 1)
    if not varied:
        return "no knob took more than one value in the completed trials"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out: dict[str, dict[str, float]] = {}
    for column, label in OBJECTIVES:
        values = rows[column].astype(float).tolist()
        if len(set(values)) < 2:
            out[label] = {k: 0.0 for k in varied}
            continue
        study = optuna.create_study()
        dists: dict[str, BaseDistribution] = {
            k: CategoricalDistribution(choices[k]) for k in varied
        }
        for p, v in zip(params, values, strict=True):
            study.add_trial(
                create_trial(params={k: _key(p[k]) for k in varied}, distributions=dists, value=v)
            )
        imp = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0))
        out[label] = {k: float(v) for k, v in imp.items()}
    return out


def _key(value: Any) -> Any:
    """Categorical choices must be None, bool, int, float or str."""
    return value if value is None or isinstance(value, bool | int | float | str) else str(value)
