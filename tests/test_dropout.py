"""Dropout between stacked layers: masks, exact gradients, determinism, training.

The kernels draw each mask entry from a hash of (key, layer, sample, step,
unit). The tests read the masks back through the kernel's own ``_dropout``
applied to ones, check their statistics, and feed them to the NumPy reference
(``tests/reference.py``, ``masks=``): loss and gradient must agree to 1e-10 for
every cell, stacked and bidirectional, many-to-one and many-to-many, with
variable lengths. A fixed seed fixes the masks, so the loss is a smooth
function of theta there and finite differences check the gradient too.
"""

import pickle
import warnings

import numpy as np
import pytest
import reference as ref
from test_cells import CELLS, NAMES, make_data, make_net, rel_err

import rnnumba
from rnnumba import RNN, dropout, engine, load
from rnnumba.chunks import n_chunks
from rnnumba.io import save


def masks_of(net, seed, N, T):
    """(num_layers - 1, N, T, H*D) multipliers the kernels use for ``seed``."""
    L, HD = net.layout.num_layers, net.layout.hidden * net.layout.directions
    drop = dropout.plan(net.dropout, seed)
    lens = np.full(N, T, dtype=np.int64)
    out = np.empty((L - 1, N, T, HD))
    for layer in range(L - 1):
        A = np.ones((T, N, HD), dtype=net.dtype)
        dropout.apply(A, drop, layer, 0, lens, 0)
        out[layer] = A.transpose(1, 0, 2)
    return out


def test_a_segment_of_steps_gets_the_masks_of_those_steps():
    """``apply`` on rows ``a : a + k`` with offset ``a`` multiplies them by the
    masks of steps ``a : a + k`` (lockstep's segments)."""
    drop = dropout.plan(0.4, 3)
    lens = np.array([9, 4, 0, 7], dtype=np.int64)
    whole = np.ones((9, 4, 5))
    dropout.apply(whole, drop, 1, 2, lens, 0)
    for a in (0, 3, 6):
        part = np.ones((3, 4, 5))
        dropout.apply(part, drop, 1, 2, lens, a)
        np.testing.assert_array_equal(part, whole[a : a + 3])
    assert (whole == 0).any() and (whole > 1).any()


def dropout_net(name, num_layers=2, bidirectional=False, p=0.4, **kwargs):
    net, gru = make_net(name, num_layers, bidirectional, **kwargs)
    net.dropout = p
    return net, gru


# -- the masks ---------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_masks_drop_a_fraction_p_and_scale_the_rest(p):
    net = RNN(3, 64, num_layers=3, bidirectional=True, dropout=p, random_state=0)
    m = masks_of(net, 123, 200, 10)
    keep = 1.0 / (1.0 - p)
    assert set(np.unique(m)) <= {0.0, keep} or np.allclose(np.unique(m)[1:], keep, rtol=1e-12)
    frac = np.mean(m == 0)
    assert abs(frac - p) < 4 * np.sqrt(p * (1 - p) / m.size)  # 4 standard deviations
    # unbiased: E[mask] = 1
    assert abs(m.mean() - 1.0) < 4 * keep * np.sqrt(p * (1 - p) / m.size)
    # the layers, samples, steps and units get different masks
    assert not np.array_equal(m[0], m[1])
    assert not np.array_equal(m[0, 0], m[0, 1])
    assert not np.array_equal(m[0, :, 0], m[0, :, 1])


