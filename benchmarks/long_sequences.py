"""Long sequences: peak memory and time of one pass of training over N = 64 sequences.

    python benchmarks/long_sequences.py [--T 1000,10000,100000] [--dtypes float32,float64]
                                        [--hidden 128] [--predict] [--stack [--bidirectional]]
                                        [--out long.json]

Every row runs in a process of its own. "peak" is the process's peak RSS
(``ru_maxrss``) over training, less its RSS before any training call (imports
and the data: about 270 MB at T = 100,000 in float64); the kernels are loaded
from the cache on a few steps first. "time" is the best of the repeats (one at
T = 100,000).

* ``exact``: ``RNN.loss_and_grad`` over the whole batch (Elman, hidden 128, one
  output per sequence) as a user calls it: the exact gradient, with
  checkpointed BPTT where full storage would pass 512 MB (``memory="auto"``).
* ``checkpoint``: the same with ``memory="checkpoint"`` at every T.
* ``full``: ``memory="full"`` with the 512 MB blocks lifted, where the estimate
  fits in the memory available: every step kept, one pass.
* ``blocks``: ``memory="full"``: over 512 MB, blocks of rows (``rnnumba.memory``),
  each with every step kept.
* ``truncated k``: one epoch of ``bptt_steps=k`` (batch 64, Adam): T/k windows,
  each a step (the gradient of each window only).
* ``torch``: ``nn.RNN`` (tanh) + ``nn.Linear``, forward and backward, where
  its memory (an estimate) fits.
* ``stack, checkpoint`` / ``stack, full`` (``--stack``): two LSTM layers with an
  output per step (lockstep, ``rnnumba/lockstep.py``), checkpoints or every step kept.
  ``bistack, ...`` (``--stack --bidirectional``): the same, bidirectional
  (``rnnumba/bilockstep.py``). ``..., auto``: ``memory="auto"`` as a user
  calls it, the 512 MB blocks included (a bidirectional stack takes the
  checkpointed walks that keep its layers' outputs while they fit).
* ``predict`` (``--predict``: N = 2,000, T = 20,000, float32): ``RNN.predict``,
  from checkpoints (past 64 MB of full storage); ``predict, every step kept``: the same
  with full storage (the engine before checkpoints).

The same work per row: every row reads the N x T inputs once forward and once
backward (truncated: plus a forward for the carried state).
"""

import argparse
import json
import subprocess
import sys
import textwrap

ROW = textwrap.dedent(
    """
    import json, resource, sys, time
    import numpy as np
    kind, T, dtype, H, k = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    N, repeats = (2000 if kind.startswith("predict") else 64), (3 if T <= 10_000 else 1)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(N, T, 1)).astype(dtype), rng.normal(size=N).astype(dtype)
    peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    before = peak()
    if kind == "torch":
        import torch
        torch.set_num_threads(2)
        dt = {"float32": torch.float32, "float64": torch.float64}[dtype]
        rnn, head = torch.nn.RNN(1, H, batch_first=True).to(dt), torch.nn.Linear(H, 1).to(dt)
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        def run(Xt=Xt):
            out, _ = rnn(Xt)
            loss = ((head(out[:, -1])[:, 0] - yt) ** 2).mean()
            loss.backward()
        run(Xt[:, :5].contiguous())
    else:
        import rnnumba
        from rnnumba import memory
        if kind == "full":
            memory.BLOCK_BYTES = 1 << 62
        how = {"checkpoint": "checkpoint", "full": "full", "blocks": "full"}.get(kind, "auto")
        if "stack" in kind:  # two LSTM layers, an output per step: lockstep (bistack: bidirectional)
            if not kind.endswith("auto"):  # "auto": as a user calls it, blocks of rows included
                memory.BLOCK_BYTES = 1 << 62
            net = rnnumba.RNN(1, H, 1, cell="lstm", num_layers=2, bidirectional=kind.startswith("bi"),
                              dtype=dtype, random_state=0)
            Y = rng.normal(size=(N, T, 1)).astype(dtype)
            net.loss_and_grad(net.prepare(X[:, :300], Y[:, :300]), memory="checkpoint")  # kernels loaded
            batch = net.prepare(X, Y)
            run = lambda: net.loss_and_grad(batch, memory=kind.split(", ")[1])
        elif kind.startswith("predict"):
            net = rnnumba.RNN(1, H, 1, dtype=dtype, random_state=0)
            if kind == "predict, every step kept":  # the engine before checkpoints
                from rnnumba.backends import cpu

                cpu.PREDICT_FULL_BYTES = 1 << 62
            net.predict(X[:, :300])  # kernels loaded
            run = lambda: net.predict(X)
        elif kind.startswith("truncated"):
            model = rnnumba.RNNRegressor(H, solver="adam", lr=1e-3, batch_size=N, epochs=1, bptt_steps=k,
                                         standardize=False, dtype=dtype, random_state=0)
            model.fit(X[:, :k], y)  # kernels loaded
            run = lambda: model.set_params(warm_start=True).fit(X, y)
        else:
            net = rnnumba.RNN(1, H, 1, dtype=dtype, random_state=0)
            net.loss_and_grad(net.prepare(X[:, :300], y), memory="checkpoint")  # kernels loaded
            batch = net.prepare(X, y)
            run = lambda: net.loss_and_grad(batch, memory=how)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    grown = (peak() - before) / 2**20
    print(json.dumps({"seconds": min(times), "peak_MB": grown, "base_MB": before / 2**20}))
    """
)


