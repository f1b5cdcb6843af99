"""rnnumba's GPU backend: a correctness check against the CPU engine, then the
time of one training step (forward + BPTT + SGD update, many-to-one, mse,
float32) of each cell against PyTorch cuDNN (nn.RNN / nn.LSTM / nn.GRU +
nn.Linear on cuda), printed as Markdown tables.

    PYTHONPATH=. python benchmarks/gpu.py            # on a GPU (about 3-6 minutes)
    PYTHONPATH=. python benchmarks/gpu.py --dry-run  # tiny sizes in the CUDA simulator, no torch

rnnumba's step is timed inside a device-resident epoch (DeviceTrainer: the
data uploaded once, every step on the device, one host sync per epoch);
PyTorch's as a loop of steps on device tensors with one synchronize at the
end. Compile time is reported separately.
"""

import argparse
import os
import sys
import time

DRY = "--dry-run" in sys.argv
if DRY:  # must precede the first import of numba.cuda
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"


import numpy as np  # noqa: E402

from rnnumba.layout import Layout  # noqa: E402
from rnnumba.network import RNN  # noqa: E402

SIZES = [(20, 3, 1, 26), (64, 50, 8, 128), (256, 100, 64, 512), (1024, 100, 64, 256)]  # (B, T, I, H)
DRY_SIZES = [(4, 3, 2, 3)]
CELLS = ("elman", "lstm", "gru")
VARIANTS = {  # correctness: name -> (cell, peephole, reset_after)
    "elman": ("elman", False, True),
    "lstm": ("lstm", False, True),
    "lstm+peephole": ("lstm", True, True),
    "gru": ("gru", False, True),
    "gru (Cho)": ("gru", False, False),
}
STRATEGIES = ("persistent", "persistent-global", "stepwise")
BUDGET_S = 450  # stop timing new sizes past this (the whole run must stay under 8 minutes)


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


# --------------------------------------------------------------------------- correctness
def check_against_cpu(strategies):
    """float64 GPU vs the CPU engine: 2 layers, bidirectional, ragged lengths."""
    from rnnumba.gpu import DeviceEngine

    rows = []
    N, T, I, H = (3, 3, 2, 2) if DRY else (6, 7, 3, 8)
    lengths = np.array(([1, 3, 2] if DRY else [7, 1, 4, 7, 2, 5]), dtype=np.int64)
    layers = 1 if DRY else 2
    for name, (cell, peep, ra) in VARIANTS.items():
        for many, loss in ((False, "mse"), (True, "xent")):
            if DRY and many:
                continue
            O = 3 if loss == "xent" else 2
            layout = Layout(cell, I, H, O, layers, True, peep, ra)
            rng = np.random.default_rng(0)
            theta = rng.normal(0, 0.5, layout.n_params)
            X = rng.normal(size=(N, T, I))
            if loss == "mse":
                y = rng.normal(size=(N, O))
                Y = y[:, None, :]
                count = N * O
            else:
                y = rng.integers(0, O, (N, T))
                Y = y[:, :, None].astype(np.float64)
                count = int(lengths.sum())
            net = RNN(
                I, H, O, cell=cell, num_layers=layers, bidirectional=True, peephole=peep, reset_after=ra
            )
            v_cpu, g_cpu = net.loss_and_grad(X, y, lengths=lengths, loss=loss, theta=theta)
            for strategy in strategies:
                eng = DeviceEngine(layout, np.float64, strategy)
                grad = np.empty_like(theta)
                value = eng.loss_and_grad(theta, grad, X, lengths, Y, loss, 1.0 / count, many)
                rows.append(
                    (
                        name,
                        "many-to-many xent" if many else "many-to-one mse",
                        eng.plan(N)[0],
                        abs(value - v_cpu) / abs(v_cpu),
                        rel_err(grad, g_cpu),
                    )
                )
    return rows


# --------------------------------------------------------------------------- timing
def make_data(B, T, I, steps, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(B * steps, T, I)).astype(np.float32)
    Y = rng.normal(size=(B * steps, 1, 1)).astype(np.float32)
    return X, Y


def time_rnnumba(cell, B, T, I, H, X, Y, strategy, steps):
    """(strategy used, first-epoch seconds incl. compile, ms per step, bitwise repeatable)."""
    from rnnumba.gpu import DeviceTrainer

    layout = Layout(cell, I, H, 1)
    net = RNN(I, H, 1, cell=cell, dtype=np.float32, random_state=0)
    lengths = np.full(X.shape[0], T, dtype=np.int64)
    tr = DeviceTrainer(
        layout, net.theta, X, lengths, Y, "mse", False, "sgd", lr=1e-3, batch_size=B, strategy=strategy
    )
    used = tr.engine.plan(B)[0]
    t0 = time.perf_counter()
    tr.epoch(np.array([0]))  # compiles on first use
    first = time.perf_counter() - t0
    order = np.arange(steps)
    t0 = time.perf_counter()
    tr.epoch(order)
    per_step = (time.perf_counter() - t0) / steps * 1e3
    # determinism: the same epoch from the same start twice, bitwise
    a = DeviceTrainer(
        layout,
        net.theta,
        X[: 2 * B],
        lengths[: 2 * B],
        Y[: 2 * B],
        "mse",
        False,
        "sgd",
        lr=1e-3,
        batch_size=B,
        strategy=strategy,
        engine=tr.engine,
    )
    b = DeviceTrainer(
        layout,
        net.theta,
        X[: 2 * B],
        lengths[: 2 * B],
        Y[: 2 * B],
        "mse",
        False,
        "sgd",
        lr=1e-3,
        batch_size=B,
        strategy=strategy,
        engine=tr.engine,
    )
    ma, _ = a.epoch(np.array([1, 0]))
    mb, _ = b.epoch(np.array([1, 0]))
    same = bool(ma == mb and np.array_equal(a.theta(), b.theta()))
    return used, first, per_step, same


