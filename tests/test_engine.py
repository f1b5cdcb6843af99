"""The Elman engine: layout and views, kernels against the NumPy reference,
variable lengths, batch invariance, thread-count determinism, scipy, bad input."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import reference as ref
import scipy.optimize
from hypothesis import given, settings
from hypothesis import strategies as st

import rnnumba
from rnnumba import memory
from rnnumba.chunks import n_chunks
from rnnumba.layout import Layout, n_params

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def data(N, T, I, O=1, many=False, seed=0, varlen=True, classes=None):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, T, I))
    lengths = rng.integers(1, T + 1, size=N) if varlen else np.full(N, T)
    if varlen and N > 1:
        lengths[0], lengths[-1] = 1, T
    if classes:
        y = rng.integers(0, classes, size=(N, T) if many else N)
    else:
        y = rng.normal(size=(N, T, O) if many else (N, O))
    return X, lengths, y


def rel(a, b):
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)


# -- the flat vector ---------------------------------------------------------


def test_seed_layout_is_755_parameters_in_the_seeds_order():
    net = rnnumba.RNN(1, 26)
    assert net.n_params == 755 == net.theta.size == net.grad.size
    assert [(e.name, e.offset, e.shape) for e in net.layout.entries] == [
        ("W", 0, (26, 27)),
        ("b", 702, (26,)),
        ("W_out", 728, (1, 26)),
        ("b_out", 754, (1,)),
    ]
    assert net.theta.flags.c_contiguous and net.theta.ndim == 1


def test_views_alias_theta_and_grad_and_are_never_reallocated():
    net = rnnumba.RNN(2, 4, 3, num_layers=2, bidirectional=True, random_state=0)
    theta, grad = net.theta, net.grad
    for name, v in net.views.items():
        assert np.shares_memory(v, net.theta), name
        assert np.shares_memory(net.grad_views[name], net.grad), name
    net.theta[:] = np.arange(net.n_params)
    W = net.views["W_l1_reverse"]
    e = net.layout["W_l1_reverse"]
    assert W[0, 0] == e.offset and W[1, 0] == e.offset + W.shape[1]  # row-major
    X, lengths, y = data(5, 4, 2, 3)
    net.theta[:] = np.random.default_rng(1).normal(size=net.n_params) * 0.3
    net.loss_and_grad(X, y, lengths=lengths)
    net.loss_and_grad(X, y, lengths=lengths)
    assert net.theta is theta and net.grad is grad
    assert np.shares_memory(net.grad_views["W"], grad)
    assert np.array_equal(net.grad_views["b_out"], net.grad[-3:])


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
@pytest.mark.parametrize("layers,bi", [(1, False), (2, False), (1, True), (3, True)])
def test_parameter_count_formula(cell, layers, bi):
    L = Layout(cell, 3, 5, 2, layers, bi)
    assert L.n_params == n_params(cell, 3, 5, 2, layers, bi)
    assert sum(e.size for e in L.entries) == L.n_params
    assert n_params("elman", 1, 26) == 26**2 + 26 + 2 * 26 + 1


def test_initialisation_is_seeded_and_dtypes():
    a = rnnumba.RNN(1, 8, random_state=3).theta
    b = rnnumba.RNN(1, 8, random_state=3).theta
    c = rnnumba.RNN(1, 8, random_state=4).theta
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert rnnumba.RNN(1, 8, dtype=np.float32).theta.dtype == np.float32
    with pytest.raises(TypeError, match="float32 or float64"):
        rnnumba.RNN(1, 8, dtype=np.int32)


# -- kernels against the reference -------------------------------------------


@pytest.mark.parametrize(
    "N,T,I,H,O",
    [
        (1, 1, 1, 1, 1),
        (20, 3, 1, 26, 1),
        (7, 5, 3, 1, 2),
        (3, 1, 2, 4, 1),
        (40, 6, 2, 5, 2),
        (2, 300, 2, 3, 1),
        (32, 100, 1, 32, 1),  # small-long
        (9, 7, 4, 40, 2),  # rows of the products left over from 4x4 blocks
        (5, 4, 5, 33, 1),
    ],  # noqa: E501
)
@pytest.mark.parametrize("many", [False, True])
def test_elman_matches_reference(N, T, I, H, O, many):
    net = rnnumba.RNN(I, H, O, random_state=1)
    X, lengths, y = data(N, T, I, O, many, seed=N + T)
    loss, grad = net.loss_and_grad(X, y, lengths=lengths)
    rloss, rgrad = ref.loss_and_grad(net.layout, net.theta, X, lengths, y, "mse", many)
    assert abs(loss - rloss) <= 1e-12 * abs(rloss)
    assert rel(grad, rgrad) < 1e-10
    out = net.predict(X, lengths=lengths, many_to_many=many)
    rout = ref.forward(net.layout, net.theta, X, lengths, many)
    assert np.array_equal(np.isnan(out), np.isnan(rout))
    assert rel(np.nan_to_num(out), np.nan_to_num(rout)) < 1e-12


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_few_inputs_with_an_initial_state(dtype):
    """Hidden 32 and 2 inputs with a non-zero initial state, so step 0 takes
    the whole product instead of its input columns only."""
    I, H = 2, 32
    net = rnnumba.RNN(I, H, 2, dtype=dtype, random_state=3)
    X, lengths, y = data(12, 9, I, 2, True, seed=4)
    h0 = np.random.default_rng(5).normal(size=(1, 12, H))
    loss, grad = net.loss_and_grad(X, y, lengths=lengths, h0=h0)
    rloss, rgrad, rdh0 = ref.loss_and_grad(
        net.layout, net.theta.astype(np.float64), X, lengths, y, "mse", True, h0=h0
    )
    tol = 1e-10 if dtype == np.float64 else 1e-4
    assert abs(loss - rloss) <= tol * abs(rloss)
    assert rel(grad, rgrad) < tol and rel(net.grad_h0, rdh0) < tol


@pytest.mark.parametrize("many", [False, True])
def test_cross_entropy_matches_reference(many):
    net = rnnumba.RNN(2, 4, 3, num_layers=2, bidirectional=True, random_state=2)
    X, lengths, y = data(6, 5, 2, many=many, classes=3)
    loss, grad = net.loss_and_grad(X, y, lengths=lengths)
    rloss, rgrad = ref.loss_and_grad(net.layout, net.theta, X, lengths, y, "xent", many)
    assert abs(loss - rloss) <= 1e-12 * rloss and rel(grad, rgrad) < 1e-10


def test_engine_and_reference_gradients_are_finite_differences():
    net = rnnumba.RNN(2, 3, 2, random_state=0)
    X, lengths, y = data(4, 3, 2, 2)
    f = net.objective(X, y, lengths=lengths)
    num = ref.numerical_grad(lambda th: f(th)[0], net.theta.copy())
    assert rel(f(net.theta)[1], num) < 1e-7
    # the NumPy reference the other tests compare against, on its own
    r_value, r_grad = ref.loss_and_grad(net.layout, net.theta, X, lengths, y)
    r_num = ref.numerical_grad(
        lambda th: ref.loss_and_grad(net.layout, th, X, lengths, y)[0], net.theta.copy()
    )
    assert rel(r_grad, r_num) < 1e-7 and abs(r_value - f(net.theta)[0]) <= 1e-12 * r_value


def test_long_sequences():
    net = rnnumba.RNN(3, 8, random_state=0)
    X, lengths, y = data(3, 500, 3, seed=5)
    loss, grad = net.loss_and_grad(X, y, lengths=lengths)
    rloss, rgrad = ref.loss_and_grad(net.layout, net.theta, X, lengths, y)
    assert abs(loss - rloss) <= 1e-12 * rloss and rel(grad, rgrad) < 1e-10


@settings(max_examples=25, deadline=None)
@given(
    N=st.integers(1, 9),
    T=st.integers(1, 7),
    I=st.integers(1, 3),
    H=st.integers(1, 6),
    many=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_property_random_shapes_and_lengths(N, T, I, H, many, seed):
    net = rnnumba.RNN(I, H, random_state=seed)
    X, lengths, y = data(N, T, I, 1, many, seed=seed)
    loss, grad = net.loss_and_grad(X, y, lengths=lengths)
    rloss, rgrad = ref.loss_and_grad(net.layout, net.theta, X, lengths, y, "mse", many)
    assert abs(loss - rloss) <= 1e-12 * max(rloss, 1e-300)
    assert rel(grad, rgrad) < 1e-10


# -- variable lengths, padding, batches --------------------------------------


@pytest.mark.parametrize("many", [False, True])
@pytest.mark.parametrize("garbage", [np.nan, np.inf, 1e300, -7.0])
def test_padding_changes_nothing(many, garbage):
    net = rnnumba.RNN(2, 5, 2, num_layers=2, bidirectional=True, random_state=0)
    X, lengths, y = data(40, 6, 2, 2, many)
    loss, grad = net.loss_and_grad(X, y, lengths=lengths)
    grad = grad.copy()
    Xg, yg = X.copy(), y.copy()
    for k, L in enumerate(lengths):
        Xg[k, L:] = garbage
        if many:
            yg[k, L:] = garbage
    loss2, grad2 = net.loss_and_grad(Xg, yg, lengths=lengths)
    assert loss == loss2 and np.array_equal(grad, grad2)
    assert np.array_equal(
        net.predict(X, lengths=lengths, many_to_many=many),
        net.predict(Xg, lengths=lengths, many_to_many=many),
        equal_nan=True,
    )


def test_list_of_sequences_equals_padded_array():
    net = rnnumba.RNN(3, 4, 2, random_state=0)
    X, lengths, y = data(6, 5, 3, 2, many=True)
    seqs = [X[k, :L] for k, L in enumerate(lengths)]
    ys = [y[k, :L] for k, L in enumerate(lengths)]
    a = net.loss_and_grad(X, y, lengths=lengths)
    la, ga = a[0], a[1].copy()
    lb, gb = net.loss_and_grad(seqs, ys)
    assert la == lb and np.array_equal(ga, gb)
    out = net.predict(seqs, many_to_many=True)
    assert [o.shape for o in out] == [(L, 2) for L in lengths]
    padded = net.predict(X, lengths=lengths, many_to_many=True)
    for k, L in enumerate(lengths):
        assert np.array_equal(out[k], padded[k, :L])
    # one feature per step: (N, T) and (T_i,) sequences
    net1 = rnnumba.RNN(1, 3, random_state=0)
    X1 = X[:, :, 0]
    assert np.array_equal(
        net1.predict(X1, lengths=lengths), net1.predict([X1[k, :L] for k, L in enumerate(lengths)])
    )


@pytest.mark.parametrize("many", [False, True])
def test_batch_equals_its_samples_one_by_one(many):
    net = rnnumba.RNN(2, 6, random_state=0)
    X, lengths, y = data(50, 7, 2, 1, many)
    loss, grad = net.loss_and_grad(X, y, lengths=lengths)
    grad = grad.copy()
    weights = lengths if many else np.ones(len(lengths))
    total_l, total_g = 0.0, np.zeros_like(grad)
    for k in range(len(X)):
        L = lengths[k]
        lk, gk = net.loss_and_grad(X[k : k + 1, :L], y[k : k + 1, :L] if many else y[k : k + 1])
        total_l += weights[k] * lk
        total_g += weights[k] * gk
    assert abs(loss - total_l / weights.sum()) < 1e-12 * loss
    assert rel(grad, total_g / weights.sum()) < 1e-12
    pred = net.predict(X, lengths=lengths)
    one = np.vstack([net.predict(X[k : k + 1, : lengths[k]]) for k in range(len(X))])
    assert rel(pred, one) < 1e-13


def test_batch_is_split_into_chunks_by_shape_only():
    assert n_chunks(20, 26) == 2 and n_chunks(15, 26) == 1  # batches of 16-31 are halved
    assert n_chunks(32, 32) == 2 and n_chunks(48, 26) == 3
    assert n_chunks(256, 512) == 4 and n_chunks(64, 128) == 2
    assert n_chunks(10**6, 8) == 64
    # blocks halved (to 16 rows at least) where that puts every big buffer under 32 MiB
    # (above, a buffer is mapped afresh, and faulted in, on every call)
    lstm = memory.row_bytes(Layout("lstm", 64, 512), 100, 4)  # [h; x], state, dZ: 0.23, 1.18, 0.79 MiB
    assert n_chunks(256, 512, lstm) == 16  # 64 rows: state and dZ above; 32: the state; 16: none
    assert n_chunks(256, 512, memory.row_bytes(Layout("gru", 64, 512), 100, 4)) == 8  # 32 rows fit
    assert n_chunks(256, 512, memory.row_bytes(Layout("gru", 64, 512), 100, 8)) == 16
    assert n_chunks(256, 512, memory.row_bytes(Layout("lstm", 64, 512), 100, 8)) == 4  # 16 rows: 40 MB
    assert n_chunks(256, 512, memory.row_bytes(Layout("elman", 64, 512), 100, 8)) == 4  # 64 rows fit
    assert n_chunks(64, 128, memory.row_bytes(Layout("elman", 3, 128), 2000, 8)) == 2  # never fits
    assert n_chunks(256, 512, tuple(100 * b for b in lstm)) == 4
    # the backend's calls cut by it (the epoch's minibatches too: FirstOrder.epoch)
    assert rnnumba.RNN(64, 512, cell="lstm", dtype="float32").backend.plan(256, 100).chunks == 16
    assert rnnumba.RNN(64, 512, cell="gru", dtype="float32").backend.plan(256, 100).chunks == 8
    # a prediction keeps [h; x] rows only (the state in a ring of two): blocks of 64 rows
    lstm_plan = rnnumba.RNN(64, 512, cell="lstm", dtype="float32").backend.plan(256, 100)
    assert lstm_plan.predict_chunks == 4 and lstm_plan.predict_blas
    assert rnnumba.RNN(1, 26).backend.plan(20, 3).predict_chunks == 2  # as training's


def test_a_prediction_is_cut_into_blocks_by_its_own_plan(monkeypatch):
    """Its state in a ring of two rows, a prediction keeps [h; x] rows only, so its blocks
    may hold more samples than training's (here 64 against 32: a training block's state
    of 64 samples would pass 32 MiB); the same outputs, bitwise, in either cut."""
    from rnnumba import engine

    net = rnnumba.RNN(8, 256, cell="lstm", dtype="float32", random_state=0)
    X = np.random.default_rng(0).normal(size=(128, 100, 8)).astype(np.float32)
    plan = net.backend.plan(128, 100)
    assert (plan.chunks, plan.predict_chunks) == (4, 2)
    blocks, kernels = [], engine.kernels

    def recording(family, ck=False):
        k = kernels(family, ck)
        return k._replace(predict=lambda *a: blocks.append(a[-3]) or k.predict(*a))

    monkeypatch.setattr(engine, "kernels", recording)
    out = net.predict(X)
    assert blocks == [2]
    four = np.concatenate([net.predict(X[r : r + 32]) for r in range(0, 128, 32)])  # blocks of 16
    np.testing.assert_array_equal(out, four)


def test_float32_runs_and_agrees_with_float64():
    X, lengths, y = data(30, 6, 2, 1)
    n64 = rnnumba.RNN(2, 5, random_state=0)
    n32 = rnnumba.RNN(2, 5, dtype=np.float32, random_state=0)
    l64, g64 = n64.loss_and_grad(X, y, lengths=lengths)
    l32, g32 = n32.loss_and_grad(X, y, lengths=lengths)
    assert g32.dtype == np.float32 and n32.predict(X).dtype == np.float32
    assert abs(l32 - l64) < 1e-5 * l64 and rel(g32, g64) < 1e-4


DETERMINISM = textwrap.dedent(
    """
    import hashlib, sys
    import numpy as np
    import rnnumba
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 12, 3)); lengths = rng.integers(1, 13, 300); y = rng.normal(size=(300, 2))
    for dtype in (np.float64, np.float32):
        net = rnnumba.RNN(3, 20, 2, num_layers=2, bidirectional=True, dtype=dtype, random_state=0)
        loss, grad = net.loss_and_grad(X, y, lengths=lengths)
        p = net.predict(X, lengths=lengths)
        print(repr(loss), hashlib.sha256(grad.tobytes() + p.tobytes()).hexdigest())
        net = rnnumba.RNN(3, 20, 2, cell="gru", num_layers=3, dropout=0.4, dtype=dtype, random_state=0)
        loss, grad = net.loss_and_grad(X, y, lengths=lengths, dropout_seed=7)
        print(repr(loss), hashlib.sha256(grad.tobytes()).hexdigest())
        net = rnnumba.RNN(3, 20, 2, cell="lstm", num_layers=2, dtype=dtype, random_state=0)
        h0 = rng.normal(size=(2, 2, 300, 20)).astype(dtype)
        loss, grad = net.loss_and_grad(X, y, lengths=lengths, h0=(h0[0], h0[1]))
        p, (hn, cn) = net.predict(X, lengths=lengths, h0=(h0[0], h0[1]), return_state=True)
        digest = b"".join(a.tobytes() for a in (grad, *net.grad_h0, p, hn, cn))
        print(repr(loss), hashlib.sha256(digest).hexdigest())
        net = rnnumba.RNN(3, 128, 2, cell="lstm", dtype=dtype, random_state=0)  # float64: wide gates
        loss, grad = net.loss_and_grad(X[:64], y[:64], lengths=lengths[:64])
        p = net.predict(X[:64], lengths=lengths[:64])
        print(repr(loss), hashlib.sha256(grad.tobytes() + p.tobytes()).hexdigest())
    """
)


def test_results_do_not_depend_on_the_thread_count():
    outs = []
    for threads in ("1", "2"):
        env = dict(os.environ, NUMBA_NUM_THREADS=threads, PYTHONPATH=ROOT)
        run = subprocess.run([sys.executable, "-c", DETERMINISM], env=env, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        outs.append(run.stdout)
    assert outs[0] == outs[1] and len(outs[0].splitlines()) == 8


def test_repeated_calls_are_bitwise_identical():
    net = rnnumba.RNN(2, 7, random_state=0)
    X, lengths, y = data(100, 5, 2)
    a = net.loss_and_grad(X, y, lengths=lengths)[1].copy()
    b = net.loss_and_grad(X, y, lengths=lengths)[1]
    assert np.array_equal(a, b)


# -- scipy ---------------------------------------------------------------------


def test_objective_trains_with_lbfgs_and_hands_back_fresh_arrays():
    net = rnnumba.RNN(1, 6, random_state=0)
    X, lengths, y = data(64, 4, 1, seed=3)
    y = X[np.arange(64), lengths - 1, :]  # learnable: the last valid input
    f = net.objective(X, y, lengths=lengths)
    theta0 = net.theta.copy()
    l0, g0 = f(theta0)
    l1, g1 = f(theta0 + 0.01)
    assert g0 is not g1 and not np.shares_memory(g0, g1) and not np.array_equal(g0, g1)
    assert np.array_equal(net.theta, theta0)  # evaluating does not move the net
    res = scipy.optimize.minimize(f, theta0, jac=True, method="L-BFGS-B", options=dict(maxiter=200))
    assert res.fun < 0.05 * l0
    net.set_theta(res.x)
    assert abs(net.loss_and_grad(X, y, lengths=lengths)[0] - res.fun) < 1e-12


# -- bad input -----------------------------------------------------------------


@pytest.fixture(scope="module")
def net():
    return rnnumba.RNN(2, 3, random_state=0)


X0 = np.zeros((4, 3, 2))
y0 = np.zeros(4)


@pytest.mark.parametrize(
    "X,y,kw,err,match",
    [
        (np.full((4, 3, 2), np.nan), y0, {}, ValueError, r"NaN or inf .* sample 0, step 0"),
        (np.where(np.arange(3)[None, :, None] == 2, np.inf, X0), y0, {}, ValueError, "step 2"),
        (X0, np.zeros(5), {}, ValueError, "5 samples but X has 4"),
        (np.zeros((4, 3, 5)), y0, {}, ValueError, "5 feature"),
        (X0, y0, {"lengths": [1, 0, 2, 3]}, ValueError, r"\[1, T=3\], got 0 at sample 1"),
        (X0, y0, {"lengths": [1, 4, 2, 3]}, ValueError, "got 4 at sample 1"),
        (X0, y0, {"lengths": [1, 2]}, ValueError, "lengths must have shape"),
        (X0, y0, {"lengths": [1.5, 2, 2, 2]}, TypeError, "whole numbers"),
        (np.zeros((0, 3, 2)), np.zeros(0), {}, ValueError, "empty"),
        (np.zeros((4, 0, 2)), y0, {}, ValueError, "no time steps"),
        ([], y0, {}, ValueError, "empty"),
        ([np.zeros((2, 2)), np.zeros((0, 2))], np.zeros(2), {}, ValueError, r"X\[1\] is an empty sequence"),
        ([np.zeros((2, 2)), np.zeros((2, 3))], np.zeros(2), {}, ValueError, "different numbers of features"),
        (np.array([["a"] * 3] * 4), y0, {}, TypeError, "numeric"),
        (X0.astype(complex), y0, {}, TypeError, "real"),
        (np.zeros((4,)), y0, {}, ValueError, "shape"),
        (X0, np.array(["a"] * 4), {}, TypeError, "numeric"),
        (X0, np.array([0.0, np.nan, 0, 0]), {}, ValueError, "NaN or inf"),
        (X0, np.zeros((4, 2)), {}, ValueError, "O=1"),
        (X0, np.array([0, 1, 2, 1]), {}, ValueError, r"class targets must lie in \[0, 0\]"),
    ],
)
def test_bad_input_gets_a_clear_error(net, X, y, kw, err, match):
    theta = net.theta.copy()
    with pytest.raises(err, match=match):
        net.loss_and_grad(X, y, **kw)
    assert np.array_equal(net.theta, theta)


def test_bad_input_to_predict_and_parameters(net):
    with pytest.raises(ValueError, match="NaN or inf"):
        net.predict(np.full((2, 3, 2), np.nan))
    with pytest.raises(ValueError, match="shape"):
        net.set_theta(np.zeros(3))
    with pytest.raises(ValueError, match="non-finite"):
        net.set_theta(np.full(net.n_params, np.nan))
    with pytest.raises(ValueError, match="theta must have shape"):
        net.objective(X0, y0)(np.zeros(2))
    with pytest.raises(ValueError, match="cell must be"):
        rnnumba.RNN(1, 2, cell="transformer")
    with pytest.raises(ValueError, match="hidden must be a positive integer"):
        rnnumba.RNN(1, 0)
    with pytest.raises(ValueError, match="lengths= is for padded arrays"):
        net.predict([np.zeros((2, 2))], lengths=[2])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_non_finite_values_on_the_dense_path(dtype):
    """The dense training path leaves the NaN/inf check to the kernel (a chunk
    with one returns NaN) and then takes the full checks: a NaN or inf in any
    chunk's inputs or targets is a ValueError that names it, the parameters
    untouched; a diverged network (finite data) gets its NaN loss back."""
    rng = np.random.default_rng(8)
    X, y = rng.normal(size=(40, 5, 1)).astype(dtype), rng.normal(size=40).astype(dtype)
    net = rnnumba.RNN(1, 8, dtype=dtype, random_state=0)
    assert net.backend.plan(40, 5).chunks > 1  # the parallel kernel
    loss = net.loss_and_grad(X, y)[0]
    theta = net.theta.copy()
    for where, value in [(0, np.nan), (39, np.inf), (17, -np.inf)]:
        Xb, yb = X.copy(), y.copy()
        Xb[where, 3, 0] = value
        with pytest.raises(ValueError, match=f"sample {where}, step 3"):
            net.loss_and_grad(Xb, y)
        yb[where] = value
        with pytest.raises(ValueError, match="NaN or inf"):
            net.loss_and_grad(X, yb)
        assert np.array_equal(net.theta, theta)
    assert net.loss_and_grad(X, y)[0] == loss
    net.theta[:] = np.nan
    assert np.isnan(net.loss_and_grad(X, y)[0])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dense_batch_fast_path_equals_the_full_checks(dtype):
    """C-contiguous arrays of the network's dtype without lengths skip the
    general checks: what comes out must be exactly what they give, and
    anything else (bad input included) must fall through to them."""
    from rnnumba.backends.cpu import Plan
    from rnnumba.validation import check_sequences, check_targets, dense_batch

    dt = np.dtype(dtype)
    rng = np.random.default_rng(3)

    def plans(N, T):  # as CPU.plan
        return Plan(1, False, np.full(N, T, dtype=np.int64), None, (0, 0), 1, False)

    shapes = [((5, 4), (5,), 1, 1), ((5, 4, 2), (5, 1), 2, 1), ((5, 4, 2), (5, 3), 2, 3)]
    for shape_X, shape_y, I, O in shapes:
        X, y = rng.normal(size=shape_X).astype(dt), rng.normal(size=shape_y).astype(dt)
        fast = dense_batch(X, y, dt, I, O, plans)
        assert fast is not None and np.shares_memory(fast[0], X) and np.shares_memory(fast[1], y)
        Xs, L, _ = check_sequences(X, None, I, dt)
        Ys, many, count = check_targets(y, 5, 4, L, O, "mse", dt)
        assert np.array_equal(fast[2].lengths, L)
        for a, b in zip(fast[:2], (Xs, Ys), strict=True):
            assert a.shape == b.shape and a.dtype == b.dtype and a.flags.c_contiguous
            assert np.array_equal(a, b)
        net = rnnumba.RNN(I, 6, O, dtype=dt, random_state=0)
        loss_fast, g = net.loss_and_grad(X, y)
        g = g.copy()
        loss_full, g_full = net.loss_and_grad(X, y, lengths=np.full(5, 4))  # lengths=: the full checks
        assert loss_fast == loss_full and np.array_equal(g, g_full)

    X, y = rng.normal(size=(5, 4, 1)).astype(dt), rng.normal(size=5).astype(dt)
    other = np.float32 if dt == np.float64 else np.float64
    X_nan, y_inf = X.copy(), y.copy()
    X_nan[2, 3, 0], y_inf[4] = np.nan, -np.inf
    for Xb, yb, I, O in [
        (list(X), y, 1, 1),
        (X, list(y), 1, 1),
        (X.astype(other), y, 1, 1),
        (X, y.astype(other), 1, 1),
        (X, y.astype(np.int64), 1, 1),
        (X[:, ::2], y, 1, 1),
        (X, y[::-1], 1, 1),
        (X_nan, y, 1, 1),
        (X, y_inf, 1, 1),
        (X, y, 2, 1),
        (X[:, :, 0], y, 2, 1),
        (X, y[:, None], 1, 2),
        (X, y[:4], 1, 1),
        (X, np.zeros((5, 4, 1), dt), 1, 1),
        (X[:0], y[:0], 1, 1),
        (X[:, :0], y, 1, 1),
    ]:
        assert dense_batch(Xb, yb, dt, I, O, plans) is None


# -- numba habits ----------------------------------------------------------------

NO_COMPILE = textwrap.dedent(
    """
    import numba.core.registry, sys
    import rnnumba, rnnumba.engine as e, rnnumba.cells.elman as c, rnnumba.losses as l
    from numba.core.dispatcher import Dispatcher
    ds = [v for m in (e, c, l) for v in vars(m).values() if isinstance(v, Dispatcher)]
    assert len(ds) > 5 and all(not d.signatures for d in ds), [d for d in ds if d.signatures]
    print("ok")
    """
)


def test_borrow_gives_the_same_memory():
    """``borrow`` (the kernels' arrays without a reference count) must give the
    same memory, shape and strides: views of it read and write the original."""
    from numba import njit
    from numba.core.errors import TypingError

    from rnnumba._borrow import borrow

    @njit
    def scale_rows(A, s):
        B = borrow(A)
        for i in range(B.shape[0]):
            row = B[i]
            row *= s
        return B.strides[0], B[-1].sum()

    A = np.arange(12.0).reshape(3, 4)
    assert scale_rows(A, 2.0) == (32, 2 * (8 + 9 + 10 + 11))
    assert np.array_equal(A, 2 * np.arange(12.0).reshape(3, 4))
    C = np.arange(24.0).reshape(4, 6)[::2, 1::2]  # strided
    scale_rows(C, -1.0)
    assert np.array_equal(C, -np.arange(24.0).reshape(4, 6)[::2, 1::2])

    @njit
    def not_an_array(x):
        return borrow(x)

    with pytest.raises(TypingError):
        not_an_array(3.0)


def test_import_compiles_nothing():
    env = dict(os.environ, PYTHONPATH=ROOT)
    run = subprocess.run([sys.executable, "-c", NO_COMPILE], env=env, capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr


NO_CACHE = textwrap.dedent(
    """
    import numba, numba.core.caching as caching
    caching.CacheImpl._locator_classes = []  # no writable cache anywhere, as on a read-only install
    try:
        numba.njit(cache=True)(lambda x: x)
        raise SystemExit("premise failed: cache=True did not raise")
    except RuntimeError:
        pass
    import numpy as np, rnnumba
    print(rnnumba.RNN(1, 3, random_state=0).predict(np.ones((2, 3))).shape)
    """
)


def test_read_only_install_still_imports_and_runs():
    env = dict(os.environ, PYTHONPATH=ROOT)
    run = subprocess.run([sys.executable, "-c", NO_CACHE], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "(2, 1)"


# -- malloc thresholds (rnnumba._heap) ---------------------------------------------


def test_heap_tuning_runs_once_and_can_be_turned_off():
    from rnnumba import _heap

    code = (
        "import rnnumba, numpy as np; n = rnnumba.RNN(1, 3); n.predict(np.zeros((2, 4))); "
        "print(rnnumba._heap.tune())"
    )
    outs = {}
    for value in ("", "default"):
        env = dict(os.environ, PYTHONPATH=ROOT, RNNUMBA_MALLOC=value)
        run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        outs[value] = run.stdout.strip()
    assert outs["default"] == "False"  # the opt-out leaves malloc alone
    if sys.platform.startswith("linux") and hasattr(__import__("ctypes").CDLL(None), "gnu_get_libc_version"):
        assert outs[""] == "True"  # glibc: thresholds raised
    assert _heap.tune() is _heap.tune()  # cached: once per process


# -- elementwise math ------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_products_match_numpy_in_every_regime(dtype):
    """The kernels' products against NumPy: row updates by two and by four
    rows (row counts and inner dimensions that are not multiples of 4, a ``B``
    wider than ``C``), dot products in loops and in 4x4 blocks, and BLAS."""
    from rnnumba import _linalg

    rng = np.random.default_rng(5)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    shapes = [(1, 1, 1, 0), (1, 5, 3, 2), (7, 3, 26, 1), (10, 26, 27, 0), (9, 27, 26, 5), (4, 8, 40, 3)]
    shapes += [(32, 144, 128, 16), (13, 33, 130, 1), (520, 600, 520, 7)]  # the last above LARGE: BLAS
    for m, k, n, extra in shapes:  # extra: columns of B beyond C's
        A, B = rng.normal(size=(m, k)).astype(dtype), rng.normal(size=(k, n + extra)).astype(dtype)
        for mm in (_linalg.mm_nn_rows, _linalg.mm_nn_blocked):
            C = np.full((m, n), np.nan, dtype)
            mm(A, B, C)
            assert rel(C, A @ B[:, :n]) < tol, (mm, m, k, n)
    for m, k, n in [(10, 27, 26), (5, 31, 33), (9, 40, 37), (33, 64, 130), (600, 520, 520)]:
        A, B = rng.normal(size=(m, k)).astype(dtype), rng.normal(size=(n, k)).astype(dtype)
        C = np.full((m, n), np.nan, dtype)
        _linalg.mm_nt(A, B, C)
        assert rel(C, A @ B.T) < tol
        E, D = rng.normal(size=(m, n)).astype(dtype), np.full((k, n), np.nan, dtype)
        _linalg.mm_tn(A, E, D)
        assert rel(D, A.T @ E) < tol
    for k in [0, 1, 5, 127, 128, 129, 300]:  # blocks of TN_BLOCK rows, and none at all
        A, B = rng.normal(size=(k, 26)).astype(dtype), rng.normal(size=(k, 27)).astype(dtype)
        C = np.full((26, 27), np.nan, dtype)
        _linalg.mm_tn_blocked(A, B, C)
        assert np.array_equal(C, np.zeros_like(C)) if k == 0 else rel(C, A.T @ B) < tol


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_weights_in_strips_change_no_bit(dtype):
    """Weights of more than ``STRIP_FROM`` bytes are walked in strips: the dot
    products (the strips: blocks of ``B``'s rows) equal those of the same
    kernel over each block of rows alone, and the row updates (the strips:
    ranges of the inner dimension, rows of ``C`` not a multiple of 4) equal
    one pass over the whole range, bitwise; both against NumPy too."""
    from rnnumba import _dots, _linalg

    rng = np.random.default_rng(7)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    k, n = 576, 2048  # the large LSTM's per-step product: W (4H, H + I)
    assert n * k * np.dtype(dtype).itemsize > _dots.STRIP_FROM > 256 * k * np.dtype(dtype).itemsize
    A, B = rng.normal(size=(66, k)).astype(dtype), rng.normal(size=(n, k)).astype(dtype)
    C = np.full((66, n), np.nan, dtype)
    _linalg.mm_nt(A, B, C)
    for j in range(0, n, 256):  # 256 rows of B: under STRIP_FROM, one pass
        part = np.full((66, 256), np.nan, dtype)
        _linalg.mm_nt(A, np.ascontiguousarray(B[j : j + 256]), part)
        assert np.array_equal(C[:, j : j + 256], part)
    assert rel(C, A @ B.T) < tol
    for m, q in [(64, 2048), (66, 2046)]:  # BPTT's product dz W[:, :H], and ragged shapes
        A, W = rng.normal(size=(m, q)).astype(dtype), rng.normal(size=(q, k)).astype(dtype)
        C, one = np.full((m, 512), np.nan, dtype), np.full((m, 512), np.nan, dtype)
        _linalg.mm_nn_blocked(A, W, C)
        _linalg._nn_range(A, W, one, False, 0, q)
        assert np.array_equal(C, one) and rel(C, A @ W[:, :512]) < tol


def test_wide_dot_products_are_chosen_by_shape_and_run_on_512_bit_registers():
    """``_dots.wide_rows``: rows of four or more whole 64-byte registers take
    the 512-bit dot products on a CPU with AVX-512; the same product has the
    same bits wherever its operands lie (a choice by address would not), equal
    to NumPy; and the attributes ``wide_vectors`` sets do make LLVM use the
    512-bit registers (``zmm``) in a loop that has them."""
    import numba

    from rnnumba import _dots, _linalg

    cases = [(64, 4, True), (576, 4, True), (136, 4, False), (32, 4, False), (32, 8, True), (33, 8, False)]
    for k, itemsize, wide in cases:
        assert _dots.wide_rows(k, itemsize) == (wide and _dots.VECTORS_512), (k, itemsize)
    rng = np.random.default_rng(3)
    for dtype in (np.float32, np.float64):
        tol = 1e-12 if dtype == np.float64 else 1e-5
        for m, k, n in [(16, 128, 33), (33, 144, 512), (6, 40, 9), (20, 64, 64)]:
            A, B = rng.normal(size=(m, k)).astype(dtype), rng.normal(size=(n, k)).astype(dtype)
            outs = []
            for shift in range(0, 64, 8):  # operands at every offset from a cache line, in 8-byte steps
                size = np.dtype(dtype).itemsize
                bufs = [np.empty(a.size + 128 // size, dtype) for a in (A, B)]
                placed = []
                for buf, a in zip(bufs, (A, B), strict=True):
                    start = ((-buf.ctypes.data % 64) + shift) // size
                    placed.append(buf[start : start + a.size].reshape(a.shape))
                    placed[-1][...] = a
                C = np.full((m, n), np.nan, dtype)
                _linalg.mm_nt(placed[0], placed[1], C)
                outs.append(C)
            assert all(np.array_equal(outs[0], C) for C in outs), (dtype, m, k, n)
            assert rel(outs[0], A @ B.T) < tol

    def dot(a, b):
        _dots.wide_vectors()
        s = a.dtype.type(0)
        for q in range(a.shape[0]):
            s += a[q] * b[q]
        return s

    fast = numba.njit(fastmath=True)(dot)
    x = np.ones(1024, np.float32)
    assert fast(x, x) == 1024
    if _dots.VECTORS_512:
        assert "zmm" in fast.inspect_asm(fast.signatures[0])


@pytest.mark.parametrize("memory", ["full", "checkpoint"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_weights_anywhere_in_memory_give_the_same_bits(memory, dtype):
    """``theta`` at every 8-byte offset from a cache line (the engine copies
    weights that do not start on one, for the 512-bit products; ``[h; x]`` 64
    wide, so no padding copies them anyway): the same loss and gradient, bit
    for bit, in the full-storage engine and in lockstep; ``theta`` is left as
    it was, and the gradient agrees with float64 finite differences."""
    import rnnumba

    net = rnnumba.RNN(8, 56, cell="lstm", dtype=dtype, random_state=0)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 7, 8)).astype(dtype)
    y = rng.normal(size=40).astype(dtype)
    lengths = rng.integers(1, 8, 40)
    size = np.dtype(dtype).itemsize
    results = []
    for shift in range(0, 64, 8):
        buf = np.empty(net.n_params + 128 // size, dtype)
        start = ((-buf.ctypes.data % 64) + shift) // size
        theta = buf[start : start + net.n_params]
        theta[:] = net.theta
        loss, grad = net.loss_and_grad(X, y, lengths=lengths, theta=theta, memory=memory)
        assert np.array_equal(theta, net.theta)
        results.append((loss, grad.copy()))
    assert all(loss == results[0][0] and np.array_equal(grad, results[0][1]) for loss, grad in results)
    if dtype == "float64":
        grad, probe = results[0][1], rng.normal(size=net.n_params)
        step = 1e-6
        up = net.loss_and_grad(X, y, lengths=lengths, theta=net.theta + step * probe, memory=memory)[0]
        down = net.loss_and_grad(X, y, lengths=lengths, theta=net.theta - step * probe, memory=memory)[0]
        assert abs((up - down) / (2 * step) - grad @ probe) < 1e-6 * max(1.0, abs(grad @ probe))


def test_work_buffers_start_on_a_cache_line():
    """``empty_aligned`` (and ``transposed``, which uses it) gives C-contiguous
    arrays whose data start on a 64-byte boundary (numba's own arrays: 32), on
    a 4 KiB one from ``PAGE_FROM`` elements, in fresh allocations at many
    addresses; ``transposed(W)`` equals ``W.T``."""
    import numba

    from rnnumba import _linalg

    @numba.njit
    def make(rows, cols, W):
        return _linalg.empty_aligned(rows, cols, W.dtype), _linalg.transposed(W)

    @numba.njit
    def make3(d0, d1, d2, W):
        return _linalg.empty_aligned3(d0, d1, d2, W.dtype), _linalg.zeros_aligned3(d0, d1, d2, W.dtype)

    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        for rows, cols in [(1, 1), (3, 5), (32, 128), (7, 33), (1, 511), (1, 512), (600, 7)]:
            W = rng.normal(size=(rows, cols)).astype(dtype)
            page = 4096 if rows * cols >= _linalg.PAGE_FROM else 64
            for _ in range(20):
                E, WT = make(rows, cols, W)
                assert E.shape == (rows, cols) and E.dtype == dtype and E.flags.c_contiguous
                assert E.ctypes.data % page == 0 and WT.ctypes.data % page == 0
                assert WT.flags.c_contiguous and np.array_equal(WT, W.T)
        for shape in [(1, 1, 1), (3, 2, 5), (11, 7, 33), (0, 4, 4)]:
            for _ in range(20):
                E, Z = make3(*shape, W)
                page = 4096 if E.size >= _linalg.PAGE_FROM else 64
                for X in (E, Z):
                    assert X.shape == shape and X.dtype == dtype and X.flags.c_contiguous
                    assert X.size == 0 or X.ctypes.data % page == 0
                assert not Z.any()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_tanh_and_sigmoid_are_accurate_in_both_precisions(dtype):
    """The kernels' vectorisable tanh/sigmoid (float32 arithmetic for float32)
    against NumPy in float64, over [-45, 45] and tiny arguments, compiled with
    the kernels' fastmath flags (which would let LLVM merge the two halves of
    ln 2 if it chose to)."""
    import numba

    from rnnumba._jit import FASTMATH
    from rnnumba._math import sigmoid, tanh

    @numba.njit(error_model="numpy", fastmath=set(FASTMATH))
    def apply(x, out_t, out_s):
        for i in range(x.shape[0]):
            out_t[i] = tanh(x[i])
            out_s[i] = sigmoid(x[i])

    tiny = np.geomspace(1e-30, 1, 500)
    x = np.concatenate([np.linspace(-45, 45, 400_001), tiny, -tiny]).astype(dtype)
    out_t, out_s = np.empty_like(x), np.empty_like(x)
    apply(x, out_t, out_s)
    assert out_t.dtype == out_s.dtype == dtype
    xr, eps = x.astype(np.float64), np.finfo(dtype).eps
    # both: exp by 2^k expm1(r) (float32's earlier series at y/64 and six doublings was off
    # by up to 3.2 ulp in tanh and 49 in sigmoid: this bound fails it)
    ulps = (3, 2, 4, 10) if dtype == np.float64 else (3, 2, 2, 3)
    want_t = np.tanh(xr)
    assert (np.abs(out_t - want_t) / np.abs(want_t).clip(1e-300)).max() <= ulps[0] * eps
    want_s = 1.0 / (1.0 + np.exp(-xr))
    rel_s = np.abs(out_s - want_s) / want_s
    assert rel_s[np.abs(xr) <= 1].max() <= ulps[1] * eps
    assert rel_s[np.abs(xr) <= 10].max() <= ulps[2] * eps
    assert rel_s[np.abs(xr) <= 39].max() <= ulps[3] * eps
    beyond = np.abs(xr) > 39  # clipped there: never overflowing, off by under 1.2e-17
    assert np.abs(out_s - want_s)[beyond].max() <= 1.2e-17
