"""The full seed run (140,000 SGD steps: hidden 26, batch 20, lr 0.02, 20 epochs)
timed for rnnumba.fit and for PyTorch doing the same steps on the CPU, in one run.

    PYTHONPATH=. python benchmarks/seed_vs_torch.py [--epochs 20]

rnnumba's time is given with compilation loaded from the cache and, separately,
with a cold compile (a fresh NUMBA_CACHE_DIR in a subprocess).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

import rnnumba
from rnnumba.datasets import load_toy

COLD = "import time, rnnumba, numpy as np; t = time.perf_counter(); rnnumba.fit(np.random.rand(40, 3), np.random.rand(40), hidden=26, epochs=1, batch_size=20); print(time.perf_counter() - t)"  # noqa: E501


def torch_run(d, epochs, seed):
    import torch

    torch.set_num_threads(int(os.environ.get("NUMBA_NUM_THREADS", os.cpu_count())))
    torch.manual_seed(seed)
    rnn, head = torch.nn.RNN(1, 26, batch_first=True).double(), torch.nn.Linear(26, 1).double()
    opt = torch.optim.SGD(list(rnn.parameters()) + list(head.parameters()), lr=0.02)
    X = torch.from_numpy(d.X_train[:, :, None].copy())
    y = torch.from_numpy(d.y_train[:, None].copy())
    rng = np.random.default_rng(seed)
    blocks = len(X) // 20
    t0 = time.perf_counter()
    for _ in range(epochs):
        for k in rng.permutation(blocks):
            xb, yb = X[20 * k : 20 * k + 20], y[20 * k : 20 * k + 20]
            opt.zero_grad()
            loss = torch.mean((head(rnn(xb)[1][-1]) - yb) ** 2)
            loss.backward()
            opt.step()
    wall = time.perf_counter() - t0
    with torch.no_grad():
        pred = head(rnn(torch.from_numpy(d.X_test[:, :, None].copy()))[1][-1]).numpy()[:, 0]
    return wall, float(np.mean((pred - d.y_test) ** 2))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=20)
    args = p.parse_args()
    d = load_toy("fixed", random_state=0)
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        cold = float(
            subprocess.run(
                [sys.executable, "-c", COLD], env=env, capture_output=True, text=True, check=True
            ).stdout
        )
    rnnumba.fit(d.X_train[:40], d.y_train[:40], hidden=26, epochs=1, batch_size=20)  # load the cache
    t0 = time.perf_counter()
    model = rnnumba.fit(
        d.X_train,
        d.y_train,
        hidden=26,
        batch_size=20,
        lr=0.02,
        epochs=args.epochs,
        random_state=0,
        standardize=False,
    )
    ours = time.perf_counter() - t0
    ours_test = float(np.mean((model.predict(d.X_test) - d.y_test) ** 2))
    theirs, theirs_test = torch_run(d, args.epochs, 0)
    steps = args.epochs * (len(d.X_train) // 20)
    print(f"{steps} SGD steps (hidden 26, batch 20, lr 0.02, float64, {os.cpu_count()} cores)")
    print("| | wall (s) | per step (us) | test MSE | PyTorch / rnnumba |")
    print("|---|---|---|---|---|")
    print(
        f"| rnnumba.fit, compiled code from the cache | {ours:.1f} | {ours / steps * 1e6:.1f} | {ours_test:.4f} | "  # noqa: E501
        f"{theirs / ours:.1f}x |"
    )
    print(
        f"| rnnumba.fit + a cold compile ({cold:.1f} s) | {ours + cold:.1f} | | | {theirs / (ours + cold):.1f}x |"  # noqa: E501
    )
    print(
        f"| PyTorch {__import__('torch').__version__} (nn.RNN + nn.Linear + optim.SGD) | {theirs:.1f} | "
        f"{theirs / steps * 1e6:.1f} | {theirs_test:.4f} | 1x |"
    )


if __name__ == "__main__":
    main()
