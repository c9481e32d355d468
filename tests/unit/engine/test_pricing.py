"""Pricing by the hardware that ran: GPU rows matched by name, CPU machines stated, unpriced GPUs
refused before anything is measured, and the store and the report saying what was priced."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from farm.cluster.fleet import NodeReport
from farm.engine.pricing import (
    UnpricedHardwareError,
    check_gpu_prices,
    gpu_price,
    gpu_prices,
    price_trial,
    same_cpu,
    unpriced_gpus,
)
from farm.errors import UsageError
from farm.measure.environment import trial_gpu_model
from farm.spec.job import JobSpec, parse_job
from targets import catalog, get_target

#: GPU names as ``nvidia-smi --query-gpu=name`` prints them, and the row that must price them.
NVIDIA_SMI_NAMES = {
    "Tesla T4": "T4",
    "NVIDIA L4": "L4",
    "NVIDIA A10G": "A10G",
    "NVIDIA A100-SXM4-40GB": "A100-40GB",
    "NVIDIA A100-PCIE-40GB": "A100-40GB",
    "NVIDIA A100-SXM4-80GB": "A100-80GB",
    "NVIDIA A100 80GB PCIe": "A100-80GB",
    "NVIDIA H100 80GB HBM3": "H100",
    "NVIDIA H100 PCIe": "H100",
    "NVIDIA H200": "H200",
    "NVIDIA H200 NVL": "H200",
    # look-alikes that must not borrow another GPU's price
    "NVIDIA L40S": None,
    "NVIDIA A10": None,
    "NVIDIA GH200 480GB": None,
    "NVIDIA B200": None,
}


def gpu_spec(prices: dict[str, float] | None = None, **measurement: Any) -> JobSpec:
    raw: dict[str, Any] = {
        "name": "gpu",
        "targets": ["cuda-torch"],
        "workload": {"name": "digits"},
        "search": {"precision": ["fp32"], "batch_size": [1]},
    }
    if prices:
        raw["prices"] = prices
    if measurement:
        raw["measurement"] = measurement
    return parse_job(raw, source="gpu.toml")


def report(host: str, advertised: list[str], gpus: list[str]) -> NodeReport:
    probe = {"gpus": [{"model": g, "driver": "570.00", "memory": "1 MiB"} for g in gpus]}
    return NodeReport(f"id-{host}", host, 16, advertised, probe)


def test_the_catalog_prices_the_gpus_of_the_issue_with_source_and_date() -> None:
    prices = gpu_prices()
    assert set(prices) == {"T4", "L4", "A10G", "A100-40GB", "A100-80GB", "H100", "H200"}
    for p in prices.values():
        assert p.price_per_hour_usd > 0 and p.match
        assert p.price_source.strip() and p.price_date.strip()
    assert "gpu-prices" not in catalog()  # the price table is not a target


@pytest.mark.parametrize(("name", "row"), NVIDIA_SMI_NAMES.items())
def test_a_gpu_is_priced_by_the_row_its_name_matches(name: str, row: str | None) -> None:
    found = gpu_price(name)
    assert (found.name if found else None) == row


def test_a_trial_measured_on_an_h200_is_priced_as_an_h200() -> None:
    price = price_trial(get_target("cuda-torch"), {}, "AMD EPYC 9554", "NVIDIA H200")
    assert price.per_hour_usd == gpu_prices()["H200"].price_per_hour_usd
    assert price.gpu_model == "NVIDIA H200"
    assert price.priced_as.startswith("H200 GPU, catalog [gpu-prices.H200]")
    # the same target on a T4 costs the T4's price: the target's name no longer sets it
    t4 = price_trial(get_target("cuda-torch"), {}, "x", "Tesla T4")
    assert t4.per_hour_usd == gpu_prices()["T4"].price_per_hour_usd < price.per_hour_usd


def test_a_gpu_with_no_price_is_refused_unless_the_job_prices_the_target() -> None:
    target = get_target("cuda-tensorrt")
    with pytest.raises(UnpricedHardwareError, match="NVIDIA B200") as info:
        price_trial(target, {}, "x", "NVIDIA B200")
    assert isinstance(info.value, UsageError)  # exit 2 from the CLI
    assert "[prices]" in str(info.value) and "cuda-tensorrt = <USD per hour>" in str(info.value)
    priced = price_trial(target, {"cuda-tensorrt": 7.5}, "x", "NVIDIA B200")
    assert (priced.per_hour_usd, priced.priced_as) == (7.5, "job [prices] cuda-tensorrt")
    assert priced.gpu_model == "NVIDIA B200"
    with pytest.raises(UnpricedHardwareError, match="no GPU model"):
        price_trial(target, {}, "x", None)


def test_a_cpu_trial_states_whether_it_ran_on_the_priced_machine() -> None:
    target = get_target("cpu-onnxruntime")
    same = price_trial(target, {}, "Intel(R) Xeon(R) Platinum 8488C", None)
    assert same.per_hour_usd == target.price_per_hour_usd
    assert same.priced_as == f"c7i.large, catalog [cpu-onnxruntime] ({target.price_date})"
    other = price_trial(target, {}, "AMD EPYC 9R45 96-Core Processor", None)
    assert other.per_hour_usd == target.price_per_hour_usd
    assert "ran on a AMD EPYC 9R45" in other.priced_as
    assert "not the priced machine's Intel Xeon Platinum 8488C" in other.priced_as
    graviton = get_target("arm64-onnxruntime").machine_cpu or ""
    assert same_cpu("arm implementer=0x41 part=0xd40", graviton)
    job = price_trial(target, {"cpu-onnxruntime": 0.1}, "anything", None)
    assert (job.per_hour_usd, job.priced_as) == (0.1, "job [prices] cpu-onnxruntime")
    assert job.gpu_model is None


def test_the_gpu_a_trial_used_is_the_one_ray_gave_it() -> None:
    gpus = [{"model": "NVIDIA H200"}, {"model": "NVIDIA H100 80GB HBM3"}]
    assert trial_gpu_model(gpus, "1") == "NVIDIA H100 80GB HBM3"
    assert trial_gpu_model(gpus, "0,1") == "NVIDIA H200"
    assert trial_gpu_model(gpus, None) == "NVIDIA H200"
    assert trial_gpu_model(gpus, "GPU-8f3c") == "NVIDIA H200"  # a UUID: not an index
    assert trial_gpu_model([], "0") is None


def test_unpriced_gpus_names_each_target_gpu_and_node_once() -> None:
    reports = [
        report("gpu-1", ["cuda-torch"], ["NVIDIA B200", "NVIDIA B200"]),
        report("gpu-2", ["cuda-torch", "cuda-tensorrt"], ["NVIDIA H200"]),
        report("cpu-1", ["cpu-onnxruntime"], ["NVIDIA B200"]),  # serves no CUDA target
    ]
    problems = unpriced_gpus([get_target("cuda-torch"), get_target("cuda-tensorrt")], reports)
    assert len(problems) == 1
    assert "cuda-torch would run on a NVIDIA B200 (node gpu-1)" in problems[0]


def test_a_job_is_refused_before_anything_runs_when_a_serving_gpu_has_no_price() -> None:
    probed: list[bool] = []

    def probe(gpus: list[str]) -> Any:
        def run() -> list[NodeReport]:
            probed.append(True)
            return [report("gpu-9", ["cuda-torch"], gpus)]

        return run

    with pytest.raises(UnpricedHardwareError, match=r"gpu.toml: field `prices`: .*NVIDIA B200"):
        check_gpu_prices(gpu_spec(), probe(["NVIDIA B200"]))
    check_gpu_prices(gpu_spec(), probe(["NVIDIA H200"]))  # priced: no error
    assert len(probed) == 2
    check_gpu_prices(gpu_spec({"cuda-torch": 4.0}), probe(["NVIDIA B200"]))  # the job prices it
    assert len(probed) == 2  # ... and the cluster is not even asked


# -- the engine: what a CUDA trial stores, and the report ----------------------------------------
@pytest.fixture
def runner(tmp_path: Path) -> Any:
    """A JobRunner on the in-memory executor, one cuda-torch study prepared without a workload:
    enough to feed it an evaluation as a GPU node would return it (real store)."""
    from support.fake_executor import FakeExecutor, node, prepared_job

    from farm.engine.runner import JobRunner
    from farm.store.artifacts import ArtifactCache
    from farm.store.db import Store

    spec = gpu_spec()
    fake = FakeExecutor([node("n1", "cuda-torch", cpus=16, gpus=1)])
    store = Store(tmp_path / "farm.duckdb")
    runner = JobRunner(spec, store, cache=ArtifactCache(tmp_path / "a"), executor=fake)
    runner.use(prepared_job(spec, max_threads=1))
    store.create_job(runner.job_id, spec.name, spec.to_json())
    return runner


def evaluate_on(runner: Any, gpu: str) -> None:
    """Hand the runner a trial of cuda-torch measured on ``gpu``."""
    from support.fake_executor import node

    from farm.engine.studies import ask
    from farm.measure import Contract, measure
    from farm.worker.evaluate import Evaluation

    run = ask(runner.prepared, runner.studies["cuda-torch"], 0.0)
    run.stage, run.node = "evaluate", node("n1", "cuda-torch", cpus=16, gpus=1)
    contract = Contract(warmup_s=0.0, warmup_iters=1, min_duration_s=0.01, max_duration_s=0.05)
    m = measure(lambda: None, 1, contract)
    environment = {"cpu_model": "AMD EPYC 9554", "gpus": [{"model": gpu}]}
    ev = Evaluation(
        metrics={"accuracy": 0.9, "top1_agreement": 1.0},
        measurement=m.to_dict(),
        samples_ms=list(m.samples_ms),
        precision_actual="fp16",
        compile_s=1.0,
        measure_s=0.1,
        eval_s=0.1,
        peak_rss_mb=100.0,
        env_id="e" * 16,
        environment=environment,
        node_id="n1",
        gpu_model=gpu,
        device_latency_p50_ms=0.3,
        device_latency_p95_ms=0.4,
        device_memory_mib=512.0,
    )
    runner._evaluated(run, ev)


def test_a_cuda_trial_stores_the_gpu_it_ran_on_its_price_and_device_time(runner: Any) -> None:
    evaluate_on(runner, "NVIDIA H200")
    (row,) = runner.store.trials(runner.job_id)
    assert row.completed
    assert row.gpu_model == "NVIDIA H200"
    assert row.price_per_hour_usd == gpu_prices()["H200"].price_per_hour_usd
    assert row.priced_as is not None and row.priced_as.startswith("H200 GPU")
    assert (row.device_latency_p50_ms, row.device_latency_p95_ms) == (0.3, 0.4)
    assert row.device_memory_mib == 512.0


def test_a_trial_from_a_gpu_with_no_price_is_stored_failed_with_the_reason(runner: Any) -> None:
    evaluate_on(runner, "NVIDIA B200")  # a node that joined after the job was checked
    (row,) = runner.store.trials(runner.job_id)
    assert row.status == "failed" and row.error is not None
    assert "NVIDIA B200" in row.error and "[prices]" in row.error
    assert row.cost_per_1k_usd is None


def test_the_report_shows_the_gpu_model_next_to_each_cuda_point(runner: Any) -> None:
    from dashboards.data import load
    from dashboards.figures import _hover
    from dashboards.report import render

    evaluate_on(runner, "NVIDIA H200")
    data = load(runner.store, runner.job_id, with_importances=False)
    page = render(data)
    front = page[page.index("<h3>cuda-torch</h3>") :]
    assert "<th>GPU</th>" in front and "<td>NVIDIA H200</td>" in front
    assert all("on NVIDIA H200" in text for text in _hover(data.trials))


@pytest.mark.slow
def test_prepare_refuses_a_cluster_whose_gpu_has_no_price_before_storing_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a real Ray cluster: a node advertising cuda-torch whose ``nvidia-smi`` (a fake one on
    its PATH) reports a GPU the catalog does not price; the job stops in ``prepare()``."""
    import os

    import ray
    from ray.cluster_utils import Cluster

    from farm.engine.runner import JobRunner
    from farm.store.db import Store

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'NVIDIA B200, 570.86.15, 183359 MiB'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")  # for the nodes
    ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1, num_gpus=1, resources={"target:cuda-torch": 1})
    cluster.wait_for_nodes()
    try:
        store = Store(tmp_path / "farm.duckdb")
        runner = JobRunner(gpu_spec(), store, address=cluster.address)
        with pytest.raises(UnpricedHardwareError, match=r"cuda-torch would run on a NVIDIA B200"):
            runner.prepare()
        assert not store.path.exists()  # nothing was stored, not even an empty store
    finally:
        ray.shutdown()
        cluster.shutdown()
