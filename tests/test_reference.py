"""Proofs that the NumPy reference (tests/reference.py) is right.

* its hand-written BPTT equals central finite differences of its loss, for
  every cell, depth, direction, output mode and loss;
* padding never matters; a batch is the count-weighted mean of its samples;
* bidirectional = a forward cell on the reversed sequence; a hand-computed
  Elman net;
* it agrees with PyTorch (nn.RNN/LSTM/GRU + nn.Linear, packed sequences)
  wherever PyTorch has the same network (no peephole LSTM, no Cho GRU there).
"""

import numpy as np
import pytest
import reference as ref

from rnnumba.layout import Layout

# (name, cell, peephole, gru variant)
CELLS = {
    "elman": ("elman", False, "pytorch"),
    "lstm": ("lstm", False, "pytorch"),
    "lstm_peephole": ("lstm", True, "pytorch"),
    "gru": ("gru", False, "pytorch"),
    "gru_cho": ("gru", False, "cho"),
}
TORCH_CELLS = ("elman", "lstm", "gru")

N, T, I, H = 3, 4, 2, 2
LENGTHS = np.array([1, 4, 2])  # includes 1 and T


def make_case(
    name,
    num_layers=1,
    bidirectional=False,
    many_to_many=False,
    loss="mse",
    seed=0,
    lengths=LENGTHS,
    T=T,
    hidden=H,
    output_size=None,
    pad=0.0,
):
    """A random problem: (layout, theta, X, lengths, y, gru). Padded entries
    of X and y are set to ``pad``."""
    cell, peephole, gru = CELLS[name]
    O = output_size or (3 if loss == "xent" else 2)
    layout = Layout(cell, I, hidden, O, num_layers, bidirectional, peephole)
    rng = np.random.default_rng(seed)
    theta = rng.normal(0.0, 0.6, layout.n_params)
    lengths = np.asarray(lengths)
    n = len(lengths)
    X = rng.normal(0.0, 1.0, (n, T, I))
    valid = np.arange(T)[None, :] < lengths[:, None]
    X[~valid] = pad
    shape = (n, T) if many_to_many else (n,)
    if loss == "mse":
        y = rng.normal(0.0, 1.0, shape + (O,))
    else:
        y = rng.integers(0, O, shape)
    if many_to_many:
        y = y.astype(np.float64) if loss == "mse" else y
        y[~valid] = pad if loss == "mse" else -7
    return layout, theta, X, lengths, y, gru


def rel_err(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b), 1e-300)


ALL = [
    pytest.param(
        name,
        layers,
        bidir,
        m2m,
        loss,
        id=f"{name}-L{layers}-{'bi' if bidir else 'uni'}-{'m2m' if m2m else 'm2o'}-{loss}",
    )
    for name in CELLS
    for layers in (1, 2)
    for bidir in (False, True)
    for m2m in (False, True)
    for loss in ("mse", "xent")
]


@pytest.mark.parametrize("name, layers, bidir, m2m, loss", ALL)
def test_grad_matches_finite_differences(name, layers, bidir, m2m, loss):
    layout, theta, X, lengths, y, gru = make_case(name, layers, bidir, m2m, loss)
    value, grad = ref.loss_and_grad(layout, theta, X, lengths, y, loss, m2m, gru)

    def f(th):
        return ref.loss_value(layout, th, X, lengths, y, loss, m2m, gru)

    assert value == pytest.approx(f(theta), rel=1e-13)
    fd = ref.numerical_grad(f, theta, eps=1e-6)
    assert rel_err(grad, fd) < 1e-7
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-8)
    # every tensor gets some gradient, except the Cho GRU's unused b_hn
    for entry_name, g in layout.views(grad).items():
        if gru == "cho" and entry_name.startswith("b_hn"):
            assert np.all(g == 0.0)
        else:
            assert np.any(g != 0.0), entry_name


@pytest.mark.parametrize("name", list(CELLS))
@pytest.mark.parametrize("m2m", [False, True], ids=["m2o", "m2m"])
@pytest.mark.parametrize("loss", ["mse", "xent"])
def test_padding_is_never_read(name, m2m, loss):
    clean = make_case(name, 2, True, m2m, loss, seed=1, pad=0.0)
    layout, theta, _, lengths, _, gru = clean
    expected_yhat = ref.forward(layout, theta, clean[2], lengths, m2m, gru)
    expected = ref.loss_and_grad(layout, theta, clean[2], lengths, clean[4], loss, m2m, gru)
    for pad in (np.nan, 1e300, -np.inf):
        dirty = make_case(name, 2, True, m2m, loss, seed=1, pad=pad)
        X, y = dirty[2], dirty[4]
        np.testing.assert_array_equal(ref.forward(layout, theta, X, lengths, m2m, gru), expected_yhat)
        value, grad = ref.loss_and_grad(layout, theta, X, lengths, y, loss, m2m, gru)
        assert value == expected[0]
        np.testing.assert_array_equal(grad, expected[1])
        assert ref.loss_value(layout, theta, X, lengths, y, loss, m2m, gru) == pytest.approx(value, rel=1e-13)


