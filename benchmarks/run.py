"""Run the engine benchmarks with every peer in its own process, then print
the merged tables (the Markdown of RESULTS.md).

    python benchmarks/run.py [--cells elman,lstm,gru] [--peers rnnumba,torch,numpy]
                             [--sizes seed,small-long,medium,large] [--no-compile]
                             [--out DIR] [--json FILE] [--no-roofline]

``--json FILE`` also merges the peers' pytest-benchmark files into one file,
with the command that made it: ``benchmarks/results.json`` is the one the
documentation's benchmark page is built from (``docs/benchmarks.md``).

First ``roofline.py`` measures the machine's multiply-add peak (its own
process), so that each step's row shows its share of that peak next to the
ratios. The report names the matrix-product kernels each peer's process ran. On a
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
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from conftest import SIZES  # noqa: E402
from report import merge, show  # noqa: E402


def run(cells, peers, out, sizes=None, compile_times=True, json_path=None, command=None, roofline=True):
    os.makedirs(out, exist_ok=True)
    peak = None
    if roofline:  # the machine's multiply-add peak, in a process of its own, first
        peak = os.path.join(out, "roofline.json")
        cmd = [sys.executable, os.path.join(HERE, "roofline.py"), "--out", peak]
        print("$", " ".join(cmd), file=sys.stderr, flush=True)
        subprocess.run(cmd, check=True, stdout=sys.stderr)
    if "elman" not in cells.split(","):  # the NumPy baseline is an Elman network: nothing to run
        peers = [peer for peer in peers if peer != "numpy"]
    paths = []
    for peer in peers:
        path = os.path.join(out, f"bench-{peer}.json")
        env = dict(os.environ, RNNUMBA_BENCH_CELLS=cells, RNNUMBA_BENCH_PEERS=peer)
        env["RNNUMBA_BENCH_SIZES"] = ",".join(sizes or SIZES)
        env["RNNUMBA_BENCH_COMPILE"] = "1" if compile_times else "0"
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
    merged = merge(paths, command=command, roofline=peak)
    if json_path:
        with open(json_path, "w") as fh:
            json.dump(merged, fh, indent=1, sort_keys=True)
            fh.write("\n")
    show(merged)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", default="elman")
    ap.add_argument("--peers", default="rnnumba,torch,numpy")
    ap.add_argument("--sizes", default=",".join(SIZES), help="a subset of " + ", ".join(SIZES))
    ap.add_argument("--no-compile", action="store_true", help="leave out the cold compile timing")
    ap.add_argument("--out", default=".")
    ap.add_argument("--json", help="also merge the peers' results into this file")
    ap.add_argument(
        "--no-roofline", action="store_true", help="leave out the peak (the share-of-peak column)"
    )
    a = ap.parse_args()
    sizes = a.sizes.split(",")
    unknown = sorted(set(sizes) - set(SIZES))
    if unknown:
        ap.error(f"unknown sizes {unknown}; choose from {list(SIZES)}")
    command = "python benchmarks/run.py " + " ".join(sys.argv[1:])
    run(
        a.cells,
        a.peers.split(","),
        a.out,
        sizes,
        not a.no_compile,
        a.json,
        command.strip(),
        not a.no_roofline,
    )
