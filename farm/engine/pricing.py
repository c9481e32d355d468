"""What a trial is charged: the price of the hardware that ran it, and a sentence saying so.

A CUDA target names a runtime, not a GPU: the same ``cuda-torch`` trial costs 20× more per hour
on an H200 than on a T4. So a CUDA trial is priced by the GPU model its node reported
(``nvidia-smi``'s name, read by :func:`farm.measure.environment.fingerprint`), looked up in the
catalog's ``[gpu-prices]`` rows; a GPU without a row is refused before anything is measured
(:func:`check_gpu_prices`), unless the job's ``[prices]`` table prices the target. A CPU target
keeps its catalog price, and a trial on a CPU other than the priced machine's says so in its
``priced_as``. A job's ``[prices]`` always wins.

Pure functions over the catalog, except :func:`check_gpu_prices`, which asks the Ray cluster
what GPUs its nodes hold (through an injectable probe).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from farm.errors import UnpricedHardwareError
from targets import TargetSpec, get_target, gpu_price_table

if TYPE_CHECKING:
    from farm.spec.job import JobSpec


@dataclass(frozen=True)
class GpuPrice:
    """One ``[gpu-prices.<name>]`` row of the catalog."""

    name: str
    #: Words that must all be words of the GPU model (see :func:`words`).
    match: tuple[str, ...]
    price_per_hour_usd: float
    price_source: str
    price_date: str


@dataclass(frozen=True)
class Price:
    """What one trial is charged, and what that price is the price of."""

    per_hour_usd: float
    #: E.g. ``"H200 GPU, catalog [gpu-prices.H200] (2025)"`` or ``"job [prices] cuda-torch"``.
    priced_as: str
    #: The GPU model the trial ran on, as its node reported it (None for CPU targets).
    gpu_model: str | None = None


def gpu_prices() -> dict[str, GpuPrice]:
    """The catalog's GPU price rows, by name."""
    return {
        name: GpuPrice(
            name=name,
            match=tuple(str(w) for w in row["match"]),
            price_per_hour_usd=float(row["price_per_hour_usd"]),
            price_source=str(row["price_source"]),
            price_date=str(row["price_date"]),
        )
        for name, row in gpu_price_table().items()
    }


def words(name: str) -> set[str]:
    """The words of a hardware name, upper-cased: split at spaces, hyphens, underscores, commas,
    slashes, ``@`` and parentheses, with ``(R)`` and ``(TM)`` dropped. Whole words, so that an
    ``L4`` row does not price an ``NVIDIA L40S`` and ``H200`` does not price a ``GH200``."""
    cleaned = re.sub(r"\((?:R|TM)\)", " ", name, flags=re.IGNORECASE)
    return {w.upper() for w in re.split(r"[\s\-_,/()@]+", cleaned) if w}


def gpu_price(model: str, prices: Mapping[str, GpuPrice] | None = None) -> GpuPrice | None:
    """The row pricing GPU ``model``: every one of its ``match`` words is a word of the model.
    When several rows match, the one with the most words (the most specific) wins."""
    table = gpu_prices() if prices is None else prices
    have = words(model)
    matching = [p for p in table.values() if {w.upper() for w in p.match} <= have]
    return max(matching, key=lambda p: len(p.match), default=None)


def same_cpu(cpu_model: str, machine_cpu: str) -> bool:
    """Whether a node's CPU model is the priced machine's (all of its words appear)."""
    return words(machine_cpu) <= words(cpu_model)


def unpriced_message(target: str, gpu_model: str, where: str = "") -> str:
    priced = ", ".join(gpu_prices()) or "none"
    return (
        f"{target} {'would run' if where else 'ran'} on a {gpu_model}{where}, a GPU the catalog "
        f"has no price for (priced GPUs: {priced}): add `{target} = <USD per hour>` to the "
        "job's [prices] table, or a [gpu-prices] row to targets/catalog.toml"
    )


def price_trial(
    target: TargetSpec,
    job_prices: Mapping[str, float],
    cpu_model: str | None,
    gpu_model: str | None,
    prices: Mapping[str, GpuPrice] | None = None,
) -> Price:
    """The price of one trial of ``target`` that ran on a node with this CPU and GPU.

    Raises :class:`UnpricedHardwareError` for a CUDA trial whose GPU has no price."""
    if target.name in job_prices:
        return Price(float(job_prices[target.name]), f"job [prices] {target.name}", gpu_model)
    if target.device == "cuda":
        if not gpu_model:
            raise UnpricedHardwareError(
                f"{target.name}: the node reported no GPU model, so the trial cannot be priced "
                f"by the GPU that ran it; add `{target.name} = <USD per hour>` to the job's "
                "[prices] table"
            )
        row = gpu_price(gpu_model, prices)
        if row is None:
            raise UnpricedHardwareError(unpriced_message(target.name, gpu_model))
        return Price(
            row.price_per_hour_usd,
            f"{row.name} GPU, catalog [gpu-prices.{row.name}] ({row.price_date})",
            gpu_model,
        )
    priced_as = f"{target.machine or target.name}, catalog [{target.name}] ({target.price_date})"
    if target.machine_cpu and cpu_model and not same_cpu(cpu_model, target.machine_cpu):
        priced_as += f"; ran on a {cpu_model}, not the priced machine's {target.machine_cpu}"
    return Price(target.price_per_hour_usd, priced_as)


def unpriced_gpus(
    targets: Iterable[TargetSpec],
    reports: Iterable[Any],
    prices: Mapping[str, GpuPrice] | None = None,
) -> list[str]:
    """Why ``targets`` cannot be priced on the nodes of ``reports``
    (``farm.cluster.fleet.NodeReport``s:
    what each node advertises and the GPUs its probe found): one sentence per target and GPU
    model without a price. Nodes whose probe failed are not judged here; a trial that lands on
    one is priced (or failed) when its result comes back."""
    problems: dict[tuple[str, str], list[str]] = {}
    for target in targets:
        for report in reports:
            if target.name not in report.advertised:
                continue
            for gpu in (report.probe or {}).get("gpus", []):
                model = str(gpu.get("model", ""))
                if model and gpu_price(model, prices) is None:
                    problems.setdefault((target.name, model), []).append(report.ray_host)
    return [
        unpriced_message(t, model, f" (node {', '.join(sorted(set(hosts)))})")
        for (t, model), hosts in problems.items()
    ]


def check_gpu_prices(spec: JobSpec, probe: Callable[[], Iterable[Any]] | None = None) -> None:
    """Refuse a job whose CUDA targets would run on a GPU with no price, before anything is
    measured or stored. The cluster is probed (``farm.cluster.fleet.probe_cluster``, or ``probe``)
    only
    when a CUDA target of the job is not priced by the job's ``[prices]`` table."""
    targets = [get_target(t) for t in spec.targets if t not in spec.prices]
    targets = [t for t in targets if t.device == "cuda"]
    if not targets:
        return
    if probe is None:
        from farm.cluster.fleet import probe_cluster

        probe = probe_cluster
    problems = unpriced_gpus(targets, list(probe()))
    if problems:
        raise UnpricedHardwareError(f"{spec.source}: field `prices`: " + "; ".join(problems))
