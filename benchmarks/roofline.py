"""The machine's multiply-add peak: the roofline that every engine step is read against.

    python benchmarks/roofline.py [--out roofline.json]

Multiply-adds per second (GMAC/s) in float32 and float64, on 1 and 2 threads:

* ``blas``: ``numpy.dot`` of two square matrices (NumPy's OpenBLAS), threads
  set with threadpoolctl;
* ``rnnumba``: the engine's own weight-gradient product
  (``_linalg.mm_tn_blocked``, row updates: the biggest product of a training
  step) at the large benchmark's shape (256 x 100 rows, 4 x 512 gates, 584
  columns), one product per thread as the engine's chunks run;
* ``rnnumba dots``: the engine's per-step dot products (``_linalg.mm_nt``,
  on 512-bit registers where the CPU has them: ``rnnumba._dots``) at the
  large LSTM's step (64 rows of ``[h; x]``, 576 wide, by 4 x 512 gates), one
  per thread;
* ``nominal``: cores x clock x 2 FMA units x SIMD lanes, from ``/proc/cpuinfo``
  (AVX-512: 16 float32 lanes; AVX2: 8), for reference only.

The peak of a dtype and thread count is the best measured one;
:func:`step_macs` counts a benchmark step's multiply-adds, so that a step's
share of the peak is ``step_macs / seconds / peak``.
"""

import argparse
import json
import os
import platform
import time

import numba
import numpy as np


def blas_rate(dtype, threads, n=1536, repeats=3):
    """GMAC/s of ``numpy.dot`` of two (n, n) matrices on ``threads`` BLAS threads."""
    from threadpoolctl import threadpool_limits

    a = np.random.default_rng(0).normal(size=(n, n)).astype(dtype)
    b = a.T.copy()
    with threadpool_limits(threads, user_api="blas"):
        a @ b
        best = min(timed(lambda: a @ b) for _ in range(repeats))
    return n**3 / best / 1e9


def rnnumba_rate(dtype, threads, rows=256 * 100, H=512, G=4, K=512 + 64 + 8):
    """GMAC/s of the engine's dW (G*H, K) = dZ^T [h; x] over ``rows`` rows, one product per thread."""
    from rnnumba._linalg import empty_aligned, mm_tn_blocked

    rng = np.random.default_rng(0)
    dZ = [rng.normal(size=(rows, G * H)).astype(dtype) for _ in range(threads)]
    HX = [rng.normal(size=(rows, K)).astype(dtype) for _ in range(threads)]
    dW = [empty_aligned(G * H, K, np.dtype(dtype)) for _ in range(threads)]
    run = _side_by_side(mm_tn_blocked)
    args = (numba.typed.List(dZ), numba.typed.List(HX), numba.typed.List(dW))
    numba.set_num_threads(threads)
    run(*args)
    best = min(timed(lambda: run(*args)) for _ in range(3))
    return threads * rows * G * H * K / best / 1e9


def dots_rate(dtype, threads, rows=64, K=512 + 64, outputs=4 * 512, reps=20):
    """GMAC/s of the per-step ``C = A W^T`` (``rows`` x ``K`` by ``outputs`` x ``K``), one per thread."""
    from rnnumba._linalg import empty_aligned, mm_nt

    rng = np.random.default_rng(0)
    operands = []
    for shape in [(rows, K), (outputs, K), (rows, outputs)]:  # on cache lines, as the engine's
        arrays = [empty_aligned(*shape, np.dtype(dtype)) for _ in range(threads)]
        for a in arrays:
            a[...] = rng.normal(size=shape)
        operands.append(numba.typed.List(arrays))
    run = _side_by_side(mm_nt, reps)
    numba.set_num_threads(threads)
    run(*operands)
    best = min(timed(lambda: run(*operands)) for _ in range(3))
    return threads * reps * rows * K * outputs / best / 1e9


def _side_by_side(product, reps=1):
    @numba.njit(parallel=True)
    def run(As, Bs, Cs):
        for p in numba.prange(len(As)):
            for _ in range(reps):
                product(As[p], Bs[p], Cs[p])

    return run


def nominal_rate(dtype):
    """Cores x clock x 2 FMA units x SIMD lanes, or None where /proc/cpuinfo says too little."""
    try:
        info = open("/proc/cpuinfo").read()
    except OSError:
        return None
    mhz = [float(line.split(":")[1]) for line in info.splitlines() if line.startswith("cpu MHz")]
    bits = 512 if " avx512f" in info else (256 if " avx2" in info else 128)
    if not mhz:
        return None
    lanes = bits // (32 if dtype == "float32" else 64)
    return len(mhz) * max(mhz) / 1e3 * 2 * lanes


def timed(fn):
    """Seconds one call of ``fn()`` takes."""
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def measure():
    """Every rate, and the peak per (dtype, threads)."""
    rows = []
    for dtype in ("float32", "float64"):
        for threads in (1, 2):
            for how, rate in (("blas", blas_rate), ("rnnumba", rnnumba_rate), ("rnnumba dots", dots_rate)):
                rows.append(dict(dtype=dtype, threads=threads, how=how, gmacs=rate(dtype, threads)))
    peak = {}
    for r in rows:
        key = f"{r['dtype']}/{r['threads']}"
        peak[key] = max(peak.get(key, 0.0), r["gmacs"])
    nominal = {dtype: nominal_rate(dtype) for dtype in ("float32", "float64")}
    machine = platform.processor() or platform.machine()
    return {
        "machine": machine,
        "cores": os.cpu_count(),
        "rates": rows,
        "peak_gmacs": peak,
        "nominal_gmacs": nominal,
    }


def step_macs(cell, N, T, I, H, what):
    """Multiply-adds of one step of the benchmark's many-to-one network (N, T, I, hidden H).

    Per sample and step the recurrent product ``G*H x (H + I)``: once to
    predict; three times to train (forward, BPTT's ``da W``, and the weight
    gradient ``da^T [h; x]``). The head's few MACs are left out.
    """
    G = {"elman": 1, "lstm": 4, "gru": 3}[cell]
    one = N * T * G * H * (H + I)
    return one if what == "predict" else 3 * one


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out")
    a = ap.parse_args()
    result = measure()
    print(f"Machine: {result['machine']}, {result['cores']} logical cores")
    print("\n| dtype | threads | BLAS | rnnumba dW | rnnumba dots | peak | nominal (all cores) |")
    print("|---|---|---|---|---|---|---|")
    for dtype in ("float32", "float64"):
        nominal = result["nominal_gmacs"][dtype]
        for threads in (1, 2):
            got = {
                r["how"]: r["gmacs"]
                for r in result["rates"]
                if (r["dtype"], r["threads"]) == (dtype, threads)
            }
            peak = result["peak_gmacs"][f"{dtype}/{threads}"]
            shown = f"{nominal:.0f}" if nominal else "-"
            rates = " | ".join(f"{got[how]:.1f}" for how in ("blas", "rnnumba", "rnnumba dots"))
            rates += f" | {peak:.1f} GMAC/s"
            print(f"| {dtype} | {threads} | {rates} | {shown} |")
    if a.out:
        with open(a.out, "w") as fh:
            json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
