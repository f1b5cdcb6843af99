"""Time the cells' per-step products in each form the engine has, on one thread.

    python benchmarks/products.py [--dtypes float32,float64] [--reps-macs 2e8]

For the per-step product ``C = [h; x] W^T`` of every cell at the benchmark
sizes (one chunk's rows, as ``rnnumba.chunks.n_chunks`` cuts the batch; the
GRU's two products), prints the multiply-adds per second of:

* ``rows``: row updates over a transposed copy of ``W`` (``_linalg.mm_nn_blocked``);
* ``dots``: dot products over the rows of ``W`` (``_linalg.mm_nt``);
* ``engine``: what the engine runs (``_linalg.step_weights`` and ``mm_step``);
* ``blas``: OpenBLAS, called from compiled code.

Run it with ``OPENBLAS_NUM_THREADS=1`` so that BLAS also uses one thread. It
shows where ``_linalg.WIDE`` (the output width from which the engine takes
the dot products) sits on this machine; ``benchmarks/RESULTS.md`` has a run.
"""

import argparse
import time

import numba
import numpy as np

from rnnumba import _linalg
from rnnumba._jit import FASTMATH
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
def _engine(A, W, WT, C, reps):
    WE = _linalg.step_weights(W, A.shape[0])  # once per chunk, as in the cells
    for _ in range(reps):
        _linalg.mm_step(A, W, WE, C)


@numba.njit(**FLAGS)
def _blas(A, W, WT, C, reps):
    for _ in range(reps):
        np.dot(A, WT, C)


FORMS = {"rows": _rows, "dots": _dots, "engine": _engine, "blas": _blas}
SIZES = {"small-long": (32, 1, 32), "medium": (64, 8, 128), "large": (256, 64, 512)}  # N, I, H
OUTPUTS = {"elman": (1,), "lstm": (4,), "gru": (2, 1)}  # rows of W per hidden unit, per product


def shapes():
    """(name, rows, K, outputs) of each per-step product."""
    for size, (N, I, H) in SIZES.items():
        rows = -(-N // n_chunks(N, H))
        for cell, products in OUTPUTS.items():
            for k, gates in enumerate(products):
                K = H + I if k == 0 else H  # the GRU's second product: W_nh (r * h)
                yield f"{cell} {size}" + (" (W_nh)" if k else ""), rows, K, gates * H


def rate(form, A, W, WT, C, reps_macs):
    """Multiply-adds per second: the best of five timed runs of ``reps`` products."""
    macs = A.shape[0] * A.shape[1] * C.shape[1]
    reps = max(1, int(reps_macs // macs))
    form(A, W, WT, C, 1)
    best = min(_timed(form, A, W, WT, C, reps) for _ in range(5))
    return macs * reps / best / 1e9


def _timed(form, *args):
    t0 = time.perf_counter()
    form(*args)
    return time.perf_counter() - t0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--reps-macs", type=float, default=2e8, help="multiply-adds per timed run")
    args = parser.parse_args(argv)
    numba.set_num_threads(1)
    print(f"GMAC/s on one thread; the engine takes dot products from {_linalg.WIDE} bytes an output row")
    print("| product | rows x K x outputs | dtype | rows | dots | engine | blas |")
    print("|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for dtype in args.dtypes.split(","):
        for name, m, K, n in shapes():
            A = rng.standard_normal((m, K)).astype(dtype)
            W = rng.standard_normal((n, K)).astype(dtype)
            WT = np.ascontiguousarray(W.T)
            C = np.empty((m, n), dtype)
            rates = [rate(form, A, W, WT, C, args.reps_macs) for form in FORMS.values()]
            cells = " | ".join(f"{r:.1f}" for r in rates)
            print(f"| {name} | {m} x {K} x {n} | {dtype} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
