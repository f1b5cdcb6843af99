"""L-BFGS-B on the seed's toy data: one process vs Dask with 1 and 2 workers.

    PYTHONPATH=. python benchmarks/dask_lbfgs.py                  # 200k and 2M sequences
    PYTHONPATH=. python benchmarks/dask_lbfgs.py --sizes 200000 --maxiter 30

For each size: the seed's Elman net (H=26, 755 parameters), the same start,
``scipy.optimize.minimize(method="L-BFGS-B")`` on the full-batch MSE

* in this process (``RNN.objective``, numba on every core),
* on a ``LocalCluster`` of 1 worker and of 2 workers (1 Dask thread each; numba
  threads per task = cores // Dask threads), data in 4 chunks either way, so
  the two Dask runs follow bitwise the same path.

Compilation is done before any clock starts (a small in-process call writes
the disk cache, the workers' warm-up reads it); the Dask set-up (validating
and persisting the chunks, the warm-up) is timed separately. Then a short
local-SGD check: 2 replicas with the learning rate scaled by 2 against one
process, 3 epochs of the seed's SGD. Prints Markdown.
"""

import argparse
import os
import platform
import time
import warnings

import numpy as np

# da.from_array(ndarray) puts the data in the graph (48 MB at 2M): that is what gives the
# chunks a lineage to recompute from after a lost worker, so the warning is expected here
warnings.filterwarnings("ignore", message="Large object of size")


def lbfgs_in_process(net, X, y, maxiter):
    import scipy.optimize

    f = net.objective(X, y)
    curve = [f(net.theta)[0]]
    evals = [0]

    def fun(theta):
        evals[0] += 1
        return f(theta)

    last = {}

    def remember(theta):
        value, grad = fun(theta)
        last["x"], last["f"] = np.array(theta), value
        return value, grad

    def cb(xk):
        curve.append(last["f"] if np.array_equal(xk, last["x"]) else f(xk)[0])

    t0 = time.perf_counter()
    res = scipy.optimize.minimize(
        remember, net.theta.copy(), jac=True, method="L-BFGS-B", options={"maxiter": maxiter}, callback=cb
    )
    wall = time.perf_counter() - t0
    return dict(wall=wall, nit=res.nit, evals=evals[0], curve=curve, setup=0.0, fun=res.fun)


