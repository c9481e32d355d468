"""Which models does the farm take? The torchvision classification zoo, swept.

Every model of ``torchvision.models.list_models(module=torchvision.models)`` with random
(seeded) weights, at the smallest input it accepts, goes through what a user would do and then
through the farm's own code:

1. **Skip** models above :data:`MAX_PARAMS` parameters: on the shared 2-core machine the sweep
   runs on, one such model takes half an hour to an hour of exports, int8 builds and fresh
   evaluation processes (a ConvNeXt-T, 29 M, took 12 minutes). Each family is swept through its
   smaller members; the families with none (AlexNet, VGG, ViT, Wide ResNet) through their
   cheapest member (:data:`REPRESENTATIVES`).
2. **Input size**: the first of :data:`SIZES` (multiples of 32, the stride of most of these
   networks, then 256 for Swin V2) at which the eager model in eval mode turns a batch of two
   images into ``(2, 1000)`` logits.
3. **Export** to ONNX as users do, with each exporter's default opset and a dynamic batch
   dimension: ``torch.onnx.export(dynamo=False)`` (TorchScript, ``dynamic_axes``) and
   ``torch.onnx.export(dynamo=True)`` (``dynamic_shapes``). The two make different graphs, so
   both are swept. The exported model's outputs are compared with eager torch.
4. **The farm's path** for each export, as a job on ``[workload] onnx = ...`` with synthetic
   inputs would run it: ``load_workload`` (the job's validation), the engine's
   ``reference_predictions``, the trial's candidate from ``farm.search.space.plan`` (baseline
   knobs), and ``farm.engine.run_candidate`` (a job's build task, the quantizers, and its
   evaluate task: compile, quality on the eval split, measurement, in a fresh process): fp32 and
   int8 on cpu-onnxruntime, fp32, bf16 and int8 on cpu-openvino. cpu-torch fp32 runs the farm's
   ``export_torch`` on the model itself.

A cell is *ok* when the trial completed and, at fp32, its outputs are within
:data:`FP32_TOLERANCE` of the fp32 reference (a runtime that silently computes something else is
not a pass); bf16 and int8 are judged on completing only (random weights make their top-1
agreement meaningless). Results land cell by cell in ``results/model_zoo/results.json``: the
sweep resumes where it stopped, runs in pieces, and re-runs only what is asked::

    .venv/bin/python benchmarks/model_zoo.py --models resnet18,regnet_x_400mf
    .venv/bin/python benchmarks/model_zoo.py --limit 10          # the first 10 not yet swept
    .venv/bin/python benchmarks/model_zoo.py --redo failed       # after a fix
    .venv/bin/python benchmarks/model_zoo.py --report-only --markdown docs/support_matrix.md

Its parts lie beside it: ``_zoo_cells.py`` (the columns and the limits named above),
``_zoo_tasks.py`` (what runs in Ray tasks), ``_zoo_sweep.py`` (the results file and the loop
over a model's cells), ``_zoo_report.py`` (the support matrix).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The sweep's parts, beside this script; the names the tests and users import from here.
from _zoo_cells import COLUMNS, TASK_TIMEOUT_S, cell_key  # noqa: E402
from _zoo_report import (  # noqa: E402
    MARK_BEGIN,
    environment,
    markdown,
    pass_rates,
    time_note,
    write_markdown,
)
from _zoo_sweep import Sweep  # noqa: E402
from _zoo_tasks import documented_params, smallest_size  # noqa: E402

__all__ = [
    "COLUMNS",
    "MARK_BEGIN",
    "Sweep",
    "cell_key",
    "main",
    "markdown",
    "pass_rates",
    "run_all",
    "select",
    "smallest_size",
    "time_note",
    "write_markdown",
]


def select(all_names: Iterable[str], sweep: Sweep, args: argparse.Namespace) -> list[str]:
    """The models this run sweeps: smallest first (the most models early in a long sweep)."""
    names = sorted(all_names, key=lambda n: (documented_params(n), n))
    if args.models:
        wanted = [n.strip() for n in args.models.split(",") if n.strip()]
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            raise SystemExit(f"--models: not torchvision classification models: {unknown}")
        names = wanted
    names = [n for n in names if sweep.todo(n, args.redo)]
    return names[: args.limit] if args.limit else names


def run_all(sweep: Sweep, names: list[str], redo: str, jobs: int) -> None:
    """Sweep ``names``, ``jobs`` models at a time (each model's cells run one after another).
    The run's wall time is saved after every model, so a run stopped half-way still counts."""
    from concurrent.futures import ThreadPoolExecutor

    start = time.perf_counter()
    with sweep.lock:
        run = {"date": dt.date.today().isoformat(), "models": len(names), "jobs": jobs}
        run["wall_s"] = 0.0
        sweep.data.setdefault("runs", []).append(run)

    def one(item: tuple[int, str]) -> None:
        i, name = item
        print(f"[{i}/{len(names)}] {name}", flush=True)
        sweep.run_model(name, sweep.todo(name, redo), lambda s: print(s, flush=True))
        with sweep.lock:
            run["wall_s"] = round(time.perf_counter() - start, 1)
            sweep.save()

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(one, enumerate(names, 1)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated model names (default: the whole zoo)")
    parser.add_argument("--limit", type=int, default=0, help="sweep at most N models this run")
    parser.add_argument(
        "--redo", choices=("none", "failed", "all"), default="none", help="re-run these cells"
    )
    parser.add_argument("--results", type=Path, default=ROOT / "results" / "model_zoo")
    parser.add_argument("--timeout", type=float, default=TASK_TIMEOUT_S, help="seconds per task")
    parser.add_argument("--jobs", type=int, default=1, help="models swept at the same time")
    parser.add_argument("--markdown", type=Path, help="write the support matrix here")
    parser.add_argument("--report-only", action="store_true", help="print the stored results")
    args = parser.parse_args(argv)

    sweep = Sweep(args.results, args.timeout)
    if not args.report_only:
        import torchvision

        names = select(torchvision.models.list_models(module=torchvision.models), sweep, args)
        print(f"model zoo: {len(names)} models to sweep", flush=True)
        if names:
            # Ray workers import the task module (_zoo_tasks.py) and the farm by path: give them
            # ours.
            paths = [str(ROOT), str(ROOT / "benchmarks"), os.environ.get("PYTHONPATH", "")]
            os.environ["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
            os.environ.setdefault("FARM_NODE_CACHE", str(args.results / "node-cache"))
            from farm.cluster.lifecycle import start_or_connect

            start_or_connect(None)
            sweep.data.update(environment())
            sweep.data["date"] = dt.date.today().isoformat()
            run_all(sweep, names, args.redo, max(1, args.jobs))
    body = markdown(sweep.data, time_note(sweep.data))
    print(body)
    if args.markdown:
        write_markdown(args.markdown, body)
        print(f"wrote {args.markdown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
