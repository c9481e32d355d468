"""Does `farm gate` stay quiet on noise and catch a real slowdown, as a user runs it?

A small ONNX classifier (one fp32, batch-1, 1-thread configuration on cpu-onnxruntime) is run as
real farm jobs (``JobRunner``, what ``farm run`` runs) into one store, then gated with the real
``farm gate`` command (``farm.cli.main``), confirmation on. Each round runs a fresh baseline job,
then one candidate job and one gate per condition:

* ``quiet``: an identical rerun. Target: 0 false alarms.
* ``step``: an identical rerun with a machine step injected: ``--step-load`` busy processes (one
  busy core by default, pinned to the core the measurement uses) run during the candidate's job
  only, so its stored samples are slower. Target: 0 false alarms.
* ``slow``: the same job with the model file slowed by identity 1×1 convolutions (same outputs,
  more work; ``--identity-convs``, ~+10 % by default; the script measures the slowdown it made,
  interleaved in one process, and prints it). Target: every one detected (>= 19 of 20).

For each gate it prints what the store-only rule alone would have said, the confirmed verdict,
the rounds it took and the wall time the confirmation cost, and at the end the totals and the
load average. The whole thing is long (about 1-3 minutes per gate on 2 busy CPUs); run it in
pieces:

    .venv/bin/python benchmarks/gate_noise.py --rounds 20 --condition quiet
    .venv/bin/python benchmarks/gate_noise.py --rounds 20 --condition step,slow
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CONDITIONS = ("quiet", "step", "slow")
#: The job's measurement contract (what the confirmation re-uses).
MEASUREMENT = {"min_duration_s": 0.5, "min_samples": 200, "max_duration_s": 2.0}
INPUT = [1, 3, 64, 64]


def build_model(identity_convs: int = 0) -> bytes:
    """A small CNN classifier (3×64×64 → 10) as ONNX bytes; ``identity_convs`` identity 1×1
    convolutions on its 16-channel feature map add work without changing any output."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def weight(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.normal(0, 0.1, shape).astype(np.float32), name)

    inits = [weight("w1", 16, 3, 3, 3), weight("w2", 32, 16, 3, 3), weight("fc", 32, 10)]
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
    ]
    features = "r1"
    for i in range(identity_convs):
        eye = np.eye(16, dtype=np.float32).reshape(16, 16, 1, 1)
        inits.append(numpy_helper.from_array(eye, f"identity{i}"))
        nodes.append(helper.make_node("Conv", [features, f"identity{i}"], [f"same{i}"]))
        features = f"same{i}"
    nodes += [
        helper.make_node("Conv", [features, "w2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("MatMul", ["f", "fc"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "gate_noise_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, INPUT)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model.SerializeToString()


def measured_slowdown(plain: bytes, slow: bytes, blocks: int = 40) -> float:
    """The slow model's latency over the plain one's: both sessions in this process (1 thread),
    measured alternately in blocks of 100 queries; the median ratio of the blocks' p10s."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sessions = [
        ort.InferenceSession(m, opts, providers=["CPUExecutionProvider"]) for m in (plain, slow)
    ]
    x = np.random.default_rng(1).standard_normal(INPUT, dtype=np.float32)
    p10: list[list[float]] = [[], []]
    for _ in range(blocks):
        for side, session in enumerate(sessions):
            times = []
            for _ in range(100):
                start = time.perf_counter()
                session.run(None, {"x": x})
                times.append(time.perf_counter() - start)
            p10[side].append(float(np.percentile(times, 10)))
    return float(np.median(np.array(p10[1]) / np.array(p10[0])))


def job_text(name: str) -> str:
    table = "\n".join(f"{k} = {v}" for k, v in MEASUREMENT.items())
    return f"""name = "{name}"
targets = ["cpu-onnxruntime"]
[workload]
onnx = "model.onnx"
[search]
trials_per_target = 1
precision = ["fp32"]
batch_size = [1]
threads = [1]
[measurement]
{table}
"""


@contextlib.contextmanager
def busy_cores(n: int) -> Iterator[None]:
    """``n`` processes spinning while the block runs (the machine step), each pinned to one of
    the CPUs a measurement pins itself to first (:func:`farm.measure.affinity.pin_to_cores`), so
    the step lands on the measurement's own core rather than wherever the scheduler puts it."""
    from farm.measure.affinity import physical_core_cpus

    cpus = physical_core_cpus(os.sched_getaffinity(0))
    spin = "import os, sys; os.sched_setaffinity(0, {int(sys.argv[1])})\nwhile True: pass"
    procs = [
        subprocess.Popen([sys.executable, "-c", spin, str(cpus[i % len(cpus)])]) for i in range(n)
    ]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


@dataclass
class Outcome:
    """One gate: what the store alone said, and what the gate decided after confirmation."""

    store_ratio: float
    store_regression: bool
    failed: bool
    basis: str
    confirmed_ratio: float | None
    rounds: int
    confirm_s: float
    gate_s: float
    decided_by: str | None


def run_job(job: Path, db: Path) -> str:
    """One `farm run` job (the JobRunner the CLI runs), returns its id."""
    from farm.engine.runner import JobRunner
    from farm.spec.job import load_job
    from farm.store.db import Store

    runner = JobRunner(load_job(job), Store(db))
    status = runner.run()
    if status != "completed":
        raise SystemExit(f"job {runner.job_id} ended {status}")
    return runner.job_id


def gate(db: Path, candidate: str, baseline: str, args: argparse.Namespace) -> Outcome:
    """`farm gate --json` on the pair (the CLI's own entry point), and the store-only verdict."""
    from farm.cli import main
    from farm.gate.snapshot import Snapshot
    from farm.release.significance import compare
    from farm.store.db import Store

    store = Store(db)
    cand, base = Snapshot.from_store(store, candidate), Snapshot.from_store(store, baseline)
    # The store-only rule (what `--no-confirm` applies) on the one configuration:
    (a,), (b,) = base.samples.values(), cand.samples.values()
    stored = compare(a, b, args.threshold, args.alpha)
    argv = [
        "gate", "--db", str(db), "--candidate", candidate, "--baseline", baseline, "--json",
        "--threshold", str(args.threshold), "--alpha", str(args.alpha),
        "--confirm-rounds", str(args.confirm_rounds),
    ]  # fmt: skip
    out = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(argv)
    gate_s = time.perf_counter() - start
    if code not in (0, 1):
        raise SystemExit(f"farm gate exited {code}: {out.getvalue()}")
    text = out.getvalue()
    try:  # the JSON document is the last thing printed (a library may print a line before it)
        doc = json.loads(text[text.index("\n{") + 1 :] if not text.startswith("{") else text)
    except ValueError as exc:
        raise SystemExit(f"farm gate --json printed no JSON ({exc}): {text[:2000]!r}") from None
    latency = next(c for c in doc["checks"] if c["kind"] == "latency")
    conf = latency.get("confirmation")
    return Outcome(
        store_ratio=stored.ratio,
        store_regression=stored.regression,
        failed=not latency["passed"],
        basis=latency["basis"],
        confirmed_ratio=conf["verdict"]["ratio"] if conf else None,
        rounds=len(conf["rounds"]) if conf else 0,
        confirm_s=conf["wall_s"] if conf else 0.0,
        gate_s=gate_s,
        decided_by=conf["verdict"]["decided_by"] if conf else None,
    )


def describe(o: Outcome) -> str:
    store = f"store {o.store_ratio - 1:+6.1%} {'REGRESSION' if o.store_regression else 'ok':10s}"
    if o.confirmed_ratio is None:
        return f"{store} → {'FAIL' if o.failed else 'pass'} ({o.basis}); gate {o.gate_s:.0f} s"
    cap = " at the round cap" if o.decided_by != "interval" else ""
    return (
        f"{store} → confirmed {o.confirmed_ratio - 1:+6.1%} in {o.rounds:2d} rounds{cap} → "
        f"{'FAIL' if o.failed else 'pass'}; confirmation {o.confirm_s:.0f} s, gate {o.gate_s:.0f} s"
    )


def summary(condition: str, outs: list[Outcome], rounds: int) -> list[str]:
    if not outs:
        return []
    failed = sum(o.failed for o in outs)
    store = sum(o.store_regression for o in outs)
    confirmed = [o for o in outs if o.confirmed_ratio is not None]
    wall = [o.confirm_s for o in confirmed]
    if condition == "slow":
        head = f"slow (+10 % model): {failed}/{len(outs)} detected (target >= {rounds - 1})"
        store_line = f"store-only rule alone: {store}/{len(outs)} detected"
    else:
        head = f"{condition} (identical rerun): {failed}/{len(outs)} false alarms (target 0)"
        store_line = f"store-only rule alone: {store}/{len(outs)} false alarms"
    lines = [head, f"  {store_line}"]
    if confirmed:
        ratios = [o.confirmed_ratio for o in confirmed if o.confirmed_ratio is not None]
        n = [o.rounds for o in confirmed]
        capped = sum(o.decided_by != "interval" for o in confirmed)
        lines += [
            f"  confirmed ratio: median {np.median(ratios) - 1:+.1%}, range "
            f"[{min(ratios) - 1:+.1%}, {max(ratios) - 1:+.1%}]; rounds median {np.median(n):.0f}"
            f", max {max(n)}; {capped} decided at the round cap",
            f"  confirmations cost: median {np.median(wall):.0f} s, max {max(wall):.0f} s, total "
            f"{sum(wall):.0f} s for {len(confirmed)} gates",
        ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument(
        "--condition", default="quiet,step,slow", help=f"comma-separated: {', '.join(CONDITIONS)}"
    )
    parser.add_argument("--threshold", type=float, default=0.05)
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument("--confirm-rounds", type=int, default=60)
    parser.add_argument("--identity-convs", type=int, default=2)
    parser.add_argument("--step-load", type=int, default=1, help="busy processes in `step`")
    parser.add_argument("--workdir", help="keep the store and models here (default: a temp dir)")
    args = parser.parse_args()
    conditions = [c.strip() for c in args.condition.split(",") if c.strip()]
    bad = [c for c in conditions if c not in CONDITIONS]
    if bad or not conditions:
        parser.error(f"--condition: expected some of {CONDITIONS}, got {args.condition!r}")

    import ray

    plain, slow = build_model(), build_model(args.identity_convs)
    made = measured_slowdown(plain, slow)
    with contextlib.ExitStack() as stack:
        work = (
            Path(args.workdir)
            if args.workdir
            else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gate-noise-")))
        )
        work.mkdir(parents=True, exist_ok=True)
        model, job, db = work / "model.onnx", work / "job.toml", work / "farm.duckdb"
        job.write_text(job_text("gate-noise"))
        load0 = os.getloadavg()
        print(
            f"{args.rounds} rounds of {', '.join(conditions)}; slowed model "
            f"({args.identity_convs} identity convs): {made - 1:+.1%} measured interleaved in "
            f"one process; contract {MEASUREMENT}; threshold {args.threshold:g}, alpha "
            f"{args.alpha:g}; load average {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}",
            flush=True,
        )
        tallies: dict[str, list[Outcome]] = {c: [] for c in conditions}
        t0 = time.perf_counter()
        try:
            for i in range(1, args.rounds + 1):
                model.write_bytes(plain)
                baseline = run_job(job, db)
                for condition in conditions:
                    if condition == "slow":
                        model.write_bytes(slow)
                    with busy_cores(args.step_load if condition == "step" else 0):
                        candidate = run_job(job, db)
                    model.write_bytes(plain)
                    o = gate(db, candidate, baseline, args)
                    tallies[condition].append(o)
                    print(f"round {i:2d} {condition:5s}: {describe(o)}", flush=True)
        finally:
            ray.shutdown()
        elapsed = time.perf_counter() - t0
    for condition in conditions:
        for line in summary(condition, tallies[condition], args.rounds):
            print(line)
    load = os.getloadavg()
    print(
        f"took {elapsed / 60:.1f} min; load average at the start {load0[0]:.2f}, now "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