def measure(kind, T, dtype, hidden, k=0):
    """Run one row in a fresh process; its numbers, or the reason it did not run."""
    out = subprocess.run(
        [sys.executable, "-c", ROW, kind, str(T), dtype, str(hidden), str(k)], capture_output=True, text=True
    )
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["?"])[-1][:200]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--T", default="1000,10000,100000")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--predict", action="store_true", help="only the predict rows (N = 2,000, T = 20,000)")
    ap.add_argument("--stack", action="store_true", help="only a 2-layer LSTM with an output per step")
    ap.add_argument("--bidirectional", action="store_true", help="with --stack: a bidirectional one")
    ap.add_argument("--out")
    a = ap.parse_args()
    sys.path.insert(0, ".")
    import rnnumba  # noqa: F401  (the estimate below)
    from rnnumba import RNN, memory

    layout = RNN(1, a.hidden, 1).layout
    have = memory.available_bytes() or 0
    rows = []
    print("| T | dtype | what | time (s) | peak over the start (MB) | RSS at the start (MB) |")
    print("|---|---|---|---|---|---|")
    if a.predict:
        for kind in ("predict", "predict, every step kept"):
            r = dict(T=20_000, dtype="float32", what=kind, **measure(kind, 20_000, "float32", a.hidden))
            rows.append(r)
            shown = r.get("error") or f"{r['seconds']:.3f} | {r['peak_MB']:.0f} | {r['base_MB']:.0f}"
            print(f"| 20000 (N = 2000) | float32 | {kind} | {shown} |", flush=True)
    if a.stack:
        stack = RNN(1, a.hidden, 1, cell="lstm", num_layers=2, bidirectional=a.bidirectional).layout
        name = "bistack" if a.bidirectional else "stack"
        for T in (int(t) for t in a.T.split(",")):
            for dtype in a.dtypes.split(","):
                whole = memory.training_bytes(stack, 64, T, 4 if dtype == "float32" else 8, True)
                safe = whole < min(0.5 * have, 4 * 2**30)
                kinds = [f"{name}, checkpoint", f"{name}, auto"] + ([f"{name}, full"] if safe else [])
                for kind in kinds:
                    r = dict(T=T, dtype=dtype, what=kind, **measure(kind, T, dtype, a.hidden))
                    rows.append(r)
                    shown = r.get("error") or f"{r['seconds']:.3f} | {r['peak_MB']:.0f} | {r['base_MB']:.0f}"
                    print(f"| {T} | {dtype} | {kind} | {shown} |", flush=True)
    for T in (int(t) for t in (a.T.split(",") if not (a.predict or a.stack) else [])):
        for dtype in a.dtypes.split(","):
            size = 4 if dtype == "float32" else 8
            whole = memory.training_bytes(layout, 64, T, size, False)
            kinds = [("exact", 0), ("checkpoint", 0)]
            if whole < min(0.5 * have, 4 * 2**30):  # every step kept, where that is safe
                kinds.append(("full", 0))
            if whole > memory.BLOCK_BYTES:
                kinds.append(("blocks", 0))
            if 64 * T * a.hidden * size * 4 < 0.5 * have:
                kinds.append(("torch", 0))
            kinds.append((f"truncated {max(1, int(T**0.5))}", max(1, int(T**0.5))))
            for kind, k in kinds:
                r = dict(T=T, dtype=dtype, what=kind, **measure(kind, T, dtype, a.hidden, k))
                rows.append(r)
                shown = r.get("error") or f"{r['seconds']:.3f} | {r['peak_MB']:.0f} | {r['base_MB']:.0f}"
                print(f"| {T} | {dtype} | {kind} | {shown} |", flush=True)
    if a.out:
        with open(a.out, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
