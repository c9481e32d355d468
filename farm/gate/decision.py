"""The confirmation's decision on paired rounds, and what a confirmation records.

Why re-measure, why the 10th percentile and why this rule: see :mod:`farm.gate.confirm`. Here:
the per-round statistic, the distribution-free interval of the median paired ratio, the
decision after each round (:func:`decide`), which stored comparisons are worth re-measuring
(:func:`wants_confirmation`), and the records (:class:`Round`, :class:`Confirmation`,
:class:`NotConfirmed`) the gate's outputs and the store's ``confirmations`` table show.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from farm.display import short_params
from farm.release.significance import min_rounds

if TYPE_CHECKING:
    from farm.release.significance import Comparison

#: The per-measurement percentile the decision compares (see the module docstring).
STATISTIC_Q = 10.0
STATISTIC = f"p{STATISTIC_Q:g}"
DECIDED_BY_INTERVAL = "interval"
DECIDED_BY_CAP = "median at the round cap"


# -- the statistics ----------------------------------------------------------------------------


def median_interval(values: Sequence[float], alpha: float) -> tuple[float, float]:
    """Distribution-free two-sided ``1 - alpha`` interval of the median of the population the
    independent ``values`` came from: the order statistics k and n - k + 1, with k the largest
    rank such that ``P[Binomial(n, 1/2) <= k - 1] <= alpha / 2`` (the sign test's interval).
    ``(-inf, inf)`` when there are too few values for one."""
    from scipy.stats import binom

    s = sorted(values)
    n = len(s)
    k = 0
    while k < n // 2 and binom.cdf(k, n, 0.5) <= alpha / 2:
        k += 1
    if k == 0:
        return -math.inf, math.inf
    return s[k - 1], s[n - k]


@dataclass(frozen=True)
class Verdict:
    """What the paired ratios say so far."""

    #: Median of the per-round ratios candidate / baseline.
    ratio: float
    #: Its distribution-free ``1 - alpha`` interval.
    low: float
    high: float
    regression: bool
    decided_by: str  # DECIDED_BY_INTERVAL | DECIDED_BY_CAP


def decide(
    ratios: Sequence[float], threshold: float, alpha: float, max_rounds: int
) -> Verdict | None:
    """The verdict after these rounds, or None while more rounds are needed (see the module
    docstring for the rule)."""
    n = len(ratios)
    if n < min_rounds(alpha):
        return None
    low, high = median_interval(ratios, alpha)
    ratio = float(np.median(ratios))
    limit = 1.0 + threshold
    if low > limit:
        return Verdict(ratio, low, high, True, DECIDED_BY_INTERVAL)
    if high < limit:
        return Verdict(ratio, low, high, False, DECIDED_BY_INTERVAL)
    if n >= max_rounds:
        return Verdict(ratio, low, high, ratio > limit, DECIDED_BY_CAP)
    return None


def wants_confirmation(stored: Comparison, drift: float) -> bool:
    """Whether the store's comparison leaves room for a regression once between-job drift of up
    to ``drift`` is allowed for (the store's own regressions always do)."""
    return stored.regression or stored.slowdown > stored.threshold - drift


# -- what a confirmation records ---------------------------------------------------------------


@dataclass(frozen=True)
class Round:
    """One baseline and one candidate measurement, each in its own fresh process."""

    order: str  # "AB": baseline measured first; "BA": candidate first
    baseline_ms: float  # the decision's statistic (STATISTIC), ms per batch
    candidate_ms: float
    baseline_p50_ms: float
    candidate_p50_ms: float
    #: How many of the two measurements the harness stored as unstable.
    unstable: int = 0

    @property
    def ratio(self) -> float:
        return self.candidate_ms / self.baseline_ms


@dataclass
class Confirmation:
    """One configuration re-measured interleaved, and the verdict on it."""

    target: str
    params: dict[str, Any]
    candidate_trial: int
    baseline_trial: int
    candidate_hash: str
    baseline_hash: str
    node_id: str
    node_host: str
    threads: int
    contract: dict[str, Any]
    #: Where the query batch came from (the workload's eval split, or seeded normal inputs).
    inputs: str
    threshold: float
    alpha: float
    #: The store-only comparison that asked for this confirmation.
    store: Comparison
    rounds: list[Round] = field(default_factory=list)
    verdict: Verdict | None = None
    wall_s: float = 0.0

    @property
    def regression(self) -> bool:
        return bool(self.verdict and self.verdict.regression)

    @property
    def label(self) -> str:
        return f"{self.target} {short_params(self.params)}"

    def describe(self) -> str:
        """One line for the gate's check: the confirmed verdict, then what the store said."""
        v = self.verdict
        assert v is not None, "describe() needs a finished confirmation"
        n = len(self.rounds)
        p50 = float(np.median([r.candidate_p50_ms / r.baseline_p50_ms for r in self.rounds]))
        store = "REGRESSION" if self.store.regression else "ok"
        drift = " (between-job drift)" if self.store.regression and not v.regression else ""
        cap = (
            f"; undecided after {n} rounds, so the median decides: the node was too noisy "
            "for a confident verdict"
            if v.decided_by == DECIDED_BY_CAP
            else ""
        )
        unstable = sum(r.unstable for r in self.rounds)
        shaky = f"; {unstable} of {2 * n} measurements unstable" if unstable else ""
        return (
            f"{'REGRESSION' if v.regression else 'ok'} (confirmed by re-measurement): "
            f"{v.ratio - 1:+.1%}, the median of {n} interleaved paired {STATISTIC} ratios on "
            f"node {self.node_host} ({1 - self.alpha:.0%} interval [{v.low - 1:+.1%}, "
            f"{v.high - 1:+.1%}]; p50 {p50 - 1:+.1%}; inputs: {self.inputs}{shaky}){cap}; "
            f"the store alone said {store} {self.store.slowdown:+.1%}{drift}; "
            f"a regression is a slowdown > {self.threshold:.0%}"
        )

    def to_row(self, candidate_job_id: str, baseline_job_id: str, source: str) -> dict[str, Any]:
        """The row of the store's ``confirmations`` table."""
        v = self.verdict
        return {
            "confirmation_id": uuid.uuid4().hex,
            "created_at": datetime.now(UTC).replace(tzinfo=None),
            "candidate_job_id": candidate_job_id,
            "target": self.target,
            "candidate_trial_number": self.candidate_trial,
            "baseline_job_id": baseline_job_id,
            "baseline_trial_number": self.baseline_trial,
            "baseline_source": source,
            "params": self.params,
            "candidate_artifact_hash": self.candidate_hash,
            "baseline_artifact_hash": self.baseline_hash,
            "node_id": self.node_id,
            "node_host": self.node_host,
            "threads": self.threads,
            "contract": self.contract,
            "inputs": self.inputs,
            "statistic": STATISTIC,
            "rounds": len(self.rounds),
            "orders": [r.order for r in self.rounds],
            "baseline_ms": [r.baseline_ms for r in self.rounds],
            "candidate_ms": [r.candidate_ms for r in self.rounds],
            "baseline_p50_ms": [r.baseline_p50_ms for r in self.rounds],
            "candidate_p50_ms": [r.candidate_p50_ms for r in self.rounds],
            "unstable_measurements": sum(r.unstable for r in self.rounds),
            "ratio": v.ratio if v else None,
            "ratio_low": v.low if v else None,
            "ratio_high": v.high if v else None,
            "decided_by": v.decided_by if v else None,
            "threshold": self.threshold,
            "alpha": self.alpha,
            "regression": self.regression,
            "store_ratio": self.store.ratio,
            "store_p_value": self.store.p_value,
            "store_regression": self.store.regression,
            "wall_s": self.wall_s,
        }


@dataclass(frozen=True)
class NotConfirmed:
    """Why a configuration could not be re-measured: the gate falls back to the store alone."""

    reason: str
