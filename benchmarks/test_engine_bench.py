"""One training step (forward, BPTT, SGD update) and one inference pass of a
many-to-one network at the engine's four sizes, for rnnumba and its peers.

Run every peer in its own process, one after the other, and merge the tables::

    python benchmarks/run.py              # RNNUMBA_BENCH_CELLS=elman,lstm,gru for all cells

(``RNNUMBA_BENCH_PEERS`` selects peers for a single ``pytest`` run.) Not one
process for all: numba's and PyTorch's OpenMP thread pools keep spinning after
each parallel region, and in one process they take the cores from each other
(measured: PyTorch's medium float32 step 6.2 ms alone, 163 ms after rnnumba
had run in the same process).
"""

import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest
from conftest import ROOT, SIZES, TARGETS, blas_kernels
from peers import numpy_step, torch_step

import rnnumba

CELLS = os.environ.get("RNNUMBA_BENCH_CELLS", "elman").split(",")
PEERS = os.environ.get("RNNUMBA_BENCH_PEERS", "rnnumba,torch,numpy").split(",")
# a subset of the sizes (RNNUMBA_BENCH_SIZES=seed,small-long), and the cold compile
# timing (RNNUMBA_BENCH_COMPILE=0 leaves it out: half a minute per cell, cold)
RUN_SIZES = [s for s in os.environ.get("RNNUMBA_BENCH_SIZES", ",".join(SIZES)).split(",") if s]
COMPILE = os.environ.get("RNNUMBA_BENCH_COMPILE", "1") != "0"
DTYPES = ["float32", "float64"]


def rnnumba_step(cell, N, T, I, H, dtype, lr=0.01, seed=0):
    net = rnnumba.RNN(I, H, cell=cell, dtype=dtype, random_state=seed)
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, T, I)).astype(dtype)
    y = rng.normal(size=N).astype(dtype)

    def step():
        loss, grad = net.loss_and_grad(X, y)
        net.theta -= lr * grad
        return loss

    return step, lambda: net.predict(X)


def make(peer, cell, size, dtype):
    N, T, I, H = SIZES[size]
    dtype = np.dtype(dtype).type
    if peer == "rnnumba":
        return rnnumba_step(cell, N, T, I, H, dtype)
    if peer == "torch":
        pytest.importorskip("torch")
        return torch_step(cell, N, T, I, H, dtype, threads=numba.get_num_threads())
    if cell != "elman":
        pytest.skip("the NumPy baseline is an Elman network")
    return numpy_step(N, T, I, H, dtype)


def _run(benchmark, what, peer, cell, size, dtype):
    step, predict = make(peer, cell, size, dtype)
    fn = step if what == "train" else predict
    fn()  # compile / warm up outside the timing
    benchmark.group = f"{what} {cell} {size} {dtype}"
    benchmark.extra_info.update(
        peer=peer,
        cell=cell,
        size=size,
        dtype=dtype,
        what=what,
        threads=numba.get_num_threads(),
        target=TARGETS[size],
        blas=blas_kernels(peer),
    )
    rounds = 3 if size == "large" else None
    if rounds:
        benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=0)
    else:
        benchmark(fn)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", RUN_SIZES)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("peer", PEERS)
def test_train_step(benchmark, peer, cell, size, dtype):
    _run(benchmark, "train", peer, cell, size, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", RUN_SIZES)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("peer", PEERS)
def test_inference(benchmark, peer, cell, size, dtype):
    _run(benchmark, "predict", peer, cell, size, dtype)


COLD_START = textwrap.dedent(
    """
    import time, numpy as np
    t0 = time.perf_counter()
    import rnnumba
    t1 = time.perf_counter()
    net = rnnumba.RNN(1, 26, cell={cell!r}, random_state=0)
    X, y = np.zeros((20, 3)), np.zeros(20)
    net.loss_and_grad(X, y)
    t2 = time.perf_counter()
    net.predict(X)
    t3 = time.perf_counter()
    print(t1 - t0, t2 - t1, t3 - t2)
    """
)


@pytest.mark.skipif("rnnumba" not in PEERS, reason="rnnumba is not among the peers of this run")
@pytest.mark.skipif(not COMPILE, reason="RNNUMBA_BENCH_COMPILE=0")
@pytest.mark.parametrize("cell", CELLS)
def test_compile_time(benchmark, cell, tmp_path):
    """Import, first loss_and_grad and first predict in a fresh process: with an
    empty cache (compiling) and again with the cache it left (loading)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), PYTHONPATH=ROOT)
    times = {}
    for label in ("cold", "warm"):
        out = subprocess.run(
            [sys.executable, "-c", COLD_START.format(cell=cell)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        times[label] = [float(v) for v in out.split()]
    benchmark.group = f"compile {cell}"
    benchmark.extra_info.update(
        cell=cell,
        what="compile",
        import_s=times["cold"][0],
        cold_loss_and_grad_s=times["cold"][1],
        cold_predict_s=times["cold"][2],
        warm_loss_and_grad_s=times["warm"][1],
        warm_predict_s=times["warm"][2],
    )
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
