"""The CUDA targets: the shared runtime contract on a real GPU, clear refusals without one, and
everything about them that does not need a GPU, tested here with ``torch.cuda`` unavailable:
the knobs and their search space, the contract's ``io``, device-time bookkeeping, the TensorRT
engine cache keys, and the cuda-torch session's own code run on the CPU.

GPU tests are marked ``gpu`` and skip by capability, with the runtime's own reason (no GPU,
a CPU-only torch, onnxruntime without the CUDA provider, torch-tensorrt missing). TensorRT and
the ONNX Runtime GPU build cannot be installed on this project's machines (docs/fleet.md says how
to on a GPU node), so their tests skip everywhere here.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from support.target_contract import TargetContract
from support.tiny_models import TinyModels, random_batch

from farm.artifact import Artifact
from farm.errors import RuntimeMissingError, TrialError, UsageError
from farm.measure.contract import Contract
from targets import DeviceSession, RuntimeOptions, get_target, runtime_class
from targets.cuda_torch_runtime import (
    COMPILE_MODES,
    WARMUP_CALLS,
    GpuKnobs,
    build_session,
    load_program,
)

CUDA_RUNTIMES = ("cuda-torch", "onnxruntime-cuda", "tensorrt")
ROOT = Path(__file__).resolve().parents[3]


def _reason(runtime_key: str) -> str | None:
    return runtime_class(runtime_key).unavailable_reason()


def _program(tiny: TinyModels) -> Any:
    return load_program(Artifact.read_from("torch-export", [tiny.pt2]), tiny.directory, "test")


class CudaContract(TargetContract):
    """The shared contract plus what a GPU target adds: fp16, and device memory read back."""

    precisions: ClassVar[dict[str, str]] = {"fp32": "fp32", "fp16": "fp16"}
    atol: ClassVar[float] = 1e-3

    @pytest.fixture(autouse=True)
    def _needs_the_runtime(self) -> None:
        reason = _reason(self.runtime_key)
        if reason is not None:
            pytest.skip(f"{self.runtime_key}: {reason}")

    def test_fp16_runs_close_to_the_reference(self, tiny: TinyModels, tmp_path: Path) -> None:
        x = random_batch(4, seed=3)
        with self.compile(tiny, tmp_path, precision="fp16", batch=4) as session:
            out = session.run(x)
            assert isinstance(session, DeviceSession)
            memory = session.device_memory_mib
        assert out.dtype == np.float32
        np.testing.assert_allclose(out, tiny.reference(x), atol=5e-2, rtol=5e-2)
        assert memory is None or memory > 0


@pytest.mark.gpu
class TestCudaTorch(CudaContract):
    runtime_key = "cuda-torch"
    artifact_format = "torch-export"
    precisions: ClassVar[dict[str, str]] = {"fp32": "fp32", "fp16": "fp16", "bf16": "bf16"}

    def test_tf32_is_off_for_fp32_unless_asked_and_read_back(
        self,
        tiny: TinyModels,
        tmp_path: Path,
    ) -> None:
        with self.compile(tiny, tmp_path / "a", fp32_math="tf32") as session:
            assert session.actual_precision == "tf32"
        with self.compile(tiny, tmp_path / "b") as session:
            assert session.actual_precision == "fp32"

    @pytest.mark.parametrize("batch", [1, 4])
    def test_a_cuda_graph_replays_what_eager_computes(
        self,
        tiny: TinyModels,
        tmp_path: Path,
        batch: int,
    ) -> None:
        with self.compile(tiny, tmp_path, batch=batch, cuda_graphs=True) as session:
            assert session.graphs == "farm"  # type: ignore[attr-defined]
            for seed in (5, 6):  # a new input is copied into the graph's buffer
                y = random_batch(batch, seed=seed)
                np.testing.assert_allclose(session.run(y), tiny.reference(y), atol=self.atol)
            other = random_batch(batch + 1, seed=7)  # another shape runs eagerly
            np.testing.assert_allclose(session.run(other), tiny.reference(other), atol=self.atol)

    def test_device_io_leaves_the_output_on_the_gpu_and_events_time_it(
        self,
        tiny: TinyModels,
        tmp_path: Path,
    ) -> None:
        with self.compile(tiny, tmp_path, batch=2, channels_last=True, cuda_graphs=True) as s:
            assert isinstance(s, DeviceSession)
            query = s.device_query(random_batch(2))
            assert s.start_device_timing()
            out = [query() for _ in range(5)]
            times = s.stop_device_timing()
        assert out[-1].is_cuda
        assert len(times) == 5 and all(t > 0 for t in times)

    def test_a_batch_that_does_not_fit_says_how_much_memory_the_gpu_has(
        self,
        tiny: TinyModels,
        tmp_path: Path,
    ) -> None:
        with pytest.raises(TrialError, match=r"batch 2000000 does not fit in the memory of the"):
            self.compile(tiny, tmp_path, batch=2_000_000)

    @pytest.mark.slow
    @pytest.mark.parametrize("mode", [m for m in COMPILE_MODES if m != "off"])
    def test_every_compile_mode_runs_and_matches(
        self,
        tiny: TinyModels,
        tmp_path: Path,
        mode: str,
    ) -> None:
        x = random_batch(2, seed=2)
        with self.compile(tiny, tmp_path, batch=2, compile=mode) as session:
            np.testing.assert_allclose(session.run(x), tiny.reference(x), atol=1e-2)


@pytest.mark.gpu
class TestCudaOnnxRuntime(CudaContract):
    runtime_key = "onnxruntime-cuda"
    artifact_format = "onnx"

    def test_device_io_binds_the_input_on_the_gpu(
        self,
        tiny: TinyModels,
        tmp_path: Path,
    ) -> None:
        with self.compile(tiny, tmp_path, batch=2) as session:
            assert isinstance(session, DeviceSession)
            query = session.device_query(random_batch(2))
            # IOBinding leaves the outputs on the GPU: the query returns nothing, and runs again
            assert query() is None and query() is None
            assert not session.start_device_timing()  # ONNX Runtime has no CUDA events
            assert session.stop_device_timing() == []

    def test_the_tensorrt_provider_runs_or_says_why_not(
        self,
        tiny: TinyModels,
        tmp_path: Path,
    ) -> None:
        try:
            session = self.compile(tiny, tmp_path, precision="fp16", batch=2, provider="tensorrt")
        except RuntimeMissingError as exc:
            pytest.skip(str(exc))
        with session:
            x = random_batch(2)
            np.testing.assert_allclose(session.run(x), tiny.reference(x), atol=5e-2, rtol=5e-2)
            assert session.actual_precision == "fp16+fp32"


@pytest.mark.gpu
class TestTensorRT(CudaContract):
    runtime_key = "tensorrt"
    artifact_format = "torch-export"

    def test_engines_are_cached_per_gpu_version_and_shape(
        self,
        tiny: TinyModels,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setenv("FARM_NODE_CACHE", str(tmp_path / "cache"))
        with self.compile(tiny, tmp_path / "a", precision="fp16", batch=2):
            pass
        assert len(list((tmp_path / "cache" / "tensorrt").iterdir())) == 1
        with self.compile(tiny, tmp_path / "b", precision="fp16", batch=2):
            pass  # reused: still one directory
        with self.compile(tiny, tmp_path / "c", precision="fp16", batch=4):
            pass
        assert len(list((tmp_path / "cache" / "tensorrt").iterdir())) == 2


@pytest.mark.parametrize("runtime_key", CUDA_RUNTIMES)
def test_without_its_gpu_stack_a_cuda_runtime_refuses_and_says_why(
    runtime_key: str,
    tiny: TinyModels,
    tmp_path: Path,
) -> None:
    reason = _reason(runtime_key)
    if reason is None:
        pytest.skip(f"{runtime_key} runs here; its refusal cannot be observed")
    cls = runtime_class(runtime_key)
    assert not cls.available()
    fmt = cls.accepts[0]
    artifact = Artifact.read_from(fmt, [tiny.pt2 if fmt == "torch-export" else tiny.onnx])
    with pytest.raises(RuntimeMissingError, match="cannot run here") as info:
        cls().compile(artifact, RuntimeOptions(), tmp_path)
    assert reason in str(info.value)


def test_fp16_conversion_keeps_float32_io_and_reports_fp16(tiny: TinyModels) -> None:
    """Runs on the CPU: the converted graph is what the CUDA provider would execute."""
    import onnx
    import onnxruntime as ort

    from targets.cuda_onnxruntime_runtime import graph_precision, to_fp16

    model = onnx.load(str(tiny.onnx))
    assert graph_precision(model) == "fp32"
    half = to_fp16(model)
    assert graph_precision(half) == "fp16"
    assert half.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    session = ort.InferenceSession(half.SerializeToString(), providers=["CPUExecutionProvider"])
    x = random_batch(2, seed=1)
    out = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(out, tiny.reference(x), atol=5e-2, rtol=5e-2)


# -- the knobs and the search space (no GPU needed) -----------------------------------------------
def test_the_catalog_offers_what_matters_on_gpus_and_the_runtime_accepts_all_of_it() -> None:
    target = get_target("cuda-torch")
    assert set(target.precisions) == {"fp32", "fp16", "bf16"}
    assert target.knobs == {
        "channels_last": [False, True],
        "cuda_graphs": [False, True],
        "compile": list(COMPILE_MODES),
        "fp32_math": ["ieee", "tf32"],
    }
    for knob, values in target.knobs.items():
        for value in values:
            assert getattr(GpuKnobs.from_extra("cuda-torch", {knob: value}), knob) == value
    assert get_target("cuda-onnxruntime").knobs == {"provider": ["cuda", "tensorrt"]}


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ({"channels_last": "yes"}, "channels_last`: expected true or false"),
        ({"compile": "turbo"}, "compile`: expected one of"),
        ({"fp32_math": "fp32"}, "fp32_math`: expected one of"),
        ({"graphs": True}, r"unknown option\(s\) \['graphs'\]"),
    ],
)
def test_bad_knob_values_are_the_jobs_error_even_without_a_gpu(
    extra: dict[str, Any],
    match: str,
    tiny: TinyModels,
    tmp_path: Path,
) -> None:
    with pytest.raises(UsageError, match=match):
        GpuKnobs.from_extra("cuda-torch", extra)
    artifact = Artifact.read_from("torch-export", [tiny.pt2])
    with pytest.raises(UsageError, match=match):  # refused before the GPU is even looked for
        runtime_class("cuda-torch")().compile(artifact, RuntimeOptions(extra=extra), tmp_path)


def test_inductor_graph_modes_capture_their_own_cuda_graphs() -> None:
    assert GpuKnobs(compile="reduce-overhead").graphs == "inductor"
    assert GpuKnobs(compile="max-autotune", cuda_graphs=True).graphs == "inductor"
    assert GpuKnobs(compile="max-autotune-no-cudagraphs", cuda_graphs=True).graphs == "farm"
    assert GpuKnobs(cuda_graphs=True).graphs == "farm"
    assert GpuKnobs().graphs is None


def test_the_engine_searches_the_knobs_as_runtime_options_with_batches_up_to_256() -> None:
    from farm.search.space import baseline_params, plan, target_space
    from farm.spec.job import parse_job

    spec = parse_job(
        {
            "name": "gpu",
            "targets": ["cuda-torch"],
            "workload": {"name": "digits"},
            "search": {
                "precision": ["fp32", "fp16", "bf16"],
                "batch_size": [1, 64, 256],
                "knobs": {
                    "runtime.channels_last": [False, True],
                    "runtime.cuda_graphs": [False, True],
                    "runtime.compile": ["off", "max-autotune"],
                    "runtime.fp32_math": ["ieee", "tf32"],
                },
            },
        },
        source="gpu.toml",
    )
    space = target_space(spec, "cuda-torch", max_threads=4)
    assert space["precision"].choices == ("fp32", "fp16", "bf16")  # type: ignore[attr-defined]
    assert space["batch_size"].choices == (1, 64, 256)  # type: ignore[attr-defined]
    assert space["runtime.compile"].choices == ("off", "max-autotune")  # type: ignore[attr-defined]
    base = baseline_params(space)
    assert base["runtime.compile"] == "off" and base["runtime.cuda_graphs"] is False
    point = {**base, "precision": "bf16", "batch_size": 256, "runtime.cuda_graphs": True}
    options = plan(spec, "cuda-torch", point, "w").options
    knobs = GpuKnobs.from_extra("cuda-torch", options.extra)  # what the runtime will read
    assert (options.precision, options.batch_size, knobs.cuda_graphs) == ("bf16", 256, True)


# -- the measurement contract and the worker (no GPU needed) ---------------------------------------
def test_io_is_optional_and_left_out_of_cpu_contracts() -> None:
    plain = Contract()
    assert plain.io is None and plain.exclusive_node is None
    assert "io" not in plain.to_dict() and "exclusive_node" not in plain.to_dict()
    gpu = Contract(io="device", exclusive_node=False)
    assert gpu.to_dict()["io"] == "device" and gpu.to_dict()["exclusive_node"] is False
    assert Contract.from_dict(gpu.to_dict()) == gpu
    with pytest.raises(UsageError, match=r"field `io`: expected one of \['host', 'device'\]"):
        Contract(io="gpu")
    with pytest.raises(UsageError, match="field `exclusive_node`: expected true or false"):
        Contract.from_dict({"exclusive_node": "yes"})


def test_the_measurement_states_io_and_node_sharing_for_device_runtimes_only() -> None:
    from farm.measure.bench import contract_for
    from workloads.tasks import Classification

    task, gpu, cpu_runtime = Classification(), runtime_class("cuda-torch"), runtime_class("torch")
    cuda = contract_for({"min_duration_s": 0.5}, task, gpu)
    assert (cuda.io, cuda.exclusive_node) == ("host", False)
    asked = contract_for({"io": "device", "exclusive_node": True}, task, gpu)
    assert (asked.io, asked.exclusive_node) == ("device", True)
    cpu = contract_for({"io": "device"}, task, cpu_runtime)
    assert cpu.to_dict() == Contract().to_dict()  # CPU contracts are what they were


class FakeGpuSession(DeviceSession):
    """What the measurement needs of a GPU session: a device query and a device timer."""

    actual_precision = "fp16"

    def __init__(self, timings: list[float]) -> None:
        self.timings = timings
        self.staged: Any = None

    @property
    def device_memory_mib(self) -> float | None:
        return 123.0

    def run_all(self, batch: np.ndarray) -> list[np.ndarray]:
        return [np.zeros((len(batch), 10), np.float32)]

    def device_query(self, batch: np.ndarray) -> Any:
        self.staged = batch
        return lambda: "device output"

    def start_device_timing(self) -> bool:
        return True

    def stop_device_timing(self) -> list[float]:
        return self.timings


def test_device_io_times_the_staged_query_and_host_io_the_numpy_run(tiny: TinyModels) -> None:
    from farm.measure.bench import timed_query
    from targets.torch_runtime import TorchSession
    from workloads.tasks import Classification

    session = FakeGpuSession([])
    batch = random_batch(2)
    device = timed_query(session, Classification(), batch, (None, None), "device")
    assert device() == "device output" and session.staged is batch
    host = timed_query(session, Classification(), batch, (None, None), "host")
    assert host()[0].shape == (2, 10)  # type: ignore[index]
    cpu_session = TorchSession(None, "fp32", ())  # a session that is not a device session
    with pytest.raises(TrialError, match="no device-resident query"):
        timed_query(cpu_session, Classification(), batch, (None,), "device")


def test_device_time_is_taken_from_the_calls_the_measurement_reported() -> None:
    from farm.measure import Contract, measure
    from farm.measure.device import device_figures

    contract = Contract(warmup_s=0.0, warmup_iters=3, min_duration_s=0.0, min_samples=6)
    m = measure(lambda: None, 1, contract)
    first = m.warmup_runs + m.discarded_samples
    # warm-up and discarded calls took 100 ms on the device; the reported ones 1..n ms
    timings = [100.0] * first + [float(i + 1) for i in range(m.n_samples)] + [100.0] * 5
    figures = device_figures(FakeGpuSession(timings), True, m)
    assert figures.device_latency_p50_ms == float(np.percentile(
        range(1, m.n_samples + 1), 50, method="inverted_cdf"))  # fmt: skip
    assert figures.device_latency_p95_ms is not None
    assert figures.device_latency_p95_ms <= m.n_samples
    assert figures.device_memory_mib == 123.0
    none = device_figures(FakeGpuSession([]), False, m)
    assert none.device_latency_p50_ms is None


def test_the_gpu_a_task_got_sets_its_cores_and_its_price(monkeypatch: pytest.MonkeyPatch) -> None:
    from farm.measure.device import trial_gpu
    from farm.measure.node import gpu_slot

    fp = {"gpus": [{"model": "NVIDIA H200"}, {"model": "NVIDIA H100 80GB HBM3"}]}
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert gpu_slot() == 1
    assert trial_gpu(get_target("cuda-torch"), fp) == "NVIDIA H100 80GB HBM3"
    assert trial_gpu(get_target("cpu-torch"), fp) is None
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert gpu_slot() == 0


# -- the cuda-torch session's own code, on the CPU ------------------------------------------------
@pytest.mark.parametrize(
    ("precision", "extra", "reported", "atol"),
    [
        ("fp32", {}, "fp32", 1e-5),
        ("fp32", {"channels_last": True, "fp32_math": "tf32"}, "tf32", 1e-5),
        ("bf16", {"channels_last": True}, "bf16", 5e-2),
        ("fp16", {}, "fp16", 5e-2),
    ],
)
def test_the_session_runs_on_the_cpu_with_the_same_code(
    tiny: TinyModels,
    precision: str,
    extra: dict[str, Any],
    reported: str,
    atol: float,
) -> None:
    session = build_session(_program(tiny), RuntimeOptions(precision, 2, 4, extra), "cpu")
    with session:
        assert session.actual_precision == reported and session.threads == 2
        assert session.graphs is None and session.device_memory_mib is None
        x = random_batch(4, seed=9)
        out = session.run(x)
        assert out.dtype == np.float32 and out.shape == (4, 10)
        np.testing.assert_allclose(out, tiny.reference(x), atol=atol, rtol=atol)
        device_out: Any = session.device_query(x)()
        np.testing.assert_allclose(device_out.float().numpy(), out, atol=1e-6)
        assert not session.start_device_timing() and session.stop_device_timing() == []
    with pytest.raises(TrialError, match="after close"):
        session.run(x)


def test_compile_does_the_warm_up_so_latency_samples_never_do(tiny: TinyModels) -> None:
    calls: list[tuple[int, ...]] = []
    program = _program(tiny)

    class Counting:
        def module(self) -> Any:
            inner = program.module()
            original = inner.forward

            def forward(x: Any) -> Any:
                calls.append(tuple(x.shape))
                return original(x)

            inner.forward = forward
            return inner

        def __getattr__(self, name: str) -> Any:
            return getattr(program, name)

    with build_session(Counting(), RuntimeOptions(batch_size=3), "cpu"):
        assert calls == [(3, 3, 32, 32)] * WARMUP_CALLS


class FakeEvent:
    """A CUDA event on a fake clock that advances by one per record."""

    clock = 0.0

    def __init__(self, enable_timing: bool) -> None:
        assert enable_timing
        self.t = 0.0

    def record(self) -> None:
        FakeEvent.clock += 1.0
        self.t = FakeEvent.clock

    def elapsed_time(self, end: FakeEvent) -> float:
        return end.t - self.t


def test_the_device_timer_brackets_each_forward_and_grows_its_pool(
    tiny: TinyModels,
) -> None:
    from types import SimpleNamespace

    from targets.cuda_torch_runtime import DeviceTimer

    fake_torch = SimpleNamespace(cuda=SimpleNamespace(Event=FakeEvent, synchronize=lambda: None))
    timer = DeviceTimer(fake_torch)
    timer.POOL_STEP = 4  # type: ignore[misc]
    session = build_session(_program(tiny), RuntimeOptions(batch_size=2), "cpu")
    with session:
        session._timer = timer  # the session's CUDA timer, on a fake clock
        query = session.device_query(random_batch(2))
        query()  # not timed
        assert session.start_device_timing()
        for _ in range(5):  # 10 events: the pool of 4 grows twice
            query()
        times = session.stop_device_timing()
    assert times == [1.0] * 5  # one duration per forward: its own two events
    assert len(timer._events) == 12


def test_cuda_graphs_need_a_gpu(tiny: TinyModels) -> None:
    with pytest.raises(UsageError, match="CUDA graphs need a GPU"):
        build_session(_program(tiny), RuntimeOptions(extra={"cuda_graphs": True}), "cpu")


@pytest.mark.slow
def test_torch_compile_runs_inside_compile_and_matches(tiny: TinyModels) -> None:
    """torch.compile on the CPU (inductor's C++ backend): slow on 2 cores, hence marked."""
    import time

    options = RuntimeOptions(batch_size=2, extra={"compile": "default"})
    with build_session(_program(tiny), options, "cpu") as session:
        x = random_batch(2, seed=4)
        start = time.perf_counter()
        out = session.run(x)
        assert time.perf_counter() - start < 1.0  # compiled already: no compile in a sample
        np.testing.assert_allclose(out, tiny.reference(x), atol=1e-3, rtol=1e-3)


# -- TensorRT and ONNX Runtime's TensorRT provider: what runs without them ----------------------
def test_tensorrt_engines_are_keyed_by_gpu_versions_shape_precision_and_model(
    tmp_path: Path,
) -> None:
    from targets.tensorrt_runtime import engine_cache_dir

    def key(**change: Any) -> Path:
        parts: dict[str, Any] = {
            "gpu_model": "NVIDIA H200",
            "versions": {"trt": "10.9", "torch-trt": "2.13"},
            "input_shape": (8, 3, 224, 224),
            "precision": "fp16",
            "artifact_hash": "abc",
        }
        parts.update(change)
        return engine_cache_dir(tmp_path, **parts)

    base = key()
    assert base == key() and base.parent == tmp_path / "tensorrt"
    assert "NVIDIA-H200" in base.name and "8x3x224x224" in base.name
    changed = [
        key(gpu_model="NVIDIA L4"),
        key(versions={"trt": "10.10", "torch-trt": "2.13"}),
        key(input_shape=(16, 3, 224, 224)),
        key(precision="fp32"),
        key(artifact_hash="def"),
    ]
    assert len({base, *changed}) == 6


def test_a_modelopt_style_quantized_program_is_recognised() -> None:
    import torch

    from targets.tensorrt_runtime import program_is_quantized

    class FakeQuant(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.fake_quantize_per_tensor_affine(x, 0.1, 0, -128, 127).relu()

    class Plain(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.relu()

    x = (torch.randn(1, 3, 4, 4),)
    assert program_is_quantized(torch.export.export(FakeQuant(), x))
    assert not program_is_quantized(torch.export.export(Plain(), x))


def test_the_tensorrt_provider_gets_a_fixed_profile_and_a_cache(
    tiny: TinyModels,
    tmp_path: Path,
) -> None:
    import onnx

    from targets.cuda_onnxruntime_runtime import tensorrt_provider_options

    model = onnx.load(str(tiny.onnx))
    options = tensorrt_provider_options(model, 8, True, tmp_path)
    assert options["trt_profile_opt_shapes"] == "input:8x3x32x32"
    assert options["trt_profile_min_shapes"] == options["trt_profile_max_shapes"]
    assert options["trt_fp16_enable"] == "True"
    assert options["trt_engine_cache_path"] == str(tmp_path)
    assert tensorrt_provider_options(model, 1, False, tmp_path)["trt_fp16_enable"] == "False"


def test_onnxruntime_cuda_validates_its_provider_before_looking_for_a_gpu(
    tiny: TinyModels,
    tmp_path: Path,
) -> None:
    artifact = Artifact.read_from("onnx", [tiny.onnx])
    runtime = runtime_class("onnxruntime-cuda")()
    with pytest.raises(UsageError, match="provider`: expected one of"):
        runtime.compile(artifact, RuntimeOptions(extra={"provider": "rocm"}), tmp_path)
    with pytest.raises(UsageError, match="unknown option"):
        runtime.compile(artifact, RuntimeOptions(extra={"streams": 2}), tmp_path)


@pytest.mark.skipif(
    importlib.util.find_spec("torch_tensorrt") is None,
    reason="torch-tensorrt is not installed: it needs a GPU node (pip install -e '.[cuda]')",
)
def test_tensorrt_reports_its_versions() -> None:
    assert "TensorRT" in runtime_class("tensorrt").version()


# -- the H200 proof script, on the CPU ------------------------------------------------------------
def _gpu_check() -> Any:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    return gpu_check


def test_the_gpu_check_plan_covers_the_whole_cuda_torch_space() -> None:
    gpu_check = _gpu_check()
    plan = gpu_check.torch_plan((64, 128, 256), 64)
    target = get_target("cuda-torch")
    assert {c.precision for c in plan} == set(target.precisions)
    for knob, values in target.knobs.items():
        assert {c.extra.get(knob, values[0]) for c in plan} == set(values), knob
    assert {c.batch for c in plan} == {1, 64, 128, 256}
    assert {c.io for c in plan} == {"host", "device"}
    assert plan[0] == gpu_check.torch_config("fp32", 1, "host")  # the engine's baseline first
    assert len(plan) == len(set(plan))
    modes = [c.compile_mode for c in plan]
    assert set(modes[:-5]) == {"off"} and "off" not in modes[-5:]  # compile modes last


#: Run the dry run, then say which packages the GPU machine lacks it imported (none may be).
DRY_RUN = """
import runpy, sys
sys.argv = ["gpu_check.py", *sys.argv[1:]]
try:
    runpy.run_path("scripts/gpu_check.py", run_name="__main__")
except SystemExit as exit:
    code = exit.code
absent = {"ray", "duckdb", "optuna", "mlflow"}  # not on the project's GPU machine
print("IMPORTED:", sorted(absent & {m.split(".")[0] for m in sys.modules}))
sys.exit(code)
"""


@pytest.mark.slow
def test_the_gpu_check_dry_run_exercises_the_measurement_path_without_ray_or_duckdb() -> None:
    import os
    import subprocess

    args = ["--dry-run", "--budget-s", "150", "--min-duration-s", "0.05"]
    done = subprocess.run(
        [sys.executable, "-c", DRY_RUN, *args, "--max-duration-s", "0.3"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = done.stdout
    assert done.returncode == 0, done.stderr[-3000:] + out[-3000:]
    assert "IMPORTED: []" in out  # the GPU machine has no Ray, DuckDB or Optuna
    assert "bare PyTorch (dry run: fp32, channels_last, eager, on the CPU)" in out
    lines = [line for line in out.splitlines() if " cuda-torch " in f" {line} "]
    measured = [line for line in lines if "  measured  " in line]
    assert len(measured) >= 10
    assert all(" 1.000 " in line or " 0." in line for line in measured)  # top-1 agreement
    assert any("CUDA graphs need a GPU" in line for line in lines)
    assert "[dry run, not judged] farm best batch-1 p50" in out
    assert "[dry run, not judged] farm best throughput" in out
    assert "[dry run, not judged] top-1 agreement recorded for" in out
