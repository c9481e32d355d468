"""Confirming a latency regression before ``farm gate`` fails it.

Why: the store's samples of two jobs were taken minutes or days apart. On a shared machine the
machine's state moves a small model's latency by tens of percent between jobs (issue 12: identical
reruns measured +45 %, +49 %, +54 %; a 10 % slower model measured 25 % *faster*), and no test on
each job's own samples can tell that drift from a change of the model. What beats it is to measure
base and head together, alternated. So before the gate judges a latency comparison it re-measures
both artifacts:

* **Which configurations**: those whose stored slowdown is above ``threshold - drift`` (default
  5 % - 50 %): between-job drift of up to ``drift`` could have invented the regression the store
  shows, or hidden one behind an apparent speed-up. At most ``limit`` of them per gate, largest
  stored slowdown first; the others keep the store-only verdict, labelled as such.
* **How**: on one node serving the target, rounds of two measurements, baseline and candidate, in
  alternating order (AB, BA, AB, …, so a slow drift weighs on both sides alike), each in a fresh
  process (a Ray task with ``max_calls=1``, the node's ``farm:node`` slot, ``num_cpus`` = the
  trial's threads), under the candidate trial's stored contract, with the trial's runtime options
  and the query batch a trial sends.
* **Statistic**: each measurement's 10th percentile (by the contract's percentile method). Every
  query sends the same batch, so the spread within one measurement is interference from the
  machine, and interference only adds time: the low percentile is the least disturbed estimate of
  the artifact's own latency, and a slower model moves it as much as its median. Measured here
  under load ~10 on 2 CPUs, the p10's paired ratios were half as spread as the p50's. The p50s are
  recorded and shown beside it.
* **Decision**: the paired ratios ``r_i = candidate_i / baseline_i``. From :func:`min_rounds`
  rounds on (the fewest for which a distribution-free ``1 - alpha`` interval of a median exists:
  8 at alpha = 0.01), after every round the order-statistics interval of the median ratio is
  computed: a regression is *confirmed* when the whole interval lies above ``1 + threshold``,
  *cleared* when it lies below. At ``max_rounds`` (default 60) without such a verdict the median
  ratio decides, and the output says the node was too noisy for a confident one. So a slowdown of
  twice the threshold or more, or none at all, is decided with confidence ``1 - alpha``; a
  slowdown close to the threshold costs the most rounds.

The gate's text, markdown, JUnit and JSON outputs show every confirmation, and each is stored in
the ``confirmations`` table (docs/store.md) beside the store's own numbers, which stay the record.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from farm.display import short_params
from farm.errors import CannotConfirm, TrialError
from farm.store.artifacts import ArtifactCache

if TYPE_CHECKING:
    from farm.artifact import Artifact
    from farm.cluster.lifecycle import Node
    from farm.gate.checks import Snapshot
    from farm.release.significance import Comparison
    from farm.store.db import Store

#: Default between-job drift the store's numbers may carry: configurations whose stored slowdown
#: is above ``threshold - DEFAULT_DRIFT`` are re-measured.
DEFAULT_DRIFT = 0.5
#: Default cap on the interleaved rounds of one confirmation.
DEFAULT_MAX_ROUNDS = 60
#: Default cap on how many configurations one gate run re-measures.
DEFAULT_LIMIT = 8
#: The per-measurement percentile the decision compares (see the module docstring).
STATISTIC_Q = 10.0
STATISTIC = f"p{STATISTIC_Q:g}"
DECIDED_BY_INTERVAL = "interval"
DECIDED_BY_CAP = "median at the round cap"


# -- the statistics ----------------------------------------------------------------------------


def min_rounds(alpha: float) -> int:
    """The fewest rounds for which a distribution-free two-sided ``1 - alpha`` interval of a
    median exists: the range of n values misses the median with probability ``2 * 0.5**n``."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"`0 < alpha < 1` must hold, but got alpha={alpha!r}")
    return max(2, math.ceil(math.log2(2.0 / alpha)))


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


# -- finding artifacts -------------------------------------------------------------------------


def find_artifact(trial: dict[str, Any], roots: Sequence[Path]) -> Artifact | str:
    """The trial's artifact from the first cache folder under ``roots`` that holds its build key
    with the content hash the trial stored; otherwise a sentence saying why not."""
    key, expected = trial.get("build_key"), trial.get("artifact_hash")
    if not key or not expected:
        return "artifact not recorded: the trial stores no build key or artifact hash"
    looked, wrong = [], []
    for root in dict.fromkeys(roots):
        artifact = ArtifactCache(root).load(key)
        looked.append(str(root))
        if artifact is None:
            continue
        if artifact.content_hash == expected:
            return artifact
        wrong.append(f"{root / key} holds hash {artifact.content_hash}")
    if wrong:
        return f"artifact {key} does not match the stored hash {expected}: " + "; ".join(wrong)
    return f"artifact {key} (hash {expected}) not found in " + (", ".join(looked) or "no folder")


