"""Where a cold start's compile time goes, kernel by kernel.

    RNNUMBA_CACHE_DIR=$(mktemp -d) python benchmarks/compile_profile.py [--cell elman] [--dtype float64]

Runs the seed model's first ``fit`` (1 epoch, 2,000 toy sequences) and
``predict`` with numba's event API listening (``numba.core.event``,
``"numba:compile"``) and prints, for the slowest compiles, the inclusive time
(with the kernels compiled inside it) and the exclusive time (its own typing,
lowering, optimisation and machine code). Give it an empty cache folder, or
nothing compiles.
"""

import argparse
import time

import numba.core.event as ev


def profile(run):
    """``[(inclusive s, exclusive s, name, argument types)]`` of the compiles in ``run()``."""
    recorder = ev.RecordingListener()
    with ev.install_listener("numba:compile", recorder):
        run()
    rows, stack = [], []
    for ts, e in recorder.buffer:
        func = e.data["dispatcher"].py_func
        key = (f"{func.__module__}.{func.__qualname__}", str(e.data["args"]))
        if e.is_start:
            stack.append((key, ts, []))
            continue
        key, t0, inner = stack.pop()
        rows.append((ts - t0, ts - t0 - sum(inner), *key))
        if stack:
            stack[-1][2].append(ts - t0)
    return sorted(rows, reverse=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", default="elman", choices=("elman", "lstm", "gru", "gru_cho"))
    ap.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    ap.add_argument("--top", type=int, default=20)
    a = ap.parse_args(argv)
    import rnnumba
    from rnnumba.datasets import make_toy

    X, z = make_toy(2000, random_state=0)
    cell, reset = ("gru", False) if a.cell == "gru_cho" else (a.cell, True)

    def run():
        model = rnnumba.fit(X, z, hidden=26, cell=cell, reset_after=reset, dtype=a.dtype, epochs=1)
        model.predict(X)

    t0 = time.perf_counter()
    rows = profile(run)
    seconds = time.perf_counter() - t0
    print(f"first fit + predict: {seconds:.1f} s ({a.cell}, {a.dtype}; cache {rnnumba.cache_dir()})")
    print(f"{'inclusive':>9} {'own':>6}  kernel")
    for inclusive, own, name, args in rows[: a.top]:
        print(f"{inclusive:8.2f}s {own:5.2f}s  {name}  {args[:70]}")


if __name__ == "__main__":
    main()
