"""Data-parallel training on Dask (rnnumba.distributed), on one tiny LocalCluster.

* the distributed objective equals the in-memory one (1e-12) and is bitwise
  repeatable for one chunking, whatever worker runs what;
* L-BFGS-B fits agree with in-memory fits; local SGD with ONE part is the
  in-memory training loop bitwise, and with several parts converges as well;
* bad inputs: unknown chunk sizes, X/y chunked differently, NaN, bad shapes;
* numba threads per task never oversubscribe; the warm-up compiles once per host;
* checkpoints are atomic and a resumed minibatch run is bitwise the uninterrupted one;
* a worker killed mid-fit leaves the same model as no fault at all.

Kernels must already be in the disk cache for this file to take well under a
minute: the in-memory reference calls come first in each test and compile
into the cache that the workers then read (see docs/dask.md).
"""

import os
import signal

import numpy as np
import pytest

pytest.importorskip("distributed")

import dask.array as da  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402

from rnnumba import RNN, _limits  # noqa: E402
from rnnumba import distributed as rd  # noqa: E402
from rnnumba.datasets import load_toy  # noqa: E402
from rnnumba.distributed import tasks  # noqa: E402
from rnnumba.solvers import FirstOrder  # noqa: E402

CLUSTER = dict(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None)


@pytest.fixture(scope="module")
def client():
    with LocalCluster(**CLUSTER) as cluster, Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def toy():
    return load_toy(n_samples=3000, random_state=0)  # 2100 training rows


def dask_xy(d, chunks, kind="fixed"):
    X = da.from_array(d.X_train, chunks=(chunks, -1))
    y = da.from_array(d.y_train, chunks=(chunks,) + (-1,) * (d.y_train.ndim - 1))
    lengths = None if d.lengths_train is None else da.from_array(d.lengths_train, chunks=chunks)
    return X, y, lengths


def rel(a, b):
    return np.max(np.abs(np.asarray(a) - b)) / np.max(np.abs(b))


# ---------------------------------------------------------------- the objective


@pytest.mark.parametrize("kind", ["fixed", "varlen", "seq2seq", "classes"])
def test_objective_matches_in_memory(client, kind):
    d = load_toy("fixed" if kind == "classes" else kind, n_samples=1500, random_state=1)
    O = 3 if kind == "classes" else 1
    if kind == "seq2seq":
        d.y_train = d.y_train[:, :, None]  # (N, T, O): one target per step
    if kind == "classes":  # three bins of z: cross-entropy
        d.y_train = np.digitize(d.y_train, [10 / 3, 20 / 3]).astype(np.int64)
    net = RNN(1, 8, O, random_state=0)
    f_mem = net.objective(d.X_train, d.y_train, lengths=d.lengths_train)
    X, y, lengths = dask_xy(d, 300)
    with rd.DaskObjective(net, X, y, lengths, client=client) as f:
        assert f.data.n_chunks == 4 and f.data.loss == ("xent" if O > 1 else "mse")
        for seed in (0, 1):
            theta = np.random.default_rng(seed).normal(scale=0.3, size=net.n_params)
            v, g = f(theta)
            v0, g0 = f_mem(theta)
            assert abs(v - v0) <= 1e-12 * abs(v0)
            assert rel(g, g0) <= 1e-12


def test_objective_is_bitwise_repeatable_and_placement_free(client, toy):
    net = RNN(1, 26, random_state=0)
    X, y, _ = dask_xy(toy, 500)  # 500, 500, 500, 500, 100
    with rd.DaskObjective(net, X, y, client=client) as f:
        theta = net.theta.copy()
        v1, g1 = f(theta)
        f.last_x = None  # no cache: send it again
        v2, g2 = f(theta)
        assert v1 == v2 and np.array_equal(g1, g2)
        # the same parts summed in the same order in this process: same bits
        parts = client.gather(f.data.parts)
        total, grad = 0.0, np.zeros(net.n_params)
        for part in parts:
            value, g = tasks.eval_part(part, theta, net, "mse", 1)
            total += value
            grad += g
        assert v1 == total / f.data.count and np.array_equal(g1, grad / f.data.count)
        assert sorted(len(p[0]) for p in parts) == [100, 500, 500, 500, 500]


def test_lbfgs_fit_matches_in_memory(client, toy):
    import scipy.optimize

    net = RNN(1, 26, random_state=0)
    opts = {"maxiter": 12}
    mem = scipy.optimize.minimize(
        net.objective(toy.X_train, toy.y_train), net.theta.copy(), jac=True, method="L-BFGS-B", options=opts
    )
    X, y, _ = dask_xy(toy, 700)
    theta, res, curve = rd.fit_full_batch(net, X, y, client=client, options=opts)
    assert res.nit == mem.nit == 12 and len(curve) == 13
    assert abs(res.fun - mem.fun) <= 1e-9 * mem.fun
    assert rel(theta, mem.x) < 1e-7
    assert np.array_equal(net.theta, theta) and curve[-1] == res.fun < curve[0]