# -- the confirmer -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfirmOptions:
    drift: float = DEFAULT_DRIFT
    max_rounds: int = DEFAULT_MAX_ROUNDS
    limit: int = DEFAULT_LIMIT
    #: Extra folder holding the baseline's artifacts (``farm export --with-artifacts DIR``).
    baseline_artifacts: Path | None = None
    #: Ray cluster to join (None: start a local instance, as ``farm run`` does).
    address: str | None = None


#: Receives one line of progress (the CLI prints them to stderr while rounds run).
Progress = Callable[[str], None]


class Confirmer:
    """Re-measures a candidate's and a baseline's artifacts, interleaved, on one node.

    Artifacts are looked up before anything else, so a store without them costs nothing; Ray is
    started (or joined) on the first configuration that has both artifacts, and shut down by
    :meth:`close` only if this object started it."""

    def __init__(
        self,
        candidate: Snapshot,
        baseline: Snapshot,
        options: ConfirmOptions = ConfirmOptions(),
        store: Store | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.candidate = candidate
        self.baseline = baseline
        self.options = options
        self.store = store
        self.progress = progress or (lambda _: None)
        self.confirmations: list[Confirmation] = []
        self._started_ray = False
        self._workload: Any = None
        self._workload_problem: str | None = None
        self._loaded = False

    # -- where artifacts are ----------------------------------------------------------------
    def candidate_roots(self) -> list[Path]:
        return [p for p in (self.candidate.artifacts_dir,) if p is not None]

    def baseline_roots(self) -> list[Path]:
        """``--baseline-artifacts``, then the folder the export recorded, then the candidate's
        own cache (a baseline run on the same machine)."""
        roots = (
            self.options.baseline_artifacts,
            self.baseline.artifacts_dir,
            self.candidate.artifacts_dir,
        )
        return [p for p in roots if p is not None]

    # -- one configuration -------------------------------------------------------------------
    def confirm(
        self,
        cand: dict[str, Any],
        base: dict[str, Any],
        stored: Comparison,
    ) -> Confirmation | NotConfirmed:
        """Re-measure one configuration (a candidate trial and its baseline counterpart)."""
        cand_art = find_artifact(cand, self.candidate_roots())
        if isinstance(cand_art, str):
            return NotConfirmed(f"candidate {cand_art}")
        base_art = find_artifact(base, self.baseline_roots())
        if isinstance(base_art, str):
            return NotConfirmed(f"baseline {base_art}")
        try:
            return self._confirm(cand, base, stored, cand_art, base_art)
        except (CannotConfirm, TrialError) as exc:
            return NotConfirmed(str(exc))

    def _confirm(
        self,
        cand: dict[str, Any],
        base: dict[str, Any],
        stored: Comparison,
        cand_art: Artifact,
        base_art: Artifact,
    ) -> Confirmation | NotConfirmed:
        import ray

        from farm.gate.checks import as_dict
        from farm.measure.bench import input_size

        target = cand["target"]
        options = self._runtime_options(target, as_dict(cand["params"]))
        if input_size(cand_art) != input_size(base_art):
            return NotConfirmed(
                f"the two artifacts take different input sizes ({input_size(base_art)} vs "
                f"{input_size(cand_art)})"
            )
        batch, infos, inputs = self._inputs(cand_art, options.batch_size)
        node = self._node(target, options.threads, cand)
        if isinstance(node, str):
            return NotConfirmed(node)
        contract = as_dict(cand.get("contract"))
        conf = Confirmation(
            target=target,
            params=as_dict(cand["params"]),
            candidate_trial=int(cand["trial_number"]),
            baseline_trial=int(base["trial_number"]),
            candidate_hash=cand_art.content_hash,
            baseline_hash=base_art.content_hash,
            node_id=node.node_id,
            node_host=node.host,
            threads=options.threads,
            contract=contract,
            inputs=inputs,
            threshold=stored.threshold,
            alpha=stored.alpha,
            store=stored,
        )
        refs = {"A": ray.put(base_art), "B": ray.put(cand_art)}
        method = contract.get("percentile_method", "inverted_cdf")
        self.progress(
            f"confirming {conf.label}: {stored.slowdown:+.1%} in the store; re-measuring both "
            f"artifacts interleaved on node {node.host} (at least "
            f"{min_rounds(stored.alpha)} rounds, at most {self.options.max_rounds})"
        )
        start = time.perf_counter()
        while conf.verdict is None:
            order = "AB" if len(conf.rounds) % 2 == 0 else "BA"
            measured: dict[str, Any] = {}
            for side in order:
                measured[side] = self._measure(
                    refs[side], target, options, contract, batch, infos, node
                )
            conf.rounds.append(_round(order, measured["A"], measured["B"], method))
            conf.verdict = decide(
                [r.ratio for r in conf.rounds],
                stored.threshold,
                stored.alpha,
                self.options.max_rounds,
            )
            r = conf.rounds[-1]
            self.progress(
                f"  round {len(conf.rounds)} ({order}): {STATISTIC} baseline "
                f"{r.baseline_ms:.4g} ms, candidate {r.candidate_ms:.4g} ms ({r.ratio - 1:+.1%})"
            )
        conf.wall_s = time.perf_counter() - start
        self.confirmations.append(conf)
        if self.store is not None:
            self.store.record_confirmation(
                conf.to_row(self.candidate.job_id, self.baseline.job_id, self.baseline.source)
            )
        return conf

    def _runtime_options(self, target: str, params: dict[str, Any]) -> Any:
        """The trial's runtime options, rebuilt from its params the way the job built them."""
        from farm.errors import FarmError
        from farm.search.space import plan
        from farm.spec.job import JobSpec

        try:
            spec = JobSpec.from_json(json.dumps(self.candidate.spec))
        except (TypeError, KeyError, ValueError) as exc:
            raise CannotConfirm(
                f"the candidate job's stored spec does not read back ({exc})"
            ) from None
        try:
            return plan(spec, target, params, "").options
        except (KeyError, ValueError, FarmError) as exc:
            raise CannotConfirm(
                f"params {params} do not make a candidate on {target} ({exc})"
            ) from None

    def _inputs(self, artifact: Artifact, batch_size: int) -> tuple[np.ndarray, Any, str]:
        """The query batch a trial of the candidate job sends (the workload's eval split, at the
        artifact's input size), or seeded standard-normal inputs when the workload does not load
        here; with the task that decodes the outputs, and a description for the output."""
        from farm.measure.bench import input_size, query_batch

        workload = self._load_workload()
        if workload is not None:
            split = workload.data().eval
            size = input_size(artifact)
            if size is not None and size != tuple(split.x.shape[2:]):
                from workloads import resize_split

                split = resize_split(split, size)
            batch, infos = query_batch(split, batch_size)
            return batch, infos, "the workload's eval split, as a trial sends it"
        shape = artifact.meta.get("input_shape")
        if not shape:
            raise CannotConfirm(
                f"the workload does not load here ({self._workload_problem}) and the artifact "
                "does not record its input shape"
            )
        rng = np.random.default_rng(0)
        batch = rng.standard_normal((batch_size, *shape), dtype=np.float32)
        said = (
            f"seeded standard-normal {list(batch.shape)}, since the workload does not load "
            f"here ({self._workload_problem})"
        )
        return batch, None, said

    def _load_workload(self) -> Any:
        if not self._loaded:
            self._loaded = True
            from workloads import load_workload

            section = self.candidate.spec.get("workload")
            base_dir = Path(self.candidate.spec.get("base_dir") or ".")
            try:
                self._workload = load_workload(section or {}, base_dir)
                self._workload.data()
            except Exception as exc:  # any failure: fall back to seeded inputs, said so
                self._workload = None
                self._workload_problem = f"{type(exc).__name__}: {exc}"
        return self._workload

    @property
    def task(self) -> Any:
        return getattr(self._load_workload(), "task", None)

    def _node(self, target: str, threads: int, cand: dict[str, Any]) -> Node | str:
        """A node serving ``target`` with ``threads`` CPUs: the one the candidate trial ran on
        when it is still there, else the first one."""
        import ray

        from farm.cluster.lifecycle import alive_nodes, start_or_connect
        from farm.errors import UsageError

        if not ray.is_initialized():
            try:
                start_or_connect(self.options.address)
            except UsageError:  # a bad --address: the user's to fix (exit 2)
                raise
            except Exception as exc:  # Ray does not start here: the store-only rule, said so
                raise CannotConfirm(f"Ray did not start ({type(exc).__name__}: {exc})") from None
            self._started_ray = True
        serving = [n for n in alive_nodes() if target in n.targets and n.cpus >= threads]
        if not serving:
            return (
                f"no node of the Ray cluster serves {target} with {threads} CPUs "
                "(docs/fleet.md; --address to join the cluster that does)"
            )
        same = [n for n in serving if n.ip and n.ip == cand.get("node_ip")]
        same = same or [n for n in serving if n.host == cand.get("node_host")]
        return (same or serving)[0]

    def _measure(
        self,
        ref: Any,
        target: str,
        options: Any,
        contract: dict[str, Any],
        batch: np.ndarray,
        infos: Any,
        node: Node,
    ) -> Any:
        """One measurement in a fresh worker process on ``node`` (alone there: its slot)."""
        from farm.measure.remote import measure_on_node

        return measure_on_node(node, ref, target, options, contract, batch, self.task, infos)

    def close(self) -> None:
        """Shut Ray down if this confirmer started it."""
        if self._started_ray:
            import ray

            ray.shutdown()
            self._started_ray = False


def _round(order: str, base: Any, cand: Any, method: str) -> Round:
    """A round from the two Evaluations (``A`` = baseline, ``B`` = candidate)."""
    from farm.measure import percentile

    return Round(
        order=order,
        baseline_ms=float(percentile(base.samples_ms, STATISTIC_Q, method)),
        candidate_ms=float(percentile(cand.samples_ms, STATISTIC_Q, method)),
        baseline_p50_ms=float(base.measurement["p50_ms"]),
        candidate_p50_ms=float(cand.measurement["p50_ms"]),
        unstable=int(not base.measurement.get("stable", True))
        + int(not cand.measurement.get("stable", True)),
    )
