"""Does the gate's regression test stay quiet on noise and catch a real slowdown?

A small CNN in ONNX, and the same CNN with added work (an extra convolution branch, ≥ 10 %
slower), run on real ONNX Runtime sessions (1 thread) and measured with the farm's harness
(``farm.measure.measure``). Each of the 20 rounds measures the model, an identical rerun in a fresh
session, and the slow model, interleaved, then asks the gate's statistics
(``farm.significance.compare``, the function ``farm gate`` uses on raw samples) whether each is a
regression. Targets: 0/20 false alarms on the rerun, ≥ 19/20 detections of the slowdown.

    .venv/bin/python benchmarks/gate_noise.py [--rounds 20] [--threshold 0.05] [--alpha 0.01]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

#: Output channels of the added 1×1 convolution (sets the size of the slowdown, ~15-25 %).
EXTRA = 8


def build_models(folder: Path) -> tuple[Path, Path]:
    """(plain, slow) ONNX files with the same input and output."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def weight(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.normal(0, 0.1, shape).astype(np.float32), name)

    def graph(extra: bool) -> onnx.ModelProto:
        nodes = [
            helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c1"], ["r1"]),
            helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c2"], ["r2"]),
            helper.make_node("GlobalAveragePool", ["r2"], ["g"]),
            helper.make_node("Flatten", ["g"], ["f"]),
        ]
        inits = [weight("w1", 16, 3, 3, 3), weight("w2", 32, 16, 3, 3), weight("fc", 32, 10)]
        if extra:  # the added work: a 1×1 convolution whose result joins the features
            nodes += [
                helper.make_node("Conv", ["r2", "w3"], ["c3"]),
                helper.make_node("GlobalAveragePool", ["c3"], ["g3"]),
                helper.make_node("Flatten", ["g3"], ["f3"]),
                helper.make_node("MatMul", ["f3", "w4"], ["e"]),
                helper.make_node("Add", ["f", "e"], ["f2"]),
            ]
            inits += [weight("w3", EXTRA, 32, 1, 1), weight("w4", EXTRA, 32)]
        nodes.append(helper.make_node("MatMul", ["f2" if extra else "f", "fc"], ["y"]))
        g = helper.make_graph(
            nodes,
            "gate_noise_cnn",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 64, 64])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
            inits,
        )
        model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        onnx.checker.check_model(model)
        return model

    plain, slow = folder / "cnn.onnx", folder / "cnn_slow.onnx"
    onnx.save(graph(False), str(plain))
    onnx.save(graph(True), str(slow))
    return plain, slow


def measure_model(path: Path, contract: object) -> np.ndarray:
    """A fresh ONNX Runtime session (1 thread), measured by the farm's harness."""
    import onnxruntime as ort

    from farm.measure import measure

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).normal(size=(1, 3, 64, 64)).astype(np.float32)
    m = measure(lambda: session.run(None, {"x": x}), batch_size=1, contract=contract)
    return np.asarray(m.samples_ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threshold", type=float, default=0.05)
    parser.add_argument("--alpha", type=float, default=0.01)
    args = parser.parse_args()

    from farm.measure import Contract
    from farm.significance import compare

    contract = Contract(min_duration_s=0.5, min_samples=200, max_duration_s=2.0)
    with tempfile.TemporaryDirectory() as tmp:
        plain, slow = build_models(Path(tmp))
        load = os.getloadavg()[0]
        print(f"{args.rounds} rounds; contract {contract.to_dict()}; load average {load:.2f}")
        false_alarms = detections = 0
        ratios_same, ratios_slow = [], []
        t0 = time.perf_counter()
        for i in range(args.rounds):
            base = measure_model(plain, contract)
            rerun = measure_model(plain, contract)
            slower = measure_model(slow, contract)
            same = compare(base, rerun, args.threshold, args.alpha, seed=i)
            worse = compare(base, slower, args.threshold, args.alpha, seed=i)
            false_alarms += same.regression
            detections += worse.regression
            ratios_same.append(same.ratio)
            ratios_slow.append(worse.ratio)
            print(
                f"round {i + 1:2d}: rerun {same.slowdown:+6.1%} p={same.p_value:.2g} "
                f"{'FALSE ALARM' if same.regression else 'quiet'}; slow model "
                f"{worse.slowdown:+6.1%} p={worse.p_value:.2g} "
                f"{'detected' if worse.regression else 'MISSED'} (n={len(base)}/{len(slower)})"
            )
        elapsed = time.perf_counter() - t0
    print(
        f"identical rerun: {false_alarms}/{args.rounds} false alarms (target 0); median ratio "
        f"{np.median(ratios_same):.3f}, range [{min(ratios_same):.3f}, {max(ratios_same):.3f}]"
    )
    print(
        f"added work: {detections}/{args.rounds} detected (target >= {args.rounds - 1}); median "
        f"slowdown {np.median(ratios_slow) - 1:+.1%}, smallest {min(ratios_slow) - 1:+.1%}"
    )
    print(f"took {elapsed:.0f} s; load average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
