"""The seed author's follow-ups, reproduced with ``rnnumba.fit``: an LSTM and a
GRU with hidden 16 on the variable-length {3, 4} toy data, batch 32, lr 0.2,
5 epochs of plain SGD (the original LSTM reached train MSE 0.048).

    python benchmarks/followups.py [--seeds 0 1 2]
"""

import argparse
import time

import numpy as np

import rnnumba
from rnnumba.datasets import load_toy


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    d = load_toy("varlen", random_state=0)
    print("| cell | seed | parameters | train MSE (running, epoch 5) | train MSE | test MSE | wall (s) |")
    print("|---|---|---|---|---|---|---|")
    for cell in ("lstm", "gru"):
        rnnumba.fit(
            d.X_train[:64], d.y_train[:64], hidden=16, cell=cell, lengths=d.lengths_train[:64], epochs=1
        )
        for seed in args.seeds:
            t0 = time.perf_counter()
            model = rnnumba.fit(
                d.X_train,
                d.y_train,
                hidden=16,
                cell=cell,
                lengths=d.lengths_train,
                batch_size=32,
                lr=0.2,
                epochs=5,
                random_state=seed,
            )
            wall = time.perf_counter() - t0
            train = np.mean((model.predict(d.X_train, lengths=d.lengths_train) - d.y_train) ** 2)
            test = np.mean((model.predict(d.X_test, lengths=d.lengths_test) - d.y_test) ** 2)
            print(
                f"| {cell} | {seed} | {model.n_params_} | {model.loss_curve_[-1]:.4f} | {train:.4f} | "
                f"{test:.4f} | {wall:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
