"""Reproduce the seed experiment with ``rnnumba.fit`` and print a Markdown table.

The seed (Torch7, 2015): an Elman RNN, hidden 26 (755 parameters), plain SGD
with lr 0.02 and batch 20 for 20 epochs on the first 140,000 of 200,000 toy
sequences; it reached train MSE 0.0645 and test MSE 0.0757 (see
``docs/toy-data.md``). This script runs that for several seeds, then fits the
same data with ``solver="L-BFGS-B"``.

    python benchmarks/seed_experiment.py                 # 3 seeds + L-BFGS-B 500 iterations
    python benchmarks/seed_experiment.py --quick         # a smoke run on 20,000 sequences

Compile time (or loading compiled code from the disk cache) is measured once
by a warm-up fit and reported apart from the training times.
"""

import argparse
import os
import platform
import sys
import time

import numpy as np

import rnnumba
from rnnumba.datasets import make_toy

SEED_TEST_MSE = {0: 34.07, 1: 0.433, 3: 0.097, 5: 0.083, 10: 0.073, 15: 0.067, 20: 0.064}


def split(n_samples, data_seed):
    X, z = make_toy(n_samples, random_state=data_seed)
    n_train = n_samples * 7 // 10
    return X[:n_train], z[:n_train], X[n_train:], z[n_train:]


def mse(model, X, z):
    return float(np.mean((model.predict(X) - z) ** 2))


def run_sgd(data, seed, epochs):
    Xtr, ztr, Xte, zte = data
    test_curve, spent = [], [0.0]

    def record(model, epoch, loss):  # per-epoch test MSE, its time kept out of the training time
        t = time.perf_counter()
        test_curve.append(mse(model, Xte, zte))
        spent[0] += time.perf_counter() - t

    before = mse(rnnumba.fit(Xtr, ztr, hidden=26, epochs=0, random_state=seed), Xte, zte)
    t0 = time.perf_counter()
    model = rnnumba.fit(
        Xtr, ztr, hidden=26, batch_size=20, lr=0.02, epochs=epochs, random_state=seed, callbacks=record
    )
    wall = time.perf_counter() - t0 - spent[0]
    return dict(
        model=model,
        wall=wall,
        before=before,
        test_curve=test_curve,
        running=model.loss_curve_[-1],
        train=mse(model, Xtr, ztr),
        test=mse(model, Xte, zte),
    )


def run_lbfgs(data, iters, seed):
    Xtr, ztr, Xte, zte = data
    t0 = time.perf_counter()
    model = rnnumba.fit(Xtr, ztr, hidden=26, solver="L-BFGS-B", epochs=iters, random_state=seed)
    wall = time.perf_counter() - t0
    r = model.optimize_result_
    return dict(
        model=model,
        wall=wall,
        nit=r.nit,
        nfev=r.nfev,
        message=str(r.message),
        train=mse(model, Xtr, ztr),
        test=mse(model, Xte, zte),
    )


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--lbfgs-iter", type=int, default=500)
    p.add_argument("--samples", type=int, default=200_000)
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument(
        "--quick", action="store_true", help="20,000 sequences, 1 seed, 3 epochs, 20 L-BFGS-B iterations"
    )
    a = p.parse_args()
    if a.quick:
        a.samples, a.seeds, a.epochs, a.lbfgs_iter = 20_000, a.seeds[:1], 3, 20
    data = split(a.samples, a.data_seed)

    t0 = time.perf_counter()
    rnnumba.fit(data[0][:200], data[1][:200], hidden=26, epochs=1, random_state=0)
    rnnumba.fit(data[0][:200], data[1][:200], hidden=26, solver="L-BFGS-B", epochs=2, random_state=0)
    warm = time.perf_counter() - t0

    runs = {}
    for seed in a.seeds:
        runs[seed] = r = run_sgd(data, seed, a.epochs)
        print(f"SGD seed {seed}: test MSE {r['test']:.4f} in {r['wall']:.1f} s", file=sys.stderr, flush=True)
    lb = run_lbfgs(data, a.lbfgs_iter, a.seeds[0]) if a.lbfgs_iter > 0 else None

    n_train, n_test = len(data[1]), len(data[3])
    print(
        f"Seed experiment: {n_train:,} train / {n_test:,} test sequences (data seed {a.data_seed}), "
        f"Elman RNN hidden 26 ({runs[a.seeds[0]]['model'].n_params_} parameters)."
    )
    print(
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, NUMBA_NUM_THREADS="
        f"{os.environ.get('NUMBA_NUM_THREADS', 'default')}; rnnumba {rnnumba.__version__}, numpy "
        f"{np.__version__}. Compile or cache load (warm-up): {warm:.1f} s.\n"
    )
    print(
        "| run | seed | epochs / iterations | train MSE (running, last epoch) | train MSE | test MSE "
        "| wall time (s) |"
    )
    print("|---|---|---|---|---|---|---|")
    print("| Torch7 original (2015) | - | 20 | 0.0645 | - | 0.0757 | - |")
    for seed, r in runs.items():
        print(
            f"| SGD lr 0.02, batch 20 | {seed} | {a.epochs} | {r['running']:.4f} | {r['train']:.4f} "
            f"| {r['test']:.4f} | {r['wall']:.1f} |"
        )
    tests = np.array([r["test"] for r in runs.values()])
    walls = np.array([r["wall"] for r in runs.values()])
    print(
        f"| SGD, mean over {len(runs)} seeds | - | {a.epochs} | "
        f"{np.mean([r['running'] for r in runs.values()]):.4f} | "
        f"{np.mean([r['train'] for r in runs.values()]):.4f} | {tests.mean():.4f} | {walls.mean():.1f} |"
    )
    if lb is not None:
        print(
            f"| L-BFGS-B, full batch | {a.seeds[0]} | {lb['nit']} ({lb['nfev']} evaluations) | - "
            f"| {lb['train']:.4f} | {lb['test']:.4f} | {lb['wall']:.1f} |"
        )
    steps = -(-n_train // 20) * a.epochs
    print(
        f"\nSGD: {steps:,} minibatch steps per run, {1e6 * walls.mean() / steps:.0f} us per step "
        "(forward + BPTT + update, all inside one compiled call per epoch)."
    )
    if lb is not None:
        print(f"L-BFGS-B stopped with: {lb['message']}")
    print(
        "\nTest MSE per epoch (original: " + ", ".join(f"{k}: {v}" for k, v in SEED_TEST_MSE.items()) + ")\n"
    )
    marks = [k for k in SEED_TEST_MSE if k <= a.epochs]
    print("| seed | " + " | ".join(f"epoch {k}" for k in marks) + " |")
    print("|---|" + "---|" * len(marks))
    for seed, r in runs.items():
        curve = [r["before"]] + r["test_curve"]
        print(f"| {seed} | " + " | ".join(f"{curve[k]:.4f}" if k < len(curve) else "-" for k in marks) + " |")


if __name__ == "__main__":
    main()
