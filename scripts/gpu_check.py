"""The GPU proof: the cuda-torch search space against bare PyTorch on this machine's GPU, one run.

For ResNet-18 (random weights, 224×224) it measures, with the farm's own code (the runtime in
``targets/cuda_torch_runtime.py`` compiled through ``farm.measure.bench.compiled``, the query of
``farm.measure.bench.timed_query``, the harness under the contract ``farm.measure.bench.
contract_for`` makes, and CUDA-event device time: ``farm.measure.bench.measure_compiled``):

- the configurations of the cuda-torch space the engine searches (every precision and every
  value of every ``[cuda-torch.knobs]`` knob of the catalog, batch sizes up to 256, ``io`` host
  and device), the cheap and telling ones first, as many as the time budget allows; the other
  CUDA targets when they run here, else why not;
- in the same run, bare PyTorch, no farm code: fp16, channels_last, a CUDA graph replayed with
  its input already on the GPU, at batch 1 and batch 64, measured before and after the farm's
  configurations (the better of the two runs is the reference; the drift between them is
  printed);

and prints one row per configuration: p50/p95 wall time, throughput, CUDA-event time, device
memory, compile time, its ratio to the bare reference, and its top-1 agreement with the CPU fp32
reference on 256 random images. Then the verdict (exit 0 when all hold, else 1):

1. the farm's best batch-1 p50 (``io = "device"``, like the bare loop) <= 1.10 × the bare p50;
2. the farm's best throughput >= 0.90 × the bare batch-64 throughput;
3. every measured configuration has its top-1 agreement recorded, and none failed (a batch that
   does not fit in memory, or a configuration left out by the time budget, is not a failure);
4. the GPU is priced as itself: a ``[gpu-prices]`` row of the catalog matches its name.

Installs nothing; needs torch (CUDA build) and numpy, no Ray, DuckDB or Optuna.
``--dry-run`` runs the same code on the CPU with a tiny CNN (no CUDA graphs, no events), for the
tests and to check the script before spending GPU time; the verdict is printed, not judged.

Its parts lie beside it: ``_gpu_models.py`` (the model, its artifacts, the CPU and bare
references), ``_gpu_plan.py`` (the configurations and why one cannot run here),
``_gpu_measure.py`` (one configuration measured the farm's way), ``_gpu_report.py`` (the table,
the verdict, the JSON).

    PYTHONPATH=. python3 scripts/gpu_check.py [--budget-s 280] [--json rows.json]
    PYTHONPATH=. python3 scripts/gpu_check.py --dry-run [--with-compile]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

# The check's parts, beside this script: its folder goes on the path when the script is run by
# path from elsewhere (``runpy.run_path``), as ``python scripts/gpu_check.py`` does by itself.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from _gpu_measure import RESERVE_S, Row, run_config  # noqa: E402
from _gpu_models import (  # noqa: E402
    MODELS,
    Bare,
    bare_loop,
    cpu_reference,
    export_onnx,
    export_program,
)
from _gpu_plan import Config, other_plan, skip_reason, torch_config, torch_plan  # noqa: E402
from _gpu_report import (  # noqa: E402
    describe_environment,
    describe_prices,
    dump,
    print_table,
    verdict,
)

from farm.artifact import Artifact  # noqa: E402
from farm.measure.environment import fingerprint  # noqa: E402
from targets import catalog  # noqa: E402

__all__ = ["MODELS", "Config", "main", "run", "torch_config", "torch_plan"]


#: The contract of every measurement here (a job's ``[measurement]`` table): short windows, so
#: that the space fits the budget; ``--min-duration-s`` / ``--max-duration-s`` change them.
CONTRACT = {"warmup_s": 0.3, "min_duration_s": 0.6, "max_duration_s": 2.0, "exclusive_node": True}
#: Images the top-1 agreement is computed on.
AGREEMENT_IMAGES = 256


# -- the run -------------------------------------------------------------------------------------
def run(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    start = time.perf_counter()
    deadline = start + args.budget_s
    gpu = not args.dry_run
    model_spec = MODELS[args.model or ("tiny" if args.dry_run else "resnet18")]
    reference_batch, large = (64, (64, 128, 256)) if gpu else (8, (8,))
    if gpu:
        from targets._cuda import has_cuda_gpu

        if not has_cuda_gpu():
            out("no CUDA GPU here (nvidia-smi or /dev/nvidia0 missing): run with --dry-run")
            return 1
    fp = fingerprint()
    describe_environment(fp, out)
    prices = describe_prices(fp, out)

    import torch

    model = model_spec.build()
    cuda_targets = [t for t in catalog().values() if t.device == "cuda"]
    reasons = {t.name: skip_reason(t, gpu) for t in cuda_targets}
    t0 = time.perf_counter()
    artifacts = {
        "torch-export": Artifact(
            "torch-export",
            {"model.pt2": export_program(model, model_spec.input_shape, max(large))},
        )
    }
    if gpu and reasons.get("cuda-onnxruntime") is None:
        onnx_bytes = export_onnx(model, model_spec.input_shape)
        artifacts["onnx"] = Artifact("onnx", {"model.onnx": onnx_bytes})
    rng = np.random.default_rng(0)
    images = rng.standard_normal((AGREEMENT_IMAGES, *model_spec.input_shape), dtype=np.float32)
    reference = cpu_reference(model, images)
    out(f"{model_spec.name}: exported and CPU fp32 reference in {time.perf_counter() - t0:.1f} s")

    table = {
        **CONTRACT,
        "min_duration_s": args.min_duration_s,
        "max_duration_s": args.max_duration_s,
    }
    bare = {b: Bare(b) for b in (1, reference_batch)}

    def measure_bare() -> None:
        for b in bare.values():
            p50, ips = bare_loop(model, b.batch, model_spec.input_shape, gpu)
            b.p50_ms.append(p50)
            b.throughput_ips.append(ips)

    measure_bare()
    plan = torch_plan(large, reference_batch)
    tail = [c for c in plan if c.compile_mode != "off"]
    plan = [c for c in plan if c.compile_mode == "off"]
    for t in cuda_targets:
        if t.name != "cuda-torch" and reasons[t.name] is None:
            plan += other_plan(t, reference_batch)
    if gpu or args.with_compile:
        plan += tail
    rows = [
        Row(Config(name, "/".join(catalog()[name].float_precisions), 0), "skipped", why)
        for name, why in reasons.items()
        if why
    ]
    for config in plan:
        rows.append(run_config(config, deadline, artifacts, images, reference, gpu, table, out))
        if gpu:
            torch.cuda.empty_cache()
    measure_bare()  # again, after: the drift between the two runs is the noise to read ratios by

    print_table(rows, bare, reference_batch, gpu, out)
    ok = verdict(rows, bare, reference_batch, prices, gpu, out)
    out(f"gpu_check finished in {time.perf_counter() - start:.1f} s (budget {args.budget_s:g} s)")
    if args.json:
        dump(args.json, rows, bare, fp)
    if not gpu:  # a dry run checks the code paths, not the numbers
        return 1 if any(r.status == "failed" for r in rows) else 0
    return 0 if ok else 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="the CPU path, with a tiny CNN")
    parser.add_argument("--model", choices=sorted(MODELS), help="default: resnet18 (tiny dry)")
    parser.add_argument("--budget-s", type=float, help="seconds for the run (default 280; 90 dry)")
    parser.add_argument("--with-compile", action="store_true", help="dry run: torch.compile too")
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--min-duration-s", type=float, default=CONTRACT["min_duration_s"])
    parser.add_argument("--max-duration-s", type=float, default=CONTRACT["max_duration_s"])
    args = parser.parse_args(argv)
    if args.budget_s is None:
        args.budget_s = 90.0 if args.dry_run else 280.0
    if args.budget_s <= RESERVE_S:
        parser.error(f"--budget-s: must be more than {RESERVE_S:g}, got {args.budget_s:g}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run(args, lambda line: print(line, flush=True))


if __name__ == "__main__":
    sys.exit(main())
