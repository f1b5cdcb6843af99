"""Initial and final states: ``h0=`` in ``loss_and_grad``/``predict``/``objective``,
``grad_h0``, ``predict(return_state=True)``.

The reference's dL/dh0 is checked by finite differences; the kernels agree with
it (every cell x 1 or 2 layers x one or two directions x many-to-one or
many-to-many, variable lengths) and with PyTorch (``nn.RNN(x, h0)`` and its
``h_n``); carrying the final state into the next piece of a sequence equals
reading it whole; a zero ``h0`` is bitwise no ``h0``; bad states get clear errors.
"""

import numpy as np
import pytest
import reference as ref
import scipy.optimize
from test_cells import CELLS, make_data, make_net

from rnnumba import RNN

LENGTHS = np.array([1, 5, 3, 2])
T = 5
CASES = [
    pytest.param(
        name, layers, bi, many, id=f"{name}-L{layers}-{'bi' if bi else 'uni'}-{'m2m' if many else 'm2o'}"
    )
    for name in CELLS
    for layers in (1, 2)
    for bi in (False, True)
    for many in (False, True)
]


def make_state(net, N, seed=5, scale=0.8):
    """Random initial states for ``net``: an array, or (h0, c0) for an LSTM."""
    L = net.layout
    rng = np.random.default_rng(seed)
    shape = (L.num_layers * L.directions, N, L.hidden)
    h0 = rng.normal(0.0, scale, shape).astype(net.dtype)
    return (h0, rng.normal(0.0, scale, shape).astype(net.dtype)) if L.cell == "lstm" else h0


def parts(state):
    return list(state) if isinstance(state, tuple) else [state]


def rel(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b), 1e-300)


@pytest.mark.parametrize("name", list(CELLS))
def test_reference_state_gradient_is_finite_differences(name):
    net, gru = make_net(name, num_layers=2, bidirectional=True)
    X, _, y = make_data(many=True)
    h0 = make_state(net, len(LENGTHS))
    _, _, dh0 = ref.loss_and_grad(net.layout, net.theta, X, LENGTHS, y, "mse", True, gru, h0=h0)
    for k, (a, da) in enumerate(zip(parts(h0), parts(dh0), strict=True)):
        flat = a.astype(np.float64).ravel()

        def f(v, k=k, shape=a.shape):
            state = [p.astype(np.float64) for p in parts(h0)]
            state[k] = v.reshape(shape)
            state = tuple(state) if isinstance(h0, tuple) else state[0]
            return ref.loss_value(net.layout, net.theta, X, LENGTHS, y, "mse", True, gru, h0=state)

        fd = ref.numerical_grad(f, flat)
        assert rel(da.ravel(), fd) < 1e-7
        assert np.any(da != 0.0)