@pytest.mark.parametrize("name", list(CELLS))
@pytest.mark.parametrize("m2m", [False, True], ids=["m2o", "m2m"])
@pytest.mark.parametrize("loss", ["mse", "xent"])
def test_batch_is_weighted_mean_of_samples(name, m2m, loss):
    layout, theta, X, lengths, y, gru = make_case(name, 2, True, m2m, loss, seed=2, pad=np.nan)
    value, grad = ref.loss_and_grad(layout, theta, X, lengths, y, loss, m2m, gru)
    yhat = ref.forward(layout, theta, X, lengths, m2m, gru)
    O = layout.output_size
    total, total_grad, total_count = 0.0, np.zeros_like(grad), 0
    for n, L in enumerate(lengths):
        # one sample, trimmed to its own length: T must not matter either
        Xn, yn = X[n : n + 1, :L], (y[n : n + 1, :L] if m2m else y[n : n + 1])
        v, g = ref.loss_and_grad(layout, theta, Xn, [L], yn, loss, m2m, gru)
        count = (L if m2m else 1) * (O if loss == "mse" else 1)
        total += v * count
        total_grad += g * count
        total_count += count
        yn_hat = ref.forward(layout, theta, Xn, [L], m2m, gru)
        if m2m:
            np.testing.assert_allclose(yn_hat[0], yhat[n, :L], rtol=1e-14)
        else:
            np.testing.assert_allclose(yn_hat[0], yhat[n], rtol=1e-14)
    assert value == pytest.approx(total / total_count, rel=1e-12)
    np.testing.assert_allclose(grad, total_grad / total_count, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name", list(CELLS))
def test_reverse_direction_reads_the_reversed_sequence(name):
    """The bidirectional layer's reverse half at step t equals a forward cell
    (with the reverse weights) run over x_{L-1}, ..., x_0, at its step L-1-t."""
    cell, peephole, gru = CELLS[name]
    rng = np.random.default_rng(3)
    bi = Layout(cell, I, H, H, 1, True, peephole)
    uni = Layout(cell, I, H, H, 1, False, peephole)
    theta_bi = rng.normal(0.0, 0.6, bi.n_params)
    theta_uni = np.zeros(uni.n_params)
    vb, vu = bi.views(theta_bi), uni.views(theta_uni)
    for key in vu:
        if key not in ("W_out", "b_out"):
            vu[key][...] = vb[key + "_reverse"]
    # heads that read out the reverse half (bi) or the whole state (uni)
    vb["W_out"][...] = np.hstack([np.zeros((H, H)), np.eye(H)])
    vb["b_out"][...] = 0.0
    vu["W_out"][...] = np.eye(H)
    vu["b_out"][...] = 0.0
    X = rng.normal(0.0, 1.0, (3, T, I))
    lengths = LENGTHS
    X_rev = np.full_like(X, np.nan)
    for n, L in enumerate(lengths):
        X_rev[n, :L] = X[n, :L][::-1]
    out_bi = ref.forward(bi, theta_bi, X, lengths, True, gru)
    out_uni = ref.forward(uni, theta_uni, X_rev, lengths, True, gru)
    for n, L in enumerate(lengths):
        np.testing.assert_allclose(out_bi[n, :L], out_uni[n, :L][::-1], rtol=1e-14)
    # many-to-one: the reverse half of the feature is h_rev at t = 0
    np.testing.assert_allclose(ref.forward(bi, theta_bi, X, lengths, False, gru), out_bi[:, 0], rtol=1e-14)


def test_forward_many_to_many_marks_padding_with_nan():
    layout, theta, X, lengths, _, gru = make_case("lstm", 2, True, True, "mse", pad=np.nan)
    yhat = ref.forward(layout, theta, X, lengths, many_to_many=True)
    valid = np.arange(T)[None, :] < lengths[:, None]
    assert yhat.shape == (N, T, layout.output_size)
    assert np.all(np.isfinite(yhat[valid]))
    assert np.all(np.isnan(yhat[~valid]))


def test_elman_by_hand():
    """H = I = O = 1, two steps, written out."""
    layout = Layout("elman", 1, 1, 1)
    w_h, w_x, b, w_o, b_o = 0.7, -1.3, 0.2, 1.5, -0.4
    theta = np.array([w_h, w_x, b, w_o, b_o])
    x0, x1, target = 0.5, -0.8, 0.3
    h1 = np.tanh(w_x * x0 + b)
    h2 = np.tanh(w_h * h1 + w_x * x1 + b)
    yhat = w_o * h2 + b_o
    X = np.array([[[x0], [x1], [np.nan]]])
    assert ref.forward(layout, theta, X, [2])[0, 0] == pytest.approx(yhat, rel=1e-15)
    value, grad = ref.loss_and_grad(layout, theta, X, [2], np.array([[target]]))
    assert value == pytest.approx((yhat - target) ** 2, rel=1e-15)
    d_y = 2 * (yhat - target)
    d_a2 = d_y * w_o * (1 - h2**2)
    d_a1 = d_a2 * w_h * (1 - h1**2)
    expected = [d_a2 * h1, d_a2 * x1 + d_a1 * x0, d_a2 + d_a1, d_y * h2, d_y]
    np.testing.assert_allclose(grad, expected, rtol=1e-14)


def test_lstm_without_peepholes_is_peepholes_at_zero():
    layout, theta, X, lengths, y, _ = make_case("lstm", 2, True, True, "xent", seed=4)
    peep = Layout("lstm", I, H, layout.output_size, 2, True, peephole=True)
    theta_peep = np.zeros(peep.n_params)
    vp, v = peep.views(theta_peep), layout.views(theta)
    for key in v:
        vp[key][...] = v[key]
    value, grad = ref.loss_and_grad(layout, theta, X, lengths, y, "xent", True)
    value_p, grad_p = ref.loss_and_grad(peep, theta_peep, X, lengths, y, "xent", True)
    assert value_p == value
    gp = peep.views(grad_p)
    for key, g in layout.views(grad).items():
        np.testing.assert_array_equal(gp[key], g)
    assert any(np.any(gp[k] != 0) for k in gp if k.startswith("p"))


def test_gru_variants_differ():
    layout, theta, X, lengths, y, _ = make_case("gru", 1, False, True, "mse", seed=5)
    a = ref.loss_and_grad(layout, theta, X, lengths, y, "mse", True, "pytorch")[0]
    b = ref.loss_and_grad(layout, theta, X, lengths, y, "mse", True, "cho")[0]
    assert a != b


def test_bad_arguments():
    layout, theta, X, lengths, y, _ = make_case("elman")
    with pytest.raises(ValueError):
        ref.forward(layout, theta, X, [0, 4, 2])
    with pytest.raises(ValueError):
        ref.forward(layout, theta, X, [1, 5, 2])
    with pytest.raises(ValueError):
        ref.loss_and_grad(layout, theta, X, lengths, y, loss="mae")
    with pytest.raises(ValueError):
        ref.forward(layout, theta, X, lengths, gru="minimal")


# --------------------------------------------------------------------------
# PyTorch cross-checks
# --------------------------------------------------------------------------

TORCH = [
    pytest.param(
        name,
        layers,
        bidir,
        m2m,
        loss,
        id=f"{name}-L{layers}-{'bi' if bidir else 'uni'}-{'m2m' if m2m else 'm2o'}-{loss}",
    )
    for name in TORCH_CELLS
    for layers in (1, 2)
    for bidir in (False, True)
    for m2m in (False, True)
    for loss in ("mse", "xent")
]


@pytest.mark.parametrize("name, layers, bidir, m2m, loss", TORCH)
def test_matches_torch(name, layers, bidir, m2m, loss):
    pytest.importorskip("torch")
    from torch_ref import torch_loss_and_grad

    # longer sequences and a wider layer than the FD tests: torch is fast
    layout, theta, X, lengths, y, gru = make_case(
        name, layers, bidir, m2m, loss, seed=6, lengths=[3, 1, 6, 4], T=6, hidden=3, pad=np.nan
    )
    value, grad = ref.loss_and_grad(layout, theta, X, lengths, y, loss, m2m, gru)
    yhat = ref.forward(layout, theta, X, lengths, m2m, gru)
    t_value, t_yhat, t_grad = torch_loss_and_grad(layout, theta, X, lengths, y, loss, m2m)
    assert t_value == pytest.approx(value, rel=1e-9)
    np.testing.assert_allclose(t_yhat, yhat, rtol=1e-9, atol=1e-12)  # NaN where padded, in both
    assert rel_err(t_grad, grad) < 1e-9
    np.testing.assert_allclose(t_grad, grad, rtol=1e-9, atol=1e-12 * np.abs(grad).max())


@pytest.mark.parametrize("name", TORCH_CELLS)
def test_torch_bias_mapping_premise(name):
    """grad bias_ih == grad bias_hh where both enter the same sum, so rnnumba's
    single b takes either (GRU: r and z rows only)."""
    pytest.importorskip("torch")
    from torch_ref import torch_bias_twins

    layout, theta, X, lengths, y, _ = make_case(name, 2, True, True, "mse", seed=7)
    for g_ih, g_hh in torch_bias_twins(layout, theta, X, lengths, y, "mse", True):
        np.testing.assert_allclose(g_ih, g_hh, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", ["lstm_peephole", "gru_cho"])
def test_torch_refuses_what_it_lacks(name):
    pytest.importorskip("torch")
    from torch_ref import build_torch

    layout, theta, *_, gru = make_case(name)
    with pytest.raises(ValueError):
        build_torch(layout, theta, gru)
