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
  *cleared* when it lies below. At ``confirm_rounds`` (default 60) without such a verdict the median
  ratio decides, and the output says the node was too noisy for a confident one. So a slowdown of
  twice the threshold or more, or none at all, is decided with confidence ``1 - alpha``; a
  slowdown close to the threshold costs the most rounds.

The gate's text, markdown, JUnit and JSON outputs show every confirmation, and each is stored in
the ``confirmations`` table (docs/store.md) beside the store's own numbers, which stay the record.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from farm.errors import CannotConfirm, TrialError
from farm.gate.decision import (
    STATISTIC,
    STATISTIC_Q,
    Confirmation,
    NotConfirmed,
    Round,
    decide,
)
from farm.gate.options import ConfirmOptions
from farm.release.significance import min_rounds
from farm.store.artifacts import ArtifactCache
from farm.store.records import TrialRecord

if TYPE_CHECKING:
    from farm.artifact import Artifact
    from farm.cluster.lifecycle import Node
    from farm.gate.snapshot import Snapshot
    from farm.release.significance import Comparison
    from farm.store.db import Store

# -- finding artifacts -------------------------------------------------------------------------


def find_artifact(trial: TrialRecord, roots: Sequence[Path]) -> Artifact:
    """The trial's artifact from the first cache folder under ``roots`` that holds its build key
    with the content hash the trial stored; :class:`CannotConfirm` says why there is none."""
    key, expected = trial.build_key, trial.artifact_hash
    if not key or not expected:
        raise CannotConfirm("artifact not recorded: the trial stores no build key or artifact hash")
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
        raise CannotConfirm(
            f"artifact {key} does not match the stored hash {expected}: " + "; ".join(wrong)
        )
    raise CannotConfirm(
        f"artifact {key} (hash {expected}) not found in " + (", ".join(looked) or "no folder")
    )


# -- the confirmer -----------------------------------------------------------------------------


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
        options: ConfirmOptions | None = None,
        store: Store | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.candidate = candidate
        self.baseline = baseline
        self.options = options or ConfirmOptions()
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
        self, cand: TrialRecord, base: TrialRecord, stored: Comparison
    ) -> Confirmation | NotConfirmed:
        """Re-measure one configuration (a candidate trial and its baseline counterpart); when
        that cannot be done here, why not (the gate then falls back to the store alone)."""
        try:
            cand_art = _artifact("candidate", cand, self.candidate_roots())
            base_art = _artifact("baseline", base, self.baseline_roots())
            return self._confirm(cand, base, stored, cand_art, base_art)
        except (CannotConfirm, TrialError) as exc:
            return NotConfirmed(str(exc))

    def _confirm(
        self,
        cand: TrialRecord,
        base: TrialRecord,
        stored: Comparison,
        cand_art: Artifact,
        base_art: Artifact,
    ) -> Confirmation:
        """Rounds of interleaved measurements until :func:`decide` gives a verdict; the
        confirmation is recorded in the store (when there is one) and returned."""
        import ray

        from farm.measure.bench import input_size

        target = cand.target
        options = self._runtime_options(target, dict(cand.params))
        if input_size(cand_art) != input_size(base_art):
            raise CannotConfirm(
                f"the two artifacts take different input sizes ({input_size(base_art)} vs "
                f"{input_size(cand_art)})"
            )
        batch, infos, inputs = self._inputs(cand_art, options.batch_size)
        node = self._node(target, options.threads, cand)
        contract = dict(cand.contract or {})
        conf = Confirmation(
            target=target,
            params=dict(cand.params),
            candidate_trial=cand.trial_number,
            baseline_trial=base.trial_number,
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
            f"{min_rounds(stored.alpha)} rounds, at most {self.options.confirm_rounds})"
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
                self.options.confirm_rounds,
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
        from targets.base import RuntimeOptions

        try:
            return RuntimeOptions.from_params(params)
        except (KeyError, TypeError, ValueError) as exc:
            raise CannotConfirm(
                f"params {params} do not make runtime options on {target} ({exc})"
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
            source = self.candidate.spec.get("source") or "<memory>"
            try:
                self._workload = load_workload(section or {}, base_dir, source=source)
                self._workload.data()
            except Exception as exc:  # any failure: fall back to seeded inputs, said so
                self._workload = None
                self._workload_problem = f"{type(exc).__name__}: {exc}"
        return self._workload

    @property
    def task(self) -> Any:
        return getattr(self._load_workload(), "task", None)

    def _node(self, target: str, threads: int, cand: TrialRecord) -> Node:
        """A node serving ``target`` with ``threads`` CPUs: the one the candidate trial ran on
        when it is still there, else the first one; :class:`CannotConfirm` when none does."""
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
            raise CannotConfirm(
                f"no node of the Ray cluster serves {target} with {threads} CPUs "
                "(docs/fleet.md; --address to join the cluster that does)"
            )
        same = [n for n in serving if n.ip and n.ip == cand.node_ip]
        same = same or [n for n in serving if n.host == cand.node_host]
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


def _artifact(side: str, trial: TrialRecord, roots: Sequence[Path]) -> Artifact:
    """:func:`find_artifact`, its refusal saying which side's artifact is missing."""
    try:
        return find_artifact(trial, roots)
    except CannotConfirm as exc:
        raise CannotConfirm(f"{side} {exc}") from None


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