def time_torch(torch, cell, B, T, I, H, X, Y, steps):
    dev = torch.device("cuda")
    module = {"elman": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    rnn = module(I, H, batch_first=True).to(dev)
    head = torch.nn.Linear(H, 1).to(dev)
    opt = torch.optim.SGD(list(rnn.parameters()) + list(head.parameters()), lr=1e-3)
    Xd = torch.from_numpy(X).to(dev)
    Yd = torch.from_numpy(Y[:, 0, :]).to(dev)

    def step(k):
        x, y = Xd[k * B : (k + 1) * B], Yd[k * B : (k + 1) * B]
        opt.zero_grad(set_to_none=True)
        out, _ = rnn(x)
        loss = torch.nn.functional.mse_loss(head(out[:, -1]), y)
        loss.backward()
        opt.step()

    for k in range(3):
        step(k % steps)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for k in range(steps):
        step(k)
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps * 1e3


def steps_for(B, T, H):
    work = B * T * H * H
    return int(min(50, max(3, 2e10 // max(work, 1))))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes in the CUDA simulator, no torch")
    args = parser.parse_args()
    start = time.perf_counter()
    from rnnumba.gpu import available

    ok, why = available()
    print(f"# rnnumba GPU benchmark{' (dry run: CUDA simulator, tiny sizes)' if args.dry_run else ''}\n")
    print(f"device: {why}")
    if not ok:
        print("no usable GPU: nothing to measure")
        return 1
    torch = None
    if not args.dry_run:
        try:
            import torch as _torch

            torch = _torch if _torch.cuda.is_available() else None
        except ImportError:
            torch = None
        if torch is not None:
            print(
                f"PyTorch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}, "
                f"cudnn.allow_tf32={torch.backends.cudnn.allow_tf32}"
            )
        else:
            print("PyTorch with CUDA not available: its column stays empty")

    print("\n## Correctness: GPU (float64) vs the CPU engine, 2 layers, bidirectional, ragged lengths\n")
    print("| cell | head / loss | strategy | loss rel. err | grad max rel. err |")
    print("|---|---|---|---|---|")
    worst = 0.0
    for name, mode, strategy, e_loss, e_grad in check_against_cpu(STRATEGIES):
        worst = max(worst, e_loss, e_grad)
        print(f"| {name} | {mode} | {strategy} | {e_loss:.1e} | {e_grad:.1e} |")
    print(f"\nworst relative error: {worst:.1e} ({'OK' if worst < 1e-9 else 'MISMATCH'})")

    print("\n## Training step (forward + BPTT + SGD update), float32, many-to-one, mse\n")
    if args.dry_run:
        print("(simulator timings: they only show that every path runs)\n")
    print(
        "| cell | B | T | I | H | strategy | rnnumba ms/step | other strategy: ms/step | "
        "PyTorch cuDNN ms/step | cuDNN / rnnumba | first epoch s (compile) | bitwise repeat |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for B, T, I, H in DRY_SIZES if args.dry_run else SIZES:
        if time.perf_counter() - start > BUDGET_S:
            print(f"| (skipped B={B} T={T} H={H}: time budget) |||||||||||")
            continue
        steps = 2 if args.dry_run else steps_for(B, T, H)
        X, Y = make_data(B, T, I, steps)
        for cell in CELLS:
            used, first, ms, same = time_rnnumba(cell, B, T, I, H, X, Y, "auto", steps)
            # is the threshold right? time the runner-up too
            alt = "stepwise" if used != "stepwise" else "persistent-global"
            try:
                _, _, ms2, _ = time_rnnumba(cell, B, T, I, H, X, Y, alt, steps)
                other = f"{alt}: {ms2:.3f}"
            except ValueError:  # does not fit
                other = "—"
            tms = time_torch(torch, cell, B, T, I, H, X, Y, steps) if torch is not None else None
            tcol = "—" if tms is None else f"{tms:.3f}"
            ratio = "—" if tms is None else f"{tms / ms:.2f}x"
            print(
                f"| {cell} | {B} | {T} | {I} | {H} | {used} | {ms:.3f} | {other} | {tcol} | {ratio} | "
                f"{first:.1f} | {'yes' if same else 'NO'} |",
                flush=True,
            )
    print(f"\ntotal time {time.perf_counter() - start:.0f} s")
    return 0 if worst < 1e-9 else 2


if __name__ == "__main__":
    sys.exit(main())
