"""Where a cold start's compile time goes, kernel by kernel.

    python benchmarks/compile_profile.py [--cell elman] [--dtype float64] [--llvm]

Runs the seed model's first ``fit`` (1 epoch, 2,000 toy sequences) and
``predict`` in a fresh kernel cache (a temporary folder, unless
``RNNUMBA_CACHE_DIR`` names one), all of it in this process (no compile
helper), with numba's event API listening (``numba.core.event``,
``"numba:compile"``), and prints, for the slowest compiles, the inclusive time
(with the kernels compiled inside it) and the exclusive time (its own typing,
lowering, optimisation and machine code).

``--llvm`` also times LLVM's two steps for each code library: optimisation,
and machine code (``CPUCodeLibrary._finalize_final_module``, numba 0.68). A
library's machine code covers its own functions and every callee linked into
it, so for each driver (:mod:`rnnumba._jit`) it also emits its own module
alone, before the link, and prints what the callees' copies cost: code that
was compiled to machine code already, in the callee's own library.
"""

import argparse
import os
import tempfile
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


def llvm_steps():
    """Time LLVM's steps per code library: ``{library: [optimise s, machine code s, own module s]}``."""
    from numba.core import codegen

    from rnnumba import _jit

    steps = {}
    cls = codegen.CPUCodeLibrary
    optimise, finalize = cls._optimize_final_module, cls._finalize_final_module

    def timed_optimise(library):
        t0 = time.perf_counter()
        optimise(library)
        row = steps.setdefault(library.name, [0.0, 0.0, None])
        row[0] += time.perf_counter() - t0
        stack = _jit._notice.stack()
        if stack and stack[-1] in _jit._DRIVERS and library._linking_libraries:
            t0 = time.perf_counter()  # a driver's own module, alone (its callees not linked in yet)
            library._codegen._tm.emit_object(library._final_module.clone())
            row[2] = time.perf_counter() - t0

    def timed_finalize(library):
        t0 = time.perf_counter()
        finalize(library)
        steps.setdefault(library.name, [0.0, 0.0, None])[1] += time.perf_counter() - t0

    cls._optimize_final_module, cls._finalize_final_module = timed_optimise, timed_finalize
    return steps


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", default="elman", choices=("elman", "lstm", "gru", "gru_cho"))
    ap.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--llvm", action="store_true", help="also time LLVM's optimisation and machine code")
    a = ap.parse_args(argv)
    os.environ["RNNUMBA_PREFETCH"] = "0"  # every compile in this process
    os.environ.setdefault("RNNUMBA_CACHE_DIR", tempfile.mkdtemp(prefix="rnnumba-profile-"))
    import rnnumba
    from rnnumba.datasets import make_toy

    steps = llvm_steps() if a.llvm else None
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
    if steps is None:
        return
    optimised = sum(s[0] for s in steps.values())
    emitted = sum(s[1] for s in steps.values())
    copies = {name: s[1] - s[2] for name, s in steps.items() if s[2] is not None}
    print(f"\nLLVM: optimisation {optimised:.2f} s, machine code {emitted:.2f} s, of which drivers' copies")
    print(f"of their callees {sum(copies.values()):.2f} s (machine code emitted again); slowest libraries:")
    print(f"{'optimise':>8} {'machine':>8} {'copies':>7}  library")
    for name, (opt, mc, own) in sorted(steps.items(), key=lambda kv: -kv[1][0] - kv[1][1])[: a.top]:
        again = f"{mc - own:6.2f}s" if own is not None else " " * 7
        print(f"{opt:7.2f}s {mc:7.2f}s {again}  {name[:70]}")


if __name__ == "__main__":
    main()
