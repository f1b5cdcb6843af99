"""The compiled epoch loop and the scipy bridge (rnnumba.solvers)."""

import numba
import numpy as np
import pytest

from rnnumba.network import RNN
from rnnumba.solvers import FirstOrder, ScipyObjective, minimize, scipy_method
from rnnumba.solvers.scipy_bridge import GRADIENT_METHODS


def _data(N=50, T=3, I=1, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(N, T, I)), rng.normal(size=N)


def _reference_epoch(
    net,
    X,
    y,
    order,
    B,
    method,
    lr,
    momentum=0.0,
    nesterov=False,
    clip=None,
    decay=0.0,
    state=None,
    step=0,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
):
    """The same epoch written plainly with the public ``RNN.loss_and_grad``."""
    theta = net.theta
    m = np.zeros_like(theta) if state is None else state[0]
    v = np.zeros_like(theta) if state is None else state[1]
    total = 0.0
    for k, blk in enumerate(order):
        s0, s1 = blk * B, min(len(y), (blk + 1) * B)
        value, g = net.loss_and_grad(X[s0:s1], y[s0:s1])
        g = g.copy()
        norm = np.sqrt(np.sum(g * g))
        if clip is not None and norm > clip:
            g *= clip / norm
        g = g + decay * theta
        if method == "sgd":
            if momentum:
                m[:] = momentum * m + g
                g = g + momentum * m if nesterov else m.copy()
            theta -= lr * g
        else:
            t = step + k + 1
            m[:] = b1 * m + (1 - b1) * g
            v[:] = b2 * v + (1 - b2) * g * g
            theta -= lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        total += value * (s1 - s0)
    return total / len(y)


def _epoch(net, X, y, order, **kw):
    opt = FirstOrder(net, **kw)
    return opt, opt.epoch(net.prepare(X, y), order)


CONFIGS = [
    dict(method="sgd", lr=0.05),
    dict(method="sgd", lr=0.05, momentum=0.9),
    dict(method="sgd", lr=0.05, momentum=0.9, nesterov=True),
    dict(method="sgd", lr=0.05, clip=0.1, weight_decay=0.01),
    dict(method="adam", lr=0.01),
    dict(method="adam", lr=0.01, clip=0.5, weight_decay=1e-3),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_epoch_matches_plain_loop(cfg):
    X, y = _data(N=47)  # a short last block
    B = 10
    order = np.array([3, 0, 4, 2, 1])
    a, b = RNN(1, 5, random_state=1), RNN(1, 5, random_state=1)
    _, (mean, finite) = _epoch(a, X, y, order, batch_size=B, **cfg)
    kw = {k: v for k, v in cfg.items() if k not in ("method", "lr", "weight_decay")}
    expected = _reference_epoch(
        b, X, y, order, B, cfg["method"], cfg["lr"], decay=cfg.get("weight_decay", 0.0), **kw
    )
    assert finite
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-10, atol=1e-12)
    assert mean == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("N", [20, 70, 300])  # 2, 4 and 18 chunks of the engine
def test_epoch_step_uses_the_public_gradient_bitwise(N):
    """The epoch's own parallel chunk loop sums exactly as net.loss_and_grad."""
    from rnnumba.chunks import n_chunks

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(N, 4, 2)), rng.normal(size=N)
    assert n_chunks(N, 8) > 1
    a, b = RNN(2, 8, num_layers=2, random_state=0), RNN(2, 8, num_layers=2, random_state=0)
    _, g = b.loss_and_grad(X, y)
    _epoch(a, X, y, np.array([0]), method="sgd", lr=0.1, batch_size=N)
    assert np.array_equal(a.grad, g)  # the step's gradient, left in the buffer
    np.testing.assert_allclose(a.theta, b.theta - 0.1 * g, rtol=1e-15)  # fused multiply-add


