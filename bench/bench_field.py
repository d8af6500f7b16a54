"""Weighted column/row sums modulo 2^61 - 1 (VALKYRIE's field reductions) against numpy's sum.

Usage: python bench/bench_field.py [--n 4096] [--repeat 7] [--backend auto] [--path auto] [--json]

For int8 and int32 n x n matrices, nw = 2 and 3 weight vectors, 1 and 2 threads: the median wall
time of weighted_colsums and weighted_rowsums, as GB/s of matrix bytes read, beside numpy's
``x.sum(axis=0)`` on the same matrix in the same run (a bandwidth peer: one pass, no weights).
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import best_and_median, emit

from ramnet.valkyrie import field as _field


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--path", default="auto")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    result: dict[str, object] = {
        "n": args.n,
        "backend": args.backend,
        "path": _field.field_best_path() if args.path == "auto" else args.path,
        "unit": "GB/s of matrix bytes, median",
    }
    for dtype in (np.int8, np.int32):
        info = np.iinfo(dtype)
        x = rng.integers(info.min, info.max, (args.n, args.n), dtype=dtype, endpoint=True)
        gb = x.nbytes / 1e9

        def numpy_sum(x: np.ndarray = x) -> object:
            return x.sum(axis=0)

        _, t = best_and_median(numpy_sum, args.repeat)
        result[f"{x.dtype}.numpy_sum_axis0"] = round(gb / t, 2)
        for nw in (2, 3):
            w = rng.integers(0, _field.P61, (nw, args.n), dtype=np.uint64)
            for threads in (1, 2):
                for name, fn in (
                    ("colsums", _field.weighted_colsums),
                    ("rowsums", _field.weighted_rowsums),
                ):

                    def run(fn=fn, x=x, w=w, threads=threads) -> object:  # type: ignore[no-untyped-def]
                        return fn(x, w, backend=args.backend, threads=threads, path=args.path)

                    run()  # warm up (numba compiles on first call)
                    _, t = best_and_median(run, args.repeat)
                    key = f"{x.dtype}.{name}.nw{nw}.t{threads}"
                    result[key] = f"{gb / t:.2f} GB/s ({t * 1e3:.2f} ms)"
    emit(result, args.json)


if __name__ == "__main__":
    main()
