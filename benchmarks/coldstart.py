"""What a new user waits for: whole processes, import included, timed cold (an
empty kernel cache of their own) and from the cache.

    python benchmarks/coldstart.py [--cells elman,lstm,gru,gru_cho] [--out coldstart.json]

Rows:

* ``fit+predict``: ``rnnumba.fit`` (1 epoch of SGD on 2,000 toy sequences,
  hidden 26, the seed's settings) then ``predict``, for each cell family and
  dtype; the seed model is Elman float64. Cold, then again from the cache
  that run left.
* ``rnnumba toy``: the README's first command with one epoch (``--iter 1``),
  cold: the seconds the command reports for epoch 1, and the whole process.
* ``rnnumba compile``: every default family and both dtypes with
  ``--jobs 2``, cold, then from the cache.

Every cold measurement gets a fresh ``RNNUMBA_CACHE_DIR``. The machine and
the numba version are printed with the table. After a cold process the
script waits ``SETTLE`` seconds: its compile helper finishes the kernel it
is compiling (the compiled epoch) after the process exits, and would
otherwise compile beside the next measurement.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTLE = 10.0  # seconds after a cold process, for its helper to finish

FIT = """
import numpy as np, rnnumba
from rnnumba.datasets import make_toy
X, z = make_toy(2000, random_state=0)
model = rnnumba.fit(X.astype({dtype!r}), z.astype({dtype!r}), hidden=26, cell={cell!r},
                    reset_after={reset!r}, dtype={dtype!r}, epochs=1, random_state=0)
model.predict(X)
"""


def timed(argv, cache, **extra):
    """Seconds of a whole process (and its output) with ``cache`` as its kernel cache."""
    env = dict(os.environ, RNNUMBA_CACHE_DIR=cache, PYTHONPATH=ROOT, PYTHONWARNINGS="ignore", **extra)
    t0 = time.perf_counter()
    run = subprocess.run(argv, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if run.returncode:
        raise SystemExit(f"{' '.join(argv)} failed:\n{run.stderr[-3000:]}")
    return seconds, run.stdout


def fit_rows(families, dtypes, scratch):
    rows = []
    for family in families:
        cell, reset = ("gru", False) if family == "gru_cho" else (family, True)
        for dtype in dtypes:
            cache = tempfile.mkdtemp(dir=scratch)
            code = FIT.format(cell=cell, reset=reset, dtype=dtype)
            cold, _ = timed([sys.executable, "-c", code], cache)
            time.sleep(SETTLE)
            warm, _ = timed([sys.executable, "-c", code], cache)
            rows.append({"what": f"fit+predict {family} {dtype}", "cold_s": cold, "cached_s": warm})
            print(f"{rows[-1]['what']}: {cold:.1f} s cold, {warm:.2f} s cached", file=sys.stderr, flush=True)
    return rows


def toy_row(scratch):
    cache = tempfile.mkdtemp(dir=scratch)
    argv = [sys.executable, "-m", "rnnumba", "toy", "--hidden", "26", "--batch", "20", "--rate", "0.02"]
    whole, out = timed([*argv, "--iter", "1"], cache)
    time.sleep(SETTLE)
    epoch1 = float([line for line in out.splitlines() if line.split()[:1] == ["1"]][0].split()[-1])
    warm, _ = timed([*argv, "--iter", "1"], cache)
    return {"what": "rnnumba toy --iter 1", "cold_s": whole, "cached_s": warm, "epoch1_cold_s": epoch1}


def compile_row(scratch):
    cache = tempfile.mkdtemp(dir=scratch)
    argv = [sys.executable, "-m", "rnnumba", "compile", "--jobs", "2"]
    cold, _ = timed(argv, cache)
    warm, _ = timed(argv, cache)
    return {
        "what": "rnnumba compile --jobs 2 (elman, lstm, gru; both dtypes)",
        "cold_s": cold,
        "cached_s": warm,
    }


def table(rows):
    lines = ["| what | cold | from the cache |", "|---|---|---|"]
    for r in rows:
        extra = f" (epoch 1: {r['epoch1_cold_s']:.1f} s)" if "epoch1_cold_s" in r else ""
        lines.append(f"| {r['what']} | {r['cold_s']:.1f} s{extra} | {r['cached_s']:.2f} s |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", default="elman,lstm,gru,gru_cho")
    ap.add_argument("--dtypes", default="float64,float32")
    ap.add_argument("--no-toy", action="store_true")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--out", help="also write the rows as JSON")
    a = ap.parse_args(argv)
    import numba

    with tempfile.TemporaryDirectory() as scratch:
        rows = fit_rows(a.cells.split(","), a.dtypes.split(","), scratch)
        if not a.no_toy:
            rows.append(toy_row(scratch))
        if not a.no_compile:
            rows.append(compile_row(scratch))
    machine = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, numba {numba.__version__}"
    )
    print(f"Cold start ({machine}; each cold row in a fresh RNNUMBA_CACHE_DIR)\n")
    print(table(rows))
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"machine": machine, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
