"""Time the cells' per-step products in each form the engine has, on one thread.

    python benchmarks/products.py [--dtypes float32,float64] [--reps-macs 2e8]

For the per-step product ``C = [h; x] W^T`` of every cell at the benchmark
sizes (one chunk's rows, as ``rnnumba.chunks.n_chunks`` cuts the batch;
``[h; x]`` as wide as the engine pads it, ``rnnumba._rows.padded_width``; the
GRU's two products), prints the multiply-adds per second of:

* ``rows``: row updates over a transposed copy of ``W`` (``_linalg.mm_nn_blocked``);
* ``dots``: dot products over the rows of ``W`` (``_linalg.mm_nt``; on 512-bit
  registers where ``_dots.wide_rows`` says so);
* ``blas``: OpenBLAS, called from compiled code;

and which of the first two the engine takes (``_linalg.step_weights``). Then
the same for BPTT's per-step product ``dz W`` (rows ``dz``, gates by
``[h; x]``): row updates over ``W``, dot products over ``W^T``, and the
engine's choice (``_linalg.back_weights``). BLAS runs on one thread too
(``threadpoolctl``). ``benchmarks/RESULTS.md`` has runs.

Every operand starts on a 64-byte boundary and 4 KiB from the others' starts
(as the engine's buffers start on cache lines): the row updates lose about a
quarter of their speed when ``W^T`` starts one cache line before the output
modulo 4 KiB (its loads then alias the output's stores), so operands placed
by chance would make the table a lottery.
"""

import argparse

import numba
import numpy as np
from roofline import timed
from threadpoolctl import threadpool_limits

from rnnumba import _linalg
from rnnumba._dots import VECTORS_512
from rnnumba._jit import FASTMATH
from rnnumba._rows import padded_width
from rnnumba.chunks import n_chunks

FLAGS = dict(fastmath=set(FASTMATH), error_model="numpy")


@numba.njit(**FLAGS)
def _rows(A, W, WT, C, reps):
    for _ in range(reps):
        _linalg.mm_nn_blocked(A, WT, C)


@numba.njit(**FLAGS)
def _dots(A, W, WT, C, reps):
    for _ in range(reps):
        _linalg.mm_nt(A, W, C)


@numba.njit(**FLAGS)
def _blas(A, W, WT, C, reps):
    for _ in range(reps):
        np.dot(A, WT, C)


FORMS = {"rows": _rows, "dots": _dots, "blas": _blas}
SIZES = {"small-long": (32, 1, 32), "medium": (64, 8, 128), "large": (256, 64, 512)}  # N, I, H
OUTPUTS = {"elman": (1,), "lstm": (4,), "gru": (2, 1)}  # rows of W per hidden unit, per product


def shapes(dtype):
    """(name, rows, K, outputs) of each per-step product, ``K`` padded as the engine pads it."""
    for size, (N, I, H) in SIZES.items():
        rows = -(-N // n_chunks(N, H))
        for cell, products in OUTPUTS.items():
            for k, gates in enumerate(products):
                K = H + I if k == 0 else H  # the GRU's second product: W_nh (r * h)
                if k == 0:
                    K = padded_width(K, rows * products[0] * H * K, np.dtype(dtype).itemsize)
                yield f"{cell} {size}" + (" (W_nh)" if k else ""), rows, K, gates * H


def _aligned(M):
    """A C-contiguous copy of ``M`` starting on a 4 KiB boundary (see the module's docstring)."""
    raw = np.empty(M.size * M.itemsize + 4096, np.uint8)
    start = -raw.ctypes.data % 4096
    out = raw[start : start + M.size * M.itemsize].view(M.dtype).reshape(M.shape)
    out[...] = M
    return out


def rate(form, A, W, WT, C, reps_macs):
    """Multiply-adds per second: the best of five timed runs of ``reps`` products."""
    macs = A.shape[0] * W.shape[0] * W.shape[1]
    reps = max(1, int(reps_macs // macs))
    form(A, W, WT, C, 1)
    best = min(timed(lambda: form(A, W, WT, C, reps)) for _ in range(5))
    return macs * reps / best / 1e9


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--reps-macs", type=float, default=2e8, help="multiply-adds per timed run")
    args = parser.parse_args(argv)
    numba.set_num_threads(1)
    print(f"GMAC/s on one thread; 512-bit dot products: {VECTORS_512}")
    rng = np.random.default_rng(0)
    for back in (False, True):
        if back:
            print("\nBPTT: dz (rows x outputs) by W (outputs x K)")
        blas = "" if back else " blas |"
        print(f"| product | rows x K x outputs | dtype | rows | dots |{blas} the engine's |")
        print("|---|---|---|---|---|---|" + ("" if back else "---|"))
        for dtype in args.dtypes.split(","):
            for name, m, K, n in shapes(dtype):
                W = _aligned(rng.standard_normal((n, K)).astype(dtype))
                WT = _aligned(W.T)  # as the engine's transposed copy
                A = _aligned(rng.standard_normal((m, n if back else K)).astype(dtype))
                C = _aligned(np.empty((m, K if back else n), dtype))
                if back:  # row updates where back_weights gives no W^T
                    rows = _linalg.back_weights(W, m).shape[0] == 0
                else:  # row updates where step_weights gives W^T
                    rows = _linalg.step_weights(W, m).shape[0] > 0
                # BPTT's forms are the forward ones with W and W^T swapped: rows over W, dots over W^T
                operands = (A, WT, W, C) if back else (A, W, WT, C)
                forms = ("rows", "dots") if back else FORMS
                with threadpool_limits(1, user_api="blas"):
                    rates = [rate(FORMS[f], *operands, args.reps_macs) for f in forms]
                cells = " | ".join(f"{r:.1f}" for r in rates)
                form = "rows" if rows else "dots"
                print(f"| {name} | {m} x {K} x {n} | {dtype} | {cells} | {form} |", flush=True)


if __name__ == "__main__":
    main()