def test_state_carries_across_epochs():
    X, y = _data(N=40)
    a, b = RNN(1, 4, random_state=2), RNN(1, 4, random_state=2)
    opt = FirstOrder(a, "adam", lr=0.01, batch_size=8)
    data = a.prepare(X, y)
    order = np.arange(5)
    opt.epoch(data, order)
    opt.epoch(data, order[::-1].copy())
    assert opt.step == 10
    state = np.zeros((2, b.n_params))
    _reference_epoch(b, X, y, order, 8, "adam", 0.01, state=state)
    _reference_epoch(b, X, y, order[::-1], 8, "adam", 0.01, state=state, step=5)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-10, atol=1e-12)


def test_batch_larger_than_data():
    X, y = _data(N=7)
    a, b = RNN(1, 4, random_state=3), RNN(1, 4, random_state=3)
    _, (mean, finite) = _epoch(a, X, y, np.array([0]), method="sgd", lr=0.1, batch_size=100)
    expected = _reference_epoch(b, X, y, [0], 100, "sgd", 0.1)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-12)
    assert mean == pytest.approx(expected)


def test_classification_and_many_to_many_epochs_reduce_loss():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4, 2))
    y_cls = (X[:, :, 0].sum(axis=1) > 0).astype(np.int64)
    net = RNN(2, 6, output_size=2, random_state=0)
    opt = FirstOrder(net, "adam", lr=0.05, batch_size=10)
    data = net.prepare(X, y_cls)
    first = opt.epoch(data, np.arange(6))[0]
    for _ in range(10):
        last = opt.epoch(data, np.arange(6))[0]
    assert data.loss == "xent" and last < first
    Y3 = np.cumsum(X[:, :, :1], axis=1)
    net = RNN(2, 6, random_state=0)
    opt = FirstOrder(net, "sgd", lr=0.05, batch_size=10)
    data = net.prepare(X, Y3, lengths=rng.integers(1, 5, size=60))
    first = opt.epoch(data, np.arange(6))[0]
    for _ in range(10):
        last = opt.epoch(data, np.arange(6))[0]
    assert data.many and last < first


def test_divergence_restores_last_finite_parameters():
    X, y = _data(N=40)
    net = RNN(1, 4, random_state=0)
    start = net.theta.copy()
    opt, (mean, finite) = _epoch(net, X, y, np.arange(4), method="sgd", lr=1e200, batch_size=10)
    assert not finite
    assert np.all(np.isfinite(net.theta))
    # the first update is finite but its loss is not: back to the start
    np.testing.assert_array_equal(net.theta, start)
    assert opt.step == 1


# -- a cold fit's epochs: the Python body while a helper compiles the epoch -----------


class _Compiling:
    """A stand-in for the helper process: compiling for ``polls`` more polls, then done."""

    def __init__(self, polls):
        self.polls = polls

    def poll(self):
        self.polls -= 1
        return None if self.polls >= 0 else 0