# ---------------------------------------------------------------- bad inputs


def test_bad_inputs_give_clear_errors(client, toy):
    net = RNN(1, 4, random_state=0)
    X, y, _ = dask_xy(toy, 500)
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        rd.DaskObjective(net, X[X[:, 0] > 0], y[X[:, 0] > 0], client=client)
    with pytest.raises(ValueError, match="chunked differently"):
        rd.DaskObjective(net, X, y.rechunk(300), client=client)
    with pytest.raises(ValueError, match="y has 100 samples but X has 2100"):
        rd.DaskObjective(net, X, y[:100], client=client)
    with pytest.raises(TypeError, match="must be a dask array"):
        rd.DaskObjective(net, toy.X_train, y, client=client)
    bad = toy.X_train.copy()
    bad[1234, 1] = np.nan
    with pytest.raises(ValueError, match=r"chunk 2 \(samples 1000\.\.1499.*NaN or inf.*sample 234, step 1"):
        rd.DaskObjective(net, da.from_array(bad, chunks=500), y, client=client)
    with pytest.raises(ValueError, match="lengths must lie in"):
        rd.DaskObjective(net, X, y, np.full(2100, 4), client=client)
    with pytest.raises(ValueError, match="expects input_size=4"):
        rd.DaskObjective(RNN(4, 4), X, y, client=client)
    # numpy y/lengths are chunked like X; non-sample axes are rechunked whole
    with rd.DaskObjective(net, X.rechunk((500, 1)), toy.y_train, client=client) as f:
        assert f.data.sizes == [500, 500, 500, 500, 100]


# ---------------------------------------------------------------- threads and the compile cache