def lbfgs_dask(net, X, y, maxiter, n_workers, chunks):
    import dask.array as da
    from distributed import Client, LocalCluster

    from rnnumba import distributed as rd

    with (
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        t0 = time.perf_counter()
        Xd = da.from_array(X, chunks=(chunks, -1))
        yd = da.from_array(y, chunks=chunks)
        data = rd.DaskData(net, Xd, yd, client=client)
        setup = time.perf_counter() - t0
        t0 = time.perf_counter()
        _, res, curve = rd.fit_full_batch(net, data=data, options={"maxiter": maxiter})
        wall = time.perf_counter() - t0
        threads = data.threads
        data.close()
    # fit_full_batch evaluates the start before scipy does; scipy's first call is then cached
    return dict(
        wall=wall,
        nit=res.nit,
        evals=res.n_calls,
        curve=list(curve),
        setup=setup,
        fun=res.fun,
        threads=threads,
    )


def local_sgd_check(n, epochs):
    import dask.array as da
    from distributed import Client, LocalCluster

    from rnnumba import RNN
    from rnnumba import distributed as rd
    from rnnumba.datasets import load_toy
    from rnnumba.distributed.tasks import load_objective
    from rnnumba.solvers import FirstOrder

    d = load_toy(n_samples=n, random_state=0)
    N = d.X_train.shape[0]
    ref = RNN(1, 26, random_state=0)
    data = ref.prepare(d.X_train, d.y_train)
    load_objective(ref)  # before a cached _epoch (numba#8578)
    opt, rng = FirstOrder(ref, "sgd", lr=0.02, batch_size=20), np.random.default_rng(0)
    mem, t0 = [], time.perf_counter()
    for _ in range(epochs):
        opt.epoch(data, rng.permutation(opt.n_blocks(N)))
        mem.append(ref.loss_and_grad(d.X_test, d.y_test)[0])
    t_mem = time.perf_counter() - t0
    rows = {}
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        ) as c,
        Client(c) as client,
    ):
        Xd = da.from_array(d.X_train, chunks=(N // 4, -1))
        yd = da.from_array(d.y_train, chunks=N // 4)
        for R, lr in ((2, 0.02), (2, 0.04), (1, 0.02)):
            net, test = RNN(1, 26, random_state=0), []

            def record(epoch, theta, _, test=test):
                probe = RNN(1, 26).set_theta(theta)
                test.append(probe.loss_and_grad(d.X_test, d.y_test)[0])

            t0 = time.perf_counter()
            rd.fit_minibatch(net, Xd, yd, client=client, options=dict(lr=lr, batch_size=20), epochs=epochs,
                             replicas=R, random_state=0, callback=record)  # fmt: skip
            rows[(R, lr)] = (test, time.perf_counter() - t0)
    return mem, t_mem, rows


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[200_000, 2_000_000])
    p.add_argument("--maxiter", type=int, nargs="+", default=[30, 10], help="per size (last one repeats)")
    p.add_argument("--sgd-samples", type=int, default=200_000, help="0 skips the local-SGD check")
    p.add_argument("--sgd-epochs", type=int, default=3)
    args = p.parse_args()

    import numba

    from rnnumba import RNN
    from rnnumba.datasets import make_toy
    from rnnumba.preprocessing import Standardizer

    RNN(1, 26).loss_and_grad(np.zeros((4, 3)), np.zeros(4))  # compile or load before any clock
    print(f"# Dask L-BFGS-B benchmark ({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"numba {numba.__version__}, {numba.get_num_threads()} numba threads in-process)\n")  # fmt: skip
    results = {}
    for i, n in enumerate(args.sizes):
        maxiter = args.maxiter[min(i, len(args.maxiter) - 1)]
        X, z = make_toy(n, random_state=0)
        X = Standardizer().fit_transform(X)
        runs = {"in-process": lbfgs_in_process(RNN(1, 26, random_state=0), X, z, maxiter)}
        for w in (1, 2):
            runs[f"dask, {w} worker{'s' * (w > 1)}"] = lbfgs_dask(
                RNN(1, 26, random_state=0), X, z, maxiter, w, n // 4
            )
        results[n] = runs

    print("## Per-iteration time\n")
    print("| sequences | run | numba threads per task | set-up s | iterations | evaluations | s / iteration "
          "| s / evaluation | final loss |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for n, runs in results.items():
        for name, r in runs.items():
            th = r.get("threads", numba.get_num_threads())
            per_it, per_eval = r["wall"] / max(r["nit"], 1), r["wall"] / max(r["evals"], 1)
            cells = [
                f"{n:,}",
                name,
                th,
                f"{r['setup']:.2f}",
                r["nit"],
                r["evals"],
                f"{per_it:.3f}",
                f"{per_eval:.3f}",
            ]
            print("| " + " | ".join(map(str, cells)) + f" | {r['fun']:.6f} |")
    for n, runs in results.items():
        print(f"\n## Loss curves, {n:,} sequences (full-batch MSE after each iteration)\n")
        names = list(runs)
        print("| iteration | " + " | ".join(names) + " |")
        print("|---|" + "---|" * len(names))
        for k in range(max(len(r["curve"]) for r in runs.values())):
            cells = [f"{r['curve'][k]:.10f}" if k < len(r["curve"]) else "" for r in runs.values()]
            print(f"| {k} | " + " | ".join(cells) + " |")
        a, b = runs["dask, 1 worker"]["curve"], runs["dask, 2 workers"]["curve"]
        gap = max(abs(x - y) / y for x, y in zip(runs["in-process"]["curve"], a, strict=False))
        print(f"\n1 and 2 workers bitwise equal: {a == b}; largest relative gap to in-process: {gap:.1e}")

    if args.sgd_samples:
        mem, t_mem, rows = local_sgd_check(args.sgd_samples, args.sgd_epochs)
        print(f"\n## Local SGD (seed's SGD, batch 20), {args.sgd_samples:,} sequences, test MSE per epoch\n")
        print("| run | wall s | " + " | ".join(f"epoch {e + 1}" for e in range(len(mem))) + " |")
        print("|---|---|" + "---|" * len(mem))
        print(f"| in-process, lr 0.02 | {t_mem:.1f} | " + " | ".join(f"{v:.4f}" for v in mem) + " |")
        for (R, lr), (test, wall) in rows.items():
            name = f"dask, {R} replica{'s' * (R > 1)}, lr {lr}"
            print(f"| {name} | {wall:.1f} | " + " | ".join(f"{v:.4f}" for v in test) + " |")


if __name__ == "__main__":
    main()