def _weighted(batch, seed):
    """``batch`` with target weights (some 0: a minibatch may weigh nothing)."""
    from rnnumba.data import Batch

    w = np.random.default_rng(seed).choice([0.0, 0.5, 2.0], size=batch.Y.shape)
    w[: batch.Y.shape[0] // 4] = 0.0  # the first minibatches weigh nothing
    Y = np.ascontiguousarray(np.concatenate([batch.Y, w], axis=2))
    return Batch(batch.X, batch.lengths, Y, batch.many, float(w.sum()), batch.loss)


DEFERRED = {
    "elman-sgd": (dict(), dict(method="sgd", lr=0.05, momentum=0.9, nesterov=True, clip=0.5), False),
    "lstm-adam-dropout-weights-many": (
        dict(cell="lstm", num_layers=2, dropout=0.3),
        dict(method="adam", lr=0.01, weight_decay=1e-3, seed=3),
        True,
    ),
    "gru-bidirectional-chunks": (dict(cell="gru", bidirectional=True), dict(method="adam", lr=0.01), False),
}


@pytest.mark.parametrize("polls", [0, 3, 1000], ids=["compiled", "switch", "python"])
@pytest.mark.parametrize("case", DEFERRED)
def test_a_deferred_epoch_takes_the_compiled_epochs_steps_bit_for_bit(case, polls):
    """A fit whose epoch compiles elsewhere runs the epoch's Python body one
    minibatch at a time, then the compiled epoch for the rest: the parameters,
    the optimiser's state, the step count and the mean loss are bitwise those
    of the compiled epoch, wherever the switch falls."""
    net_kw, opt_kw, many = DEFERRED[case]
    rng = np.random.default_rng(1)
    N, T = 90, 5
    X = rng.normal(size=(N, T, 2))
    y = rng.normal(size=(N, T, 1)) if many else rng.normal(size=N)
    ref = RNN(2, 6, random_state=4, **net_kw)
    run = ref.copy()
    lengths = rng.integers(1, T + 1, size=N)
    data = ref.prepare(X, y, lengths=lengths)
    if many:
        data = _weighted(data, 5)
    B = 45 if "chunks" in case else 10  # 45 rows: two chunks per minibatch
    a = FirstOrder(ref, batch_size=B, **opt_kw)
    b = FirstOrder(run, batch_size=B, defer=True, **opt_kw)
    b.helper = _Compiling(polls)
    for order in (np.arange(N // B)[::-1].copy(), np.arange(N // B)):
        assert a.epoch(data, order) == b.epoch(data, order)
    assert np.array_equal(ref.theta, run.theta) and np.array_equal(a.state, b.state)
    assert a.step == b.step == 2 * (N // B)
    assert (b.helper is False) == (polls < 2 * (N // B))  # switched to the compiled epoch


def test_a_deferred_epoch_that_diverges_stops_where_the_compiled_one_does():
    X, y = _data(N=40)
    ref = RNN(1, 4, random_state=0)
    run = ref.copy()
    a = FirstOrder(ref, "sgd", lr=1e200, batch_size=10)
    b = FirstOrder(run, "sgd", lr=1e200, batch_size=10, defer=True)
    b.helper = _Compiling(1000)
    data = ref.prepare(X, y)
    assert a.epoch(data, np.arange(4)) == b.epoch(data, np.arange(4))
    assert np.array_equal(ref.theta, run.theta) and a.step == b.step == 1
    assert b.helper is not False  # still deferring: no compiled epoch was called


def test_ctrl_c_in_a_deferred_epoch_stops_after_its_minibatch():
    """A SIGINT while the Python body runs is held until the minibatch's step is
    done: KeyboardInterrupt, with the parameters and the step count of the
    minibatches done (those of a compiled epoch over them)."""
    import signal
    import threading

    class Interrupted(_Compiling):
        def poll(self):
            if self.polls == 997:  # the fourth minibatch's poll
                # to this thread: os.kill may hand it to another thread (a full run has
                # Dask's and tqdm's), whose C handler can run after the epoch is done
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            return super().poll()

    X, y = _data(N=60)
    ref = RNN(1, 4, random_state=0)
    run = ref.copy()
    data = ref.prepare(X, y)
    a = FirstOrder(ref, "adam", lr=0.01, batch_size=10)
    b = FirstOrder(run, "adam", lr=0.01, batch_size=10, defer=True)
    b.helper = Interrupted(1000)
    order = np.array([5, 3, 1, 0, 2, 4])
    # Python's own handler, which the hold replaces (it leaves any other alone)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            b.epoch(data, order)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
    finally:
        signal.signal(signal.SIGINT, previous)
    a.epoch(data, order[:4])
    assert b.step == a.step == 4 and np.array_equal(ref.theta, run.theta) and np.array_equal(a.state, b.state)


def test_only_a_fit_on_a_cold_cache_defers_its_epoch(monkeypatch):
    """An epoch compiled here or in the cache runs compiled, no helper asked
    for; one that is not is left to a helper that compiles it, while the fit's
    epochs run the Python body. Checkpointed epochs, and helpers started for
    full-batch objectives, compile no epoch: nothing is deferred to them."""
    from rnnumba import _prefetch
    from rnnumba.solvers.kernels import epoch_kernel

    def spawn(family, dtype, entry):
        spawned.append((family, dtype, entry))
        return _Compiling(1000)

    spawned = []
    monkeypatch.setattr(_prefetch, "_spawn", spawn)
    monkeypatch.setattr(_prefetch, "_started", {})
    X, y = _data(N=20)
    net = RNN(1, 4, random_state=0)
    data = net.prepare(X, y)
    opt = FirstOrder(net, "sgd", lr=0.1, batch_size=10, defer=True)
    opt.epoch(data, np.arange(2))
    assert opt.helper is False and not spawned  # compiled already (CI's cache, or this process)
    epoch = epoch_kernel("elman")
    monkeypatch.setattr(epoch, "overloads", {})  # as in a process that has not compiled it ...
    monkeypatch.setattr(_prefetch._jit, "in_cache", lambda kernel, argtypes: False)  # ... on a cold cache
    opt = FirstOrder(net, "sgd", lr=0.1, batch_size=10, defer=True)
    opt.epoch(data, np.arange(2))
    assert spawned == [("elman", "float64", "epoch")] and isinstance(opt.helper, _Compiling)
    assert not epoch.overloads  # the Python body ran: nothing compiled
    assert _prefetch.compiling(epoch_kernel("elman", True), (net.theta,), "elman") is None

    def epoch_elman(theta):  # another kernel of the default epoch's name: not the family's epoch
        return theta

    epoch_elman.__qualname__ = "epoch_elman"
    assert _prefetch.compiling(numba.njit(epoch_elman), (net.theta,), "elman") is None
    monkeypatch.setattr(_prefetch, "_started", {("elman", "float64"): (_Compiling(1000), "loss_and_grad")})
    assert _prefetch.compiling(epoch, (net.theta,), "elman") is None


def test_first_order_rejects_unknown_method():
    with pytest.raises(ValueError, match="method"):
        FirstOrder(RNN(1, 3), "rmsprop", lr=0.1, batch_size=4)


# -- scipy ------------------------------------------------------------------------


def _objective(decay=0.0):
    X, y = _data(N=30)
    net = RNN(1, 4, random_state=0)
    return net, ScipyObjective(net, net.prepare(X, y), weight_decay=decay)


def test_scipy_objective_gradient_with_weight_decay():
    net, f = _objective(decay=0.3)
    x = net.theta.astype(np.float64)
    value, grad = f(x)
    rng = np.random.default_rng(0)
    d = rng.normal(size=x.shape)
    eps = 1e-6
    numeric = (f(x + eps * d)[0] - f(x - eps * d)[0]) / (2 * eps)
    assert np.dot(grad, d) == pytest.approx(numeric, rel=1e-6)
    assert f.value_at(x) == pytest.approx(value)


@pytest.mark.parametrize("method", ["L-BFGS-B", "BFGS", "CG"])
def test_scipy_methods_reduce_the_loss(method):
    net, f = _objective()
    x0 = net.theta.astype(np.float64)
    start = f(x0)[0]
    result, interrupted = minimize(f, x0, method, maxiter=15)
    assert not interrupted and result.fun < start
    assert result.nit <= 15


def test_scipy_callback_stops_and_interrupt_is_caught():
    net, f = _objective()
    x0 = net.theta.astype(np.float64)
    seen = []
    result, interrupted = minimize(
        f, x0, "L-BFGS-B", 50, callback=lambda x, fx: seen.append(fx) or len(seen) == 3
    )
    assert result.message == "stopped by a callback" and not result.success and len(seen) == 3
    assert result.fun == pytest.approx(seen[-1])

    calls = {"n": 0}
    real = f.__call__

    class Interrupting(ScipyObjective):
        def __call__(self, x):
            calls["n"] += 1
            if calls["n"] == 5:
                raise KeyboardInterrupt
            return real(x)

    g = Interrupting(net, f.data)
    result, interrupted = minimize(g, x0, "L-BFGS-B", 50)
    assert interrupted and result.message == "interrupted" and np.all(np.isfinite(result.x))


def test_scipy_options_pass_through():
    net, f = _objective()
    result, _ = minimize(f, net.theta.astype(np.float64), "L-BFGS-B", 100, options={"maxiter": 2})
    assert result.nit <= 2


def test_scipy_method_names():
    assert scipy_method("l-bfgs-b") == "L-BFGS-B"
    assert scipy_method("Nelder-Mead") is None and scipy_method(3) is None
    assert set(GRADIENT_METHODS) >= {"L-BFGS-B", "BFGS", "CG"}