def test_numba_threads_and_one_compile_per_host(client, toy):
    cpus = client.run(_limits.usable_cpus)
    n = rd.numba_threads_for(client)
    assert n == max(1, min(cpus.values()) // 2)  # both workers share this host

    def probe(threads):
        import numba

        tasks.set_threads(threads)
        return numba.get_num_threads()

    assert set(client.gather(client.map(probe, [n] * 4, pure=False))) == {n}
    net = RNN(1, 5, random_state=0)
    # this process compiles first (or loads), so the disk cache is warm for the workers
    data = net.prepare(toy.X_train[:40], toy.y_train[:40])
    net.loss_and_grad(data)
    FirstOrder(net.copy(), "sgd", lr=0.0, batch_size=20).epoch(data, np.arange(2))
    X, y, _ = dask_xy(toy, 1050)
    with rd.DaskData(net, X, y, client=client, kernels=("objective", "epoch")) as data:
        assert data.threads == n
        first, second = sorted(data.warmup)
        for kernel in ("objective", "epoch"):
            # the later worker never compiles: it reads what the first one left
            assert data.warmup[second][kernel][1] == 0
            assert data.warmup[first][kernel][0] + data.warmup[first][kernel][1] <= 1


def test_precompile_runs_on_every_worker(client):
    """The documented warm-up of a cluster: client.run(rnnumba.precompile, ...)
    compiles or loads every kernel of the family on every worker."""
    import rnnumba

    reports = client.run(rnnumba.precompile, cells="elman", dtypes="float64")
    assert len(reports) == 2
    for (report,) in reports.values():
        assert (report["cell"], report["dtype"]) == ("elman", "float64")

    def entry_points_ready():
        from rnnumba import engine
        from rnnumba.solvers.kernels import epoch_kernel

        tops = (*engine.kernels("elman")[2:], epoch_kernel("elman"))
        return all(k.signatures for k in tops)

    assert list(client.run(entry_points_ready).values()) == [True, True]


@pytest.mark.slow
@pytest.mark.parametrize("warm", ["host", False])
def test_cold_cache_shared_by_two_workers(tmp_path, toy, warm):
    """Two worker processes, one empty RNNUMBA_CACHE_DIR: with warm-up one worker
    compiles and the other reads; without, both compile into it at once, which
    must still give right results. Minutes: a full cold compile."""
    old = os.environ.get("RNNUMBA_CACHE_DIR")
    os.environ["RNNUMBA_CACHE_DIR"] = str(tmp_path)  # workers inherit it; this process keeps its cache
    try:
        cluster = LocalCluster(**CLUSTER)
    finally:
        if old is None:
            del os.environ["RNNUMBA_CACHE_DIR"]
        else:
            os.environ["RNNUMBA_CACHE_DIR"] = old
    net = RNN(1, 26, random_state=0)
    v0, g0 = net.objective(toy.X_train, toy.y_train)(net.theta)
    with cluster, Client(cluster) as c:
        X, y, _ = dask_xy(toy, 1050)
        with rd.DaskObjective(net, X, y, client=c, warm=warm) as f:
            v, g = f(net.theta)
            if warm:
                misses = sorted(w["objective"][1] for w in f.data.warmup.values())
                assert misses == [0, 1]
        assert abs(v - v0) <= 1e-12 * v0 and rel(g, g0) <= 1e-12
        assert any(p.suffix == ".nbi" for p in tmp_path.rglob("*"))


# ---------------------------------------------------------------- minibatch: local SGD


def test_local_sgd_with_one_part_is_the_in_memory_loop(client, toy):
    opts = dict(lr=0.02, batch_size=20)
    ref = RNN(1, 26, random_state=0)
    data = ref.prepare(toy.X_train, toy.y_train)
    tasks.load_objective(ref)  # before a cached _epoch: see its docstring (numba#8578)
    opt, rng = FirstOrder(ref, "sgd", **opts), np.random.default_rng(5)
    curve = [opt.epoch(data, rng.permutation(opt.n_blocks(2100)))[0] for _ in range(2)]
    net = RNN(1, 26, random_state=0)
    X, y, _ = dask_xy(toy, 2100)
    theta, res, dcurve = rd.fit_minibatch(net, X, y, client=client, options=opts, epochs=2, random_state=5)
    assert np.array_equal(theta, ref.theta) and np.array_equal(dcurve, curve)
    assert res.nit == 2 and res.message == "max_iter"


def test_local_sgd_replicas_draw_their_own_dropout_masks(toy):
    """One link of local SGD (``tasks.local_round``, no cluster needed) on the same
    data from the same start: with dropout, replica 1's masks differ from
    replica 0's, and replica 0's are the one-process run's; without dropout the
    replica index changes nothing."""
    X, y = toy.X_train[:200], toy.y_train[:200]
    for p in (0.0, 0.3):
        net = RNN(1, 8, num_layers=2, dropout=p, random_state=0)
        part = tasks.prepare_part(X, y, None, 0, 0, net.layout.to_dict(), "mse", net.dtype, None)
        opts = dict(lr=0.05, batch_size=20, seed=7)
        cfg = dict(net=net, method="sgd", options=opts, loss="mse", threads=None, step=0)
        payload = np.zeros((3, net.n_params), dtype=net.dtype)
        payload[0] = net.theta
        order = np.arange(10)
        thetas = [tasks.local_round(part, order, payload.copy(), cfg, r)[0][0] for r in (0, 1, 0)]
        assert np.array_equal(thetas[0], thetas[2])  # repeatable
        assert np.array_equal(thetas[0], thetas[1]) == (p == 0.0)
        one = net.copy()  # replica 0 is the in-memory loop with the same seed
        FirstOrder(one, "sgd", **opts).epoch(one.prepare(X, y), order)
        assert np.array_equal(one.theta, thetas[0])


@pytest.mark.parametrize(
    "solver,lr,replicas,sync",
    [
        ("sgd", 0.02, 1, None),  # the parameters visit the 4 parts in turn: one-process SGD
        ("sgd", 0.02, 2, None),  # 2 replicas averaged every epoch, lr scaled by 2
        ("adam", 0.005, 2, 25),  # Adam, averaged every 25 steps
    ],
)
def test_local_sgd_converges_like_in_memory(client, solver, lr, replicas, sync):
    d = load_toy(n_samples=6000, random_state=2)  # 4200 training rows
    epochs = 6
    ref = RNN(1, 26, random_state=0)
    data = ref.prepare(d.X_train, d.y_train)
    tasks.load_objective(ref)  # before a cached _epoch (numba#8578)
    opt, rng = FirstOrder(ref, solver, lr=lr, batch_size=20), np.random.default_rng(0)
    for _ in range(epochs):
        opt.epoch(data, rng.permutation(opt.n_blocks(4200)))
    mem = ref.loss_and_grad(d.X_train, d.y_train)[0]
    net = RNN(1, 26, random_state=0)
    X, y, _ = dask_xy(d, 1050)  # 4 parts
    opts = dict(lr=lr * replicas, batch_size=20)  # the linear scaling rule
    _, res, curve = rd.fit_minibatch(
        net, X, y, client=client, solver=solver, options=opts, epochs=epochs, replicas=replicas,
        sync_every=sync, random_state=0,
    )  # fmt: skip
    assert res.replicas == replicas and len(curve) == epochs and curve[-1] < curve[0] / 10
    assert res.fun < 1.3 * mem, (res.fun, mem)


# ---------------------------------------------------------------- checkpoints


def test_minibatch_resume_is_bitwise_the_uninterrupted_run(client, toy, tmp_path):
    X, y, _ = dask_xy(toy, 700)
    kw = dict(
        client=client, solver="adam", options=dict(lr=0.003, batch_size=20), random_state=1, sync_every=30
    )
    a = RNN(1, 26, random_state=0)
    theta_a, _, curve_a = rd.fit_minibatch(a, X, y, epochs=3, **kw)
    ckpt = tmp_path / "run.npz"
    b = RNN(1, 26, random_state=0)
    rd.fit_minibatch(b, X, y, epochs=2, checkpoint=ckpt, **kw)
    c = RNN(1, 26, random_state=0)  # a fresh process would start like this
    theta_c, res, curve_c = rd.fit_minibatch(c, X, y, epochs=3, resume_from=ckpt, **kw)
    assert np.array_equal(theta_c, theta_a) and np.array_equal(curve_c, curve_a) and res.nit == 3
    assert [p.name for p in tmp_path.iterdir()] == ["run.npz"]  # no temporary files left
    with pytest.raises(ValueError, match="another network"):
        rd.fit_minibatch(RNN(1, 5), X, y, epochs=3, resume_from=ckpt, **kw)


def test_lbfgs_checkpoint_every_k_and_resume(client, toy, tmp_path):
    X, y, _ = dask_xy(toy, 700)
    ckpt = tmp_path / "lbfgs.npz"
    seen = []

    def stop_at_5(it, theta, loss):
        seen.append(it)
        return it == 5  # as if the run died after iteration 5

    net = RNN(1, 26, random_state=0)
    _, res, curve = rd.fit_full_batch(
        net,
        X,
        y,
        client=client,
        options={"maxiter": 10},
        callback=stop_at_5,
        checkpoint=ckpt,
        checkpoint_every=2,
    )
    assert seen == [1, 2, 3, 4, 5] and res.message == "stopped by a callback" and len(curve) == 6
    state = rd.load_checkpoint(ckpt, net, "full_batch")
    assert int(state["nit"]) == 5 and np.array_equal(state["theta"], net.theta)
    fresh = RNN(1, 26, random_state=0)
    theta, res2, curve2 = rd.fit_full_batch(
        fresh, X, y, client=client, options={"maxiter": 10}, resume_from=ckpt
    )
    assert res2.nit_total == 10 and res2.nit == 5
    assert np.array_equal(curve2[:6], curve) and len(curve2) == 11 and curve2[-1] < curve[-1]
    with pytest.raises(ValueError, match="holds a full_batch checkpoint, not minibatch"):
        rd.fit_minibatch(fresh, X, y, client=client, resume_from=ckpt)


# ---------------------------------------------------------------- the estimators and predictions


def test_estimators_take_dask_arrays(client):
    from rnnumba.datasets import make_toy
    from rnnumba.estimators import RNNRegressor, fit

    X, z = make_toy(1200, random_state=4)  # raw: the estimators standardise
    Xd, zd = da.from_array(X, chunks=(400, -1)), da.from_array(z, chunks=400)
    for params in (dict(solver="L-BFGS-B", epochs=8), dict(solver="sgd", epochs=2)):
        mem = RNNRegressor(6, random_state=0, **params).fit(X, z)
        dsk = RNNRegressor(6, random_state=0, **params).fit(Xd, zd, client=client)
        # the scaler's statistics differ in the last bits (chunked sums), nothing else does
        assert (
            abs(dsk.scaler_.mean_ - mem.scaler_.mean_) < 1e-14
            and abs(dsk.scaler_.std_ - mem.scaler_.std_) < 1e-14
        )
        assert dsk.n_iter_ == mem.n_iter_ and dsk.stop_reason_ == mem.stop_reason_
        if params["solver"] == "sgd":  # 3 parts in 2 replicas: local SGD, not the same path
            assert dsk.loss_curve_[-1] < 2 * mem.loss_curve_[-1]
        else:
            assert rel(dsk.loss_curve_, mem.loss_curve_) < 1e-8 and rel(dsk.theta_, mem.theta_) < 1e-6
        assert rel(dsk.predict(X), mem.predict(X)) < (1e-6 if params["solver"] != "sgd" else 0.5)
    labels = np.where(z > 5, "high", "low")
    clf = fit(Xd, da.from_array(labels, chunks=400), hidden=4, epochs=1, random_state=0, client=client)
    assert list(clf.classes_) == ["high", "low"] and clf.predict(X[:5]).dtype.kind == "U"
    with pytest.raises(ValueError, match="early_stopping"):
        RNNRegressor(4, early_stopping=True).fit(Xd, zd, client=client)


def test_sample_weight_on_dask_matches_in_memory(client):
    from rnnumba.datasets import make_toy
    from rnnumba.estimators import RNNRegressor

    X, z = make_toy(900, random_state=5)
    w = np.random.default_rng(0).uniform(0, 2, size=900)
    w[::3] = 0.0  # a third of the sequences weigh nothing
    Xd, zd, wd = (da.from_array(a, chunks=(300,) + (-1,) * (a.ndim - 1)) for a in (X, z, w))
    est = RNNRegressor(6, solver="L-BFGS-B", epochs=8, random_state=0)
    mem = est.fit(X, z, sample_weight=w)
    mem_theta, mem_scaler = mem.theta_.copy(), mem.scaler_
    dsk = RNNRegressor(6, solver="L-BFGS-B", epochs=8, random_state=0).fit(
        Xd, zd, sample_weight=wd, client=client
    )
    np.testing.assert_allclose(dsk.scaler_.mean_, mem_scaler.mean_, rtol=1e-13)
    np.testing.assert_allclose(dsk.scaler_.std_, mem_scaler.std_, rtol=1e-13)
    assert rel(dsk.loss_curve_, mem.loss_curve_) < 1e-8 and rel(dsk.theta_, mem_theta) < 1e-6
    # the zero-weight third changes nothing: the fit on the other two thirds
    keep = w > 0
    kept = RNNRegressor(6, solver="L-BFGS-B", epochs=8, random_state=0).fit(
        X[keep], z[keep], sample_weight=w[keep]
    )
    assert rel(dsk.theta_, kept.theta_) < 1e-6
    # NumPy weights with dask data work too
    RNNRegressor(6, epochs=1, random_state=0).fit(Xd, zd, sample_weight=w, client=client)


def test_class_weights_and_nan_targets_on_dask_match_in_memory(client):
    from rnnumba.datasets import make_toy
    from rnnumba.estimators import RNNClassifier, RNNRegressor

    X, z = make_toy(600, length=4, random_state=6)
    labels = np.where(z > 7, "high", "low")  # unbalanced
    Xd = da.from_array(X, chunks=(200, -1))
    clf = RNNClassifier(4, solver="L-BFGS-B", epochs=6, random_state=0, class_weight="balanced")
    mem = clf.fit(X, labels).predict_proba(X)
    dsk = clf.fit(Xd, da.from_array(labels, chunks=200), client=client).predict_proba(X)
    assert rel(dsk, mem) < 1e-6
    Y = np.cumsum(X, axis=1)[:, :, None]
    Y[::4, 2:] = np.nan  # steps without targets
    reg = RNNRegressor(4, solver="L-BFGS-B", epochs=6, random_state=0)
    mem = reg.fit(X, Y).predict(X)
    dsk = reg.fit(Xd, da.from_array(Y, chunks=(200, -1, -1)), client=client).predict(X)
    assert rel(dsk, mem) < 1e-6


def test_predict_over_dask(client, toy):
    net = RNN(1, 26, random_state=3)
    X, _, _ = dask_xy(toy, 500)
    out = rd.predict(net, X).compute()
    assert out.shape == (2100, 1) and rel(out, net.predict(toy.X_train)) < 1e-13  # other GEMM shapes


# ---------------------------------------------------------------- faults (last: it restarts a worker)


def test_worker_killed_mid_fit_gives_the_same_model(client, toy):
    X, y, _ = dask_xy(toy, 525)
    opts = {"maxiter": 8}
    ref_theta, ref_res, _ = rd.fit_full_batch(RNN(1, 26, random_state=0), X, y, client=client, options=opts)
    victim = {}

    def kill_one(it, theta, loss):
        if it == 3:
            holders = client.who_has()
            addr = sorted({a for ws in holders.values() for a in ws})[0]
            victim["addr"] = addr
            os.kill(client.run(os.getpid, workers=[addr])[addr], signal.SIGKILL)  # a hard crash

    net = RNN(1, 26, random_state=0)
    theta, res, _ = rd.fit_full_batch(net, X, y, client=client, options=opts, callback=kill_one)
    assert victim and res.nit == ref_res.nit
    assert np.array_equal(theta, ref_theta) and res.fun == ref_res.fun
    client.wait_for_workers(2, timeout=60)