@pytest.mark.parametrize("name, layers, bi, many", CASES)
def test_kernels_match_reference_with_initial_state(name, layers, bi, many):
    net, gru = make_net(name, num_layers=layers, bidirectional=bi)
    X, _, y = make_data(many=many, pad=np.nan)
    h0 = make_state(net, len(LENGTHS))
    value, grad = net.loss_and_grad(X, y, lengths=LENGTHS, h0=h0)
    v_ref, g_ref, dh_ref = ref.loss_and_grad(net.layout, net.theta, X, LENGTHS, y, "mse", many, gru, h0=h0)
    assert value == pytest.approx(v_ref, rel=1e-12)
    assert rel(grad, g_ref) < 1e-10
    assert type(net.grad_h0) is type(dh_ref)
    for got, want in zip(parts(net.grad_h0), parts(dh_ref), strict=True):
        assert got.shape == want.shape and rel(got, want) < 1e-10
    out, hn = net.predict(X, lengths=LENGTHS, many_to_many=many, h0=h0, return_state=True)
    o_ref, hn_ref = ref.forward(net.layout, net.theta, X, LENGTHS, many, gru, h0=h0, return_state=True)
    np.testing.assert_allclose(out, o_ref, rtol=1e-10, atol=1e-12)
    for got, want in zip(parts(hn), parts(hn_ref), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    # the final state without h0 too
    _, hn0 = net.predict(X, lengths=LENGTHS, many_to_many=many, return_state=True)
    _, hn0_ref = ref.forward(net.layout, net.theta, X, LENGTHS, many, gru, return_state=True)
    for got, want in zip(parts(hn0), parts(hn0_ref), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
@pytest.mark.parametrize("layers, bi", [(1, False), (2, True)])
@pytest.mark.parametrize("many", [False, True], ids=["m2o", "m2m"])
def test_initial_state_matches_pytorch(cell, layers, bi, many):
    pytest.importorskip("torch")
    from torch_ref import build_torch, torch_forward, torch_loss_and_grad

    net, _ = make_net(cell, num_layers=layers, bidirectional=bi)
    X, _, y = make_data(many=many)
    h0 = make_state(net, len(LENGTHS))
    value, grad = net.loss_and_grad(X, y, lengths=LENGTHS, h0=h0)
    t_value, _, t_grad, t_dh0 = torch_loss_and_grad(net.layout, net.theta, X, LENGTHS, y, "mse", many, h0=h0)
    assert value == pytest.approx(t_value, rel=1e-12)
    assert rel(grad, t_grad) < 1e-9
    for got, want in zip(parts(net.grad_h0), parts(t_dh0), strict=True):
        assert rel(got, want) < 1e-9
    import torch

    rnn, head = build_torch(net.layout, net.theta)
    state = tuple(torch.from_numpy(a) for a in parts(h0))
    with torch.no_grad():
        _, t_state = torch_forward(
            net.layout, rnn, head, X, LENGTHS, many, state if cell == "lstm" else state[0], return_state=True
        )
    _, hn = net.predict(X, lengths=LENGTHS, h0=h0, return_state=True)
    for got, want in zip(parts(hn), parts(t_state if cell == "lstm" else (t_state,)), strict=True):
        assert rel(got, want.numpy()) < 1e-12


@pytest.mark.parametrize("name", list(CELLS))
def test_carrying_the_final_state_continues_the_sequence(name):
    net, _ = make_net(name, num_layers=2)
    rng = np.random.default_rng(3)
    X = rng.normal(size=(6, 9, 2))
    whole, h_whole = net.predict(X, many_to_many=True, return_state=True)
    first, h_mid = net.predict(X[:, :4], many_to_many=True, return_state=True)
    second, h_end = net.predict(X[:, 4:], many_to_many=True, h0=h_mid, return_state=True)
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), whole, rtol=1e-12, atol=1e-14)
    for got, want in zip(parts(h_end), parts(h_whole), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", list(CELLS))
def test_zero_initial_state_is_bitwise_no_initial_state(name):
    net, _ = make_net(name, num_layers=2, bidirectional=True)
    X, _, y = make_data(many=True)
    zeros = make_state(net, len(LENGTHS), scale=0.0)
    v0, g0 = net.loss_and_grad(X, y, lengths=LENGTHS)
    g0 = g0.copy()
    v1, g1 = net.loss_and_grad(X, y, lengths=LENGTHS, h0=zeros)
    assert v0 == v1 and np.array_equal(g0, g1)
    p0 = net.predict(X, lengths=LENGTHS, many_to_many=True)
    p1 = net.predict(X, lengths=LENGTHS, many_to_many=True, h0=zeros)
    np.testing.assert_array_equal(p0, p1)


@pytest.mark.parametrize("name", ["elman", "lstm", "gru"])
def test_state_gradient_of_a_batch_is_its_samples_one_by_one(name):
    # N = 40: several chunks on numba's threads; each sample's rows come from one chunk
    net, _ = make_net(name, num_layers=2, bidirectional=True, hidden=4)
    rng = np.random.default_rng(2)
    N = 40
    lengths = rng.integers(1, 7, N)
    X, y = rng.normal(size=(N, 6, 2)), rng.normal(size=(N, 3))
    h0 = make_state(net, N)
    net.loss_and_grad(X, y, lengths=lengths, h0=h0)
    batch = [p.copy() for p in parts(net.grad_h0)]
    for n in (0, 17, 39):
        one = tuple(p[:, n : n + 1] for p in parts(h0))
        net.loss_and_grad(X[n : n + 1, : lengths[n]], y[n : n + 1], h0=one if name == "lstm" else one[0])
        for got, whole in zip(parts(net.grad_h0), batch, strict=True):
            np.testing.assert_allclose(got[:, 0] / N, whole[:, n], rtol=1e-12, atol=1e-16)


def test_padding_changes_nothing_with_initial_state():
    net, _ = make_net("lstm", num_layers=2, bidirectional=True)
    h0 = make_state(net, len(LENGTHS))
    X, _, y = make_data(many=True, pad=0.0)
    v, g = net.loss_and_grad(X, y, lengths=LENGTHS, h0=h0)
    g, dh = g.copy(), [p.copy() for p in net.grad_h0]
    Xd, _, yd = make_data(many=True, pad=np.nan)
    vd, gd = net.loss_and_grad(Xd, yd, lengths=LENGTHS, h0=h0)
    assert v == vd and np.array_equal(g, gd)
    assert all(np.array_equal(a, b) for a, b in zip(dh, net.grad_h0, strict=True))


def test_float32_state():
    net, _ = make_net("gru", dtype=np.float32)
    X, _, y = make_data()
    h0 = make_state(net, len(LENGTHS))
    net.loss_and_grad(X, y, lengths=LENGTHS, h0=h0)
    assert net.grad_h0.dtype == np.float32
    out, hn = net.predict(X, lengths=LENGTHS, h0=h0.astype(np.float64), return_state=True)
    assert out.dtype == hn.dtype == np.float32
    n64, _ = make_net("gru")
    _, hn64 = n64.predict(X, lengths=LENGTHS, h0=h0, return_state=True)
    assert rel(hn, hn64) < 1e-5


def test_objective_with_fixed_initial_state_trains():
    net = RNN(1, 6, random_state=0)
    rng = np.random.default_rng(4)
    X = rng.normal(size=(48, 4))
    h0 = rng.normal(size=(1, 48, 6))
    y = X[:, -1] + 0.3 * h0[0, :, 0]  # needs the initial state
    f = net.objective(X, y, h0=h0)
    l0, g0 = f(net.theta.copy())
    assert l0 == net.loss_and_grad(X, y, h0=h0)[0]
    assert l0 != net.loss_and_grad(X, y)[0]
    res = scipy.optimize.minimize(f, net.theta.copy(), jac=True, method="L-BFGS-B", options=dict(maxiter=150))
    assert res.fun < 0.2 * l0


@pytest.mark.parametrize(
    "cell, h0, err, match",
    [
        ("elman", np.zeros((1, 4, 3)), ValueError, r"h0 must have shape .* = \(1, 3, 3\)"),
        ("elman", np.zeros((3, 3)), ValueError, "h0 must have shape"),
        (
            "elman",
            np.full((1, 3, 3), np.nan),
            ValueError,
            r"h0 holds a non-finite value at index \(0, 0, 0\)",
        ),
        ("elman", np.array([[["a"] * 3] * 3]), TypeError, "h0 must be numeric"),
        ("lstm", np.zeros((1, 3, 3)), TypeError, r"pair \(h0, c0\)"),
        ("lstm", (np.zeros((1, 3, 3)), np.zeros((2, 3, 3))), ValueError, "c0 must have shape"),
        ("lstm", (np.zeros((1, 3, 3)), np.full((1, 3, 3), np.inf)), ValueError, "c0 holds a non-finite"),
    ],
)
def test_bad_initial_state_gets_a_clear_error(cell, h0, err, match):
    net = RNN(2, 3, cell=cell, random_state=0)
    X, y = np.zeros((3, 4, 2)), np.zeros(3)
    with pytest.raises(err, match=match):
        net.loss_and_grad(X, y, h0=h0)
    with pytest.raises(err, match=match):
        net.predict(X, h0=h0)
    with pytest.raises(err, match=match):
        net.objective(X, y, h0=h0)
