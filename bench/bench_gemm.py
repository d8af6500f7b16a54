"""int8 GEMM: RAMNET against the machine's register peak, numpy and onnxruntime, in one run.

Usage: python bench/bench_gemm.py [--sizes 2048,4096] [--rounds 5] [--threads 2] [--json]

For each size n (square, int8 x int8, seeded random data), each round measures:
- RAMNET's ``matmul`` (C backend, best code path), whole call including allocation of C;
- numpy float64 matmul of the same data (exact for int8, what a user would do instead; BLAS);
- numpy's int32 matmul (no BLAS, very slow: one run at --numpy-int-size, 2048 by default, compared
  as a rate);
- onnxruntime MatMulInteger with uint8 x int8 and int8 x int8 inputs, if onnxruntime is installed
  (the `bench` extra).
The register peak comes from ../shared/tools/peak.sh, measured in the same run. Medians over rounds.
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are left as the environment sets them.
"""

from __future__ import annotations

import argparse
import functools
import statistics
from collections.abc import Callable

import numpy as np
from _common import best_and_median, emit, peak

from ramnet import orchid
from ramnet.orchid._backends import resolve as resolve_backend


def onnx_sessions() -> dict[str, object]:
    """One-node MatMulInteger models for uint8 x int8 and int8 x int8; empty without onnxruntime."""
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper
    except ImportError:
        return {}
    sessions = {}
    for name, a_type in (
        ("onnxruntime_u8s8", TensorProto.UINT8),
        ("onnxruntime_s8s8", TensorProto.INT8),
    ):
        graph = helper.make_graph(
            [helper.make_node("MatMulInteger", ["A", "B"], ["C"])],
            "mmi",
            [
                helper.make_tensor_value_info("A", a_type, None),
                helper.make_tensor_value_info("B", TensorProto.INT8, None),
            ],
            [helper.make_tensor_value_info("C", TensorProto.INT32, None)],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        sessions[name] = ort.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]
        )
    return sessions


def measure(
    n: int,
    threads: int,
    rounds: int,
    sessions: dict[str, object],
    pk: dict[str, float] | None,
    numpy_int_size: int,
) -> dict[str, object]:
    """Median GOP/s of every candidate at size n, and RAMNET's ratios to each."""
    a, b = orchid.random_operands(n, n, n, "int8", seed=1)
    ops = 2.0 * n**3
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    au8 = (a.astype(np.int16) + 128).astype(np.uint8)
    s = min(n, numpy_int_size)
    ai, bi = a[:s, :s].astype(np.int32), b[:s, :s].astype(np.int32)
    cands: dict[str, Callable[[], object]] = {
        "ramnet": lambda: orchid.matmul(a, b, threads=threads),
        "numpy_float64": lambda: np.matmul(a64, b64),
    }
    for name, sess in sessions.items():
        feed = {"A": au8 if name.endswith("u8s8") else a, "B": b}
        cands[name] = functools.partial(sess.run, None, feed)  # type: ignore[attr-defined]
    if n <= 2048:  # the product must be right before its speed counts
        exact = np.matmul(a64, b64).astype(np.int32)
        assert np.array_equal(orchid.matmul(a, b, threads=threads), exact)
    runs: dict[str, list[float]] = {}
    for _ in range(rounds):
        for name, fn in cands.items():
            fn()
            runs.setdefault(name, []).append(ops / best_and_median(fn, 3)[1] / 1e9)
    numpy_int = 2.0 * s**3 / best_and_median(lambda: np.matmul(ai, bi), 1)[0] / 1e9
    runs[f"numpy_int32_n{s}"] = [numpy_int]
    med = {k: round(statistics.median(v), 2) for k, v in runs.items()}
    row: dict[str, object] = {"gops_median": med}
    if pk:
        row["ramnet_fraction_of_int8_peak"] = round(med["ramnet"] / pk["int8_gops"], 3)
    row["ramnet_over_numpy_float64"] = round(med["ramnet"] / med["numpy_float64"], 2)
    row["ramnet_over_numpy_int32"] = round(med["ramnet"] / med[f"numpy_int32_n{s}"], 1)
    for name in sessions:
        row[f"ramnet_over_{name}"] = round(med["ramnet"] / med[name], 2)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="2048,4096")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--numpy-int-size",
        type=int,
        default=2048,
        help="size of numpy's int32 matmul (one run; ~40 s at 2048 here)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    threads = args.threads or orchid.default_threads()
    pk = peak(threads)
    result: dict[str, object] = {"threads": threads, "peak": pk}
    backend = resolve_backend("auto", np.dtype(np.int8))
    result["code_path"] = f"{backend.name}/{backend.code_path}"
    sessions = onnx_sessions()
    result["onnxruntime"] = "yes" if sessions else "not installed (pip install onnx onnxruntime)"
    for n in (int(x) for x in args.sizes.split(",")):
        result[f"n={n}"] = measure(n, threads, args.rounds, sessions, pk, args.numpy_int_size)
    emit(result, args.json)


if __name__ == "__main__":
    main()
