"""Run the engine benchmarks with every peer in its own process, then print
the merged tables (the Markdown of RESULTS.md).

    python benchmarks/run.py [--cells elman,lstm,gru] [--peers rnnumba,torch,numpy] [--out DIR]

The report names the matrix-product kernels each peer's process ran. On a
machine whose environment pins OpenBLAS's kernels (``OPENBLAS_CORETYPE``,
``OPENBLAS_L2_SIZE``), OpenBLAS's own choice is measured by unsetting both in
that command alone::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/run.py

Each peer gets a fresh process because numba's and PyTorch's OpenMP thread
pools, left spinning after a parallel region, take the cores from each other
inside one process. The peers run back to back on the same machine, so the
ratios compare like with like.
"""

import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from report import main as report  # noqa: E402


def run(cells, peers, out):
    os.makedirs(out, exist_ok=True)
    if "elman" not in cells.split(","):  # the NumPy baseline is an Elman network: nothing to run
        peers = [peer for peer in peers if peer != "numpy"]
    paths = []
    for peer in peers:
        path = os.path.join(out, f"bench-{peer}.json")
        env = dict(os.environ, RNNUMBA_BENCH_CELLS=cells, RNNUMBA_BENCH_PEERS=peer)
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            os.path.join(HERE, "test_engine_bench.py"),
            f"--benchmark-json={path}",
        ]
        print("$", " ".join(cmd), f"(peer {peer})", file=sys.stderr, flush=True)
        subprocess.run(cmd, env=env, check=True, stdout=sys.stderr)
        paths.append(path)
    report(*paths)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", default="elman")
    ap.add_argument("--peers", default="rnnumba,torch,numpy")
    ap.add_argument("--out", default=".")
    a = ap.parse_args()
    run(a.cells, a.peers.split(","), a.out)