def test_masks_depend_on_the_seed_only():
    net = RNN(3, 16, num_layers=2, dropout=0.5, random_state=0)
    a, b, c = masks_of(net, 1, 30, 4), masks_of(net, 1, 30, 4), masks_of(net, 2, 30, 4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    # a longer batch extends the same masks (sample and step are counters, not positions in a draw)
    assert np.array_equal(masks_of(net, 1, 50, 6)[:, :30, :4], a)


def test_no_seed_or_p_zero_means_no_dropout():
    net, _ = dropout_net("gru", 3)
    X, lengths, y = make_data()
    plain = net.copy()
    plain.dropout = 0.0
    l0, g0 = plain.loss_and_grad(X, y, lengths)
    g0 = g0.copy()
    l1, g1 = net.loss_and_grad(X, y, lengths)  # no dropout_seed: evaluation
    assert l1 == l0 and np.array_equal(g1, g0)
    l2, g2 = plain.loss_and_grad(X, y, lengths, dropout_seed=5)  # p = 0
    assert l2 == l0 and np.array_equal(g2, g0)
    l3, _ = net.loss_and_grad(X, y, lengths, dropout_seed=5)
    assert l3 != l0
    assert np.array_equal(net.predict(X, lengths), plain.predict(X, lengths))


# -- exact gradients -----------------------------------------------------------------


@pytest.mark.parametrize("loss", ["mse", "xent"])
@pytest.mark.parametrize("many", [False, True], ids=["many2one", "many2many"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("name", NAMES)
def test_matches_reference_with_masks(name, bidirectional, many, loss):
    net, gru = dropout_net(name, 3, bidirectional)
    X, lengths, y = make_data(many=many, loss=loss)
    m = masks_of(net, 99, X.shape[0], X.shape[1])
    assert 0 < np.mean(m == 0) < 1
    value, grad = net.loss_and_grad(X, y, lengths, loss=loss, dropout_seed=99)
    r_value, r_grad = ref.loss_and_grad(net.layout, net.theta, X, lengths, y, loss, many, gru, masks=m)
    assert abs(value - r_value) <= 1e-10 * abs(r_value)
    assert rel_err(grad, r_grad) <= 1e-10
    # and the masks matter: without them the reference disagrees
    _, plain = ref.loss_and_grad(net.layout, net.theta, X, lengths, y, loss, many, gru)
    assert rel_err(grad, plain) > 1e-3


@pytest.mark.parametrize("name", ["elman", "lstm_peephole", "gru_cho"])
def test_finite_differences_at_fixed_masks(name):
    net, _ = dropout_net(name, 2, True, p=0.3, hidden=2, scale=0.5)
    X, lengths, y = make_data(many=True)

    def f(theta):
        return net.loss_and_grad(X, y, lengths, theta=theta, dropout_seed=3)[0]

    grad = net.loss_and_grad(X, y, lengths, dropout_seed=3)[1].copy()  # f overwrites net.grad
    fd = ref.numerical_grad(f, net.theta.copy(), eps=1e-5)
    assert rel_err(grad, fd) < 1e-7


def test_chunking_and_threads_do_not_change_the_masks():
    """Masks are indexed by the sample's position in the batch, never by its chunk."""
    net = RNN(2, 8, num_layers=3, bidirectional=True, dropout=0.5, random_state=0)
    rng = np.random.default_rng(0)
    N, T = 70, 6
    X = rng.normal(size=(N, T, 2))
    lengths = rng.integers(1, T + 1, N)
    y = rng.normal(size=N)
    assert n_chunks(N, 8) > 1
    value, grad = net.loss_and_grad(X, y, lengths, dropout_seed=11)
    m = masks_of(net, 11, N, T)
    r_value, r_grad = ref.loss_and_grad(net.layout, net.theta, X, lengths, y[:, None], masks=m)
    assert abs(value - r_value) <= 1e-10 * r_value and rel_err(grad, r_grad) <= 1e-10
    # one chunk, directly through the engine: the same up to the order of the chunk sums
    one = np.empty_like(grad)
    Xp, L, Y, many, count, _ = net.prepare(X, y, lengths)
    drop = dropout.plan(0.5, 11)
    none = net.backend.no_state  # zero initial states, no dL/dh0
    be = net.backend
    args = (net.theta, one, be.specs[0][0], be.offsets, Xp, L, Y, 0, 1 / count, drop, none, none)
    v1 = engine.loss_and_grad(net.layout.kernel_family, *args, 1)
    assert abs(v1 - value) <= 1e-13 * value and rel_err(one, grad) <= 1e-13


def test_gradient_buffer_garbage_is_overwritten():
    """The kernels write every gradient entry (partial buffers are not zeroed)."""
    for name in NAMES:
        net, gru = dropout_net(name, 2, True)
        X, lengths, y = make_data()
        net.grad[:] = np.nan
        _, grad = net.loss_and_grad(X, y, lengths)
        _, r_grad = ref.loss_and_grad(net.layout, net.theta, X, lengths, y, gru=gru)
        assert rel_err(grad, r_grad) <= 1e-10, name


# -- training -----------------------------------------------------------------------


def toy(n=400, T=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, T, 2))
    return X, np.sin(X[:, :, 0]).sum(1) * 0.3 + 0.1 * X[:, -1, 1]


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_fit_with_dropout_is_seeded_and_learns(cell):
    X, y = toy()
    kw = dict(cell=cell, num_layers=2, hidden=8, dropout=0.3, epochs=4, lr=0.05, random_state=0)
    a = rnnumba.fit(X, y, **kw)
    b = rnnumba.fit(X, y, **kw)
    assert np.array_equal(a.theta_, b.theta_)  # seeded: bitwise the same
    c = rnnumba.fit(X, y, **dict(kw, random_state=1))
    assert not np.array_equal(a.theta_, c.theta_)
    plain = rnnumba.fit(X, y, **dict(kw, dropout=0.0))
    assert not np.array_equal(a.theta_, plain.theta_)  # the masks acted
    assert a.net_.dropout == 0.3
    assert a.loss_curve_[-1] < a.loss_curve_[0]
    assert np.all(np.isfinite(a.predict(X)))


def test_fit_without_dropout_is_unchanged_by_the_option():
    """dropout=0 draws nothing from the generator: the same shuffles as before."""
    X, y = toy()
    kw = dict(num_layers=2, hidden=6, epochs=2, random_state=0)
    assert np.array_equal(rnnumba.fit(X, y, **kw).theta_, rnnumba.fit(X, y, dropout=0.0, **kw).theta_)


def test_first_order_masks_follow_the_update_count():
    """Two epochs in one call equal two calls of one epoch: update u uses key mix(base + u)."""
    from rnnumba.solvers import FirstOrder

    X, y = toy(60)
    net = RNN(2, 5, num_layers=2, dropout=0.5, random_state=0)
    data = net.prepare(X, y)
    a, b = net.copy(), net.copy()
    oa, ob = FirstOrder(a, "sgd", 0.05, 20, seed=4), FirstOrder(b, "sgd", 0.05, 20, seed=4)
    order = np.arange(3)
    oa.epoch(data, np.concatenate([order, order]))
    ob.epoch(data, order)
    ob.epoch(data, order)
    assert np.array_equal(a.theta, b.theta)


# -- options, errors, persistence ---------------------------------------------------


def test_bad_dropout_values():
    for p in (-0.1, 1.0, 2, "0.5", True, float("nan")):
        with pytest.raises(ValueError, match="dropout"):
            RNN(1, 4, num_layers=2, dropout=p)
    X, y = toy(40)
    with pytest.raises(ValueError, match="dropout"):
        rnnumba.fit(X, y, num_layers=2, dropout=1.5, epochs=1)
    with pytest.raises(ValueError, match="minibatch solver"):
        rnnumba.fit(X, y, num_layers=2, dropout=0.2, solver="L-BFGS-B", epochs=1)


def test_one_layer_warns_that_dropout_does_nothing():
    with pytest.warns(UserWarning, match="num_layers=1"):
        RNN(1, 4, dropout=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        RNN(1, 4, num_layers=2, dropout=0.5)


def test_cuda_refuses_dropout_clearly():
    with pytest.raises(ValueError, match="GPU"):
        RNN(1, 4, num_layers=2, dropout=0.5, device="cuda")
    X, y = toy(40)
    with pytest.raises(ValueError, match="GPU"):
        rnnumba.fit(X, y, num_layers=2, dropout=0.2, device="cuda", epochs=1)


def test_dropout_survives_copy_pickle_and_save(tmp_path):
    net = RNN(2, 4, cell="lstm", num_layers=2, dropout=0.25, random_state=0)
    assert net.copy().dropout == 0.25
    assert pickle.loads(pickle.dumps(net)).dropout == 0.25
    save(net, tmp_path / "net.npz")
    back = load(tmp_path / "net.npz")
    assert back.dropout == 0.25 and np.array_equal(back.theta, net.theta)
    assert "dropout=0.25" in repr(net)
    X, y = toy(40)
    est = rnnumba.fit(X, y, num_layers=2, hidden=4, dropout=0.2, epochs=1, random_state=0)
    save(est, tmp_path / "est.npz")
    est2 = load(tmp_path / "est.npz")
    assert est2.dropout == 0.2 and est2.net_.dropout == 0.2
    assert np.array_equal(est2.predict(X), est.predict(X))
    assert est.get_params()["dropout"] == 0.2


def test_every_cell_is_covered():
    assert set(NAMES) == set(CELLS)
