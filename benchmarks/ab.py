"""rnnumba against another checkout of itself, side by side in one run.

    git worktree add ../rnnumba-base <commit>
    python benchmarks/ab.py --base ../rnnumba-base [--cells elman,lstm,gru] [--rounds 2]

Runs the engine benchmarks (``test_engine_bench.py``, the rnnumba peer only:
training step and predict, the four sizes, both dtypes) of the base checkout
and of this one, each in its own process, alternating, ``--rounds`` times
after a warm-up round that fills both kernel caches. Prints, per step, the
median of each checkout's medians and their ratio (new / base; below 1 is
faster). Each checkout runs its own copy of the benchmark file.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def bench(tree, cells, out):
    env = dict(os.environ, RNNUMBA_BENCH_CELLS=cells, RNNUMBA_BENCH_PEERS="rnnumba", PYTHONWARNINGS="ignore")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "not compile_time"]
    cmd += [os.path.join(tree, "benchmarks", "test_engine_bench.py"), f"--benchmark-json={out}"]
    subprocess.run(cmd, env=env, cwd=tree, check=True, stdout=subprocess.DEVNULL)
    with open(out) as f:
        rows = json.load(f)["benchmarks"]
    return {
        (
            r["extra_info"]["what"],
            r["extra_info"]["cell"],
            r["extra_info"]["size"],
            r["extra_info"]["dtype"],
        ): r["stats"]["median"]
        for r in rows
    }


def fmt(seconds):
    return f"{seconds * 1e6:.1f} us" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="the other checkout (a git worktree)")
    ap.add_argument("--cells", default="elman")
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args(argv)
    trees = {"base": os.path.abspath(a.base), "new": ROOT}
    runs = {name: [] for name in trees}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds + 1):
            for name, tree in trees.items():
                print(
                    f"round {r} ({'warm-up' if r == 0 else 'measured'}): {name}", file=sys.stderr, flush=True
                )
                medians = bench(tree, a.cells, os.path.join(tmp, f"{name}-{r}.json"))
                if r:
                    runs[name].append(medians)
    keys = sorted(
        runs["new"][0],
        key=lambda k: (k[0], k[1], ["seed", "small-long", "medium", "large"].index(k[2]), k[3]),
    )
    print(
        f"rnnumba {os.path.basename(trees['base'])} (base) against this checkout (new), {a.rounds} rounds\n"
    )
    print("| step | base | new | new / base | per round (new / base) |")
    print("|---|---|---|---|---|")
    for key in keys:
        base = statistics.median(run[key] for run in runs["base"])
        new = statistics.median(run[key] for run in runs["new"])
        each = ", ".join(f"{n[key] / b[key]:.2f}" for n, b in zip(runs["new"], runs["base"], strict=True))
        print(f"| {' '.join(key)} | {fmt(base)} | {fmt(new)} | {new / base:.2f} | {each} |")


if __name__ == "__main__":
    main()
