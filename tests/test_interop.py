"""rnnumba.interop: exact maps to and from PyTorch modules.

Round trips (torch -> rnnumba -> torch and back) are exact; a converted network
computes what the module computes (packed variable-length sequences, 1e-12 in
float64); the mapped gradient equals torch autograd's (1e-9) for every
configuration PyTorch can express; the refusals are clear; and importing the
module never needs torch.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch_ref

from rnnumba import RNN
from rnnumba.interop import from_torch, to_torch_state_dict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULES = {"elman": "RNN", "lstm": "LSTM", "gru": "GRU"}
CONFIGS = [(cell, L, bi) for cell in MODULES for L in (1, 2) for bi in (False, True)]
IDS = [f"{c}-{L}-{'bi' if bi else 'uni'}" for c, L, bi in CONFIGS]
I, H, O, T = 2, 3, 3, 5
LENGTHS = np.array([1, 5, 3, 2])


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def make_torch(torch, cell, num_layers, bidirectional, seed=0, dtype=None, **kwargs):
    """A random batch-first module and head (both biases random, as torch draws them)."""
    torch.manual_seed(seed)
    dtype = dtype or torch.float64
    rnn = getattr(torch.nn, MODULES[cell])(
        I, H, num_layers=num_layers, bidirectional=bidirectional, batch_first=True, dtype=dtype, **kwargs
    )
    head = torch.nn.Linear(H * (2 if bidirectional else 1), O, dtype=dtype)
    return rnn, head


def make_data(many, loss, seed=1):
    rng = np.random.default_rng(seed)
    valid = np.arange(T)[None, :] < LENGTHS[:, None]
    X = rng.normal(0.0, 1.0, (len(LENGTHS), T, I))
    X[~valid] = 0.0
    shape = (len(LENGTHS), T) if many else (len(LENGTHS),)
    y = rng.normal(0.0, 1.0, shape + (O,)) if loss == "mse" else rng.integers(0, O, shape)
    return X, y, valid


def load(torch, rnn, head, state):
    rnn.load_state_dict({k: torch.from_numpy(v) for k, v in state.items() if not k.startswith("head.")})
    head.load_state_dict({k[5:]: torch.from_numpy(v) for k, v in state.items() if k.startswith("head.")})


def rel_err(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b), 1e-300)


# -- round trips ------------------------------------------------------------------


@pytest.mark.parametrize("cell,num_layers,bidirectional", CONFIGS, ids=IDS)
def test_round_trip_torch_rnnumba_torch(torch, cell, num_layers, bidirectional):
    rnn, head = make_torch(torch, cell, num_layers, bidirectional)
    net = from_torch(rnn, head)
    state = to_torch_state_dict(net)
    original = {k: v.detach().numpy() for k, v in rnn.state_dict().items()}
    original.update({"head." + k: v.detach().numpy() for k, v in head.state_dict().items()})
    assert list(state) == list(original)  # the module's own keys, in its order
    for key, value in state.items():
        assert value.dtype == np.float64 and value.shape == original[key].shape, key
        if key.startswith("bias_hh"):
            continue
        if key.startswith("bias_ih"):
            # the two biases of a row are one parameter in rnnumba: their sum survives exactly
            hh = key.replace("bias_ih", "bias_hh")
            rows = slice(0, 2 * H) if cell == "gru" else slice(None)
            total = original[key][rows] + original[hh][rows]
            assert np.array_equal(value[rows] + state[hh][rows], total), key
            if cell == "gru":  # the n rows keep both biases apart
                assert np.array_equal(value[2 * H :], original[key][2 * H :])
                assert np.array_equal(state[hh][2 * H :], original[hh][2 * H :])
        else:
            assert np.array_equal(value, original[key]), key
    # and the module loaded with them is the same function
    rnn2, head2 = make_torch(torch, cell, num_layers, bidirectional, seed=99)
    load(torch, rnn2, head2, state)
    X, _, _ = make_data(True, "mse")
    with torch.no_grad():
        a = torch_ref.torch_forward(net.layout, rnn, head, X, LENGTHS, True).numpy()
        b = torch_ref.torch_forward(net.layout, rnn2, head2, X, LENGTHS, True).numpy()
    np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cell,num_layers,bidirectional", CONFIGS, ids=IDS)
def test_round_trip_rnnumba_torch_rnnumba(torch, cell, num_layers, bidirectional):
    net = RNN(I, H, O, cell=cell, num_layers=num_layers, bidirectional=bidirectional, random_state=3)
    net.theta[:] = np.random.default_rng(3).normal(0.0, 0.6, net.n_params)
    state = to_torch_state_dict(net)
    # the same mapping as the tests' independent one (tests/torch_ref.py)
    rnn_ref, head_ref = torch_ref.build_torch(net.layout, net.theta)
    for key, value in rnn_ref.state_dict().items():
        assert np.array_equal(state[key], value.numpy()), key
    assert np.array_equal(state["head.weight"], head_ref.weight.detach().numpy())
    assert np.array_equal(state["head.bias"], head_ref.bias.detach().numpy())
    rnn, head = make_torch(torch, cell, num_layers, bidirectional, seed=5)
    load(torch, rnn, head, state)
    back = from_torch(rnn, head)
    assert back.layout == net.layout
    assert np.array_equal(back.theta, net.theta)


# -- the same function, the same gradient -------------------------------------------


@pytest.mark.parametrize("many", [False, True], ids=["many2one", "many2many"])
@pytest.mark.parametrize("cell,num_layers,bidirectional", CONFIGS, ids=IDS)
def test_function_preserved(torch, cell, num_layers, bidirectional, many):
    rnn, head = make_torch(torch, cell, num_layers, bidirectional)
    net = from_torch(rnn, head)
    X, _, valid = make_data(many, "mse")
    with torch.no_grad():
        expected = torch_ref.torch_forward(net.layout, rnn, head, X, LENGTHS, many).numpy()
    out = net.predict(X, LENGTHS, many_to_many=many)
    if many:
        assert np.all(np.isnan(out[~valid]))
        out, expected = out[valid], expected[valid]
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-13)


def torch_grads(torch, rnn, head, X, y, many, loss):
    """PyTorch autograd's gradients of rnnumba's loss, under the modules' names."""
    import torch.nn.functional as F
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    packed = pack_padded_sequence(
        torch.from_numpy(X), torch.from_numpy(LENGTHS), batch_first=True, enforce_sorted=False
    )
    out, h_n = rnn(packed)
    if isinstance(h_n, tuple):
        h_n = h_n[0]
    if many:
        padded, _ = pad_packed_sequence(out, batch_first=True, total_length=T)
        mask = torch.from_numpy(np.arange(T)[None, :] < LENGTHS[:, None])
        yhat, target = head(padded)[mask], torch.from_numpy(np.asarray(y))[mask]
    else:
        feat = torch.cat([h_n[-2], h_n[-1]], dim=1) if rnn.bidirectional else h_n[-1]
        yhat, target = head(feat), torch.from_numpy(np.asarray(y))
    if loss == "mse":
        value = torch.mean((yhat - target) ** 2)
    else:
        value = F.cross_entropy(yhat, target.to(torch.int64))
    value.backward()
    grads = {k: p.grad.numpy() for k, p in rnn.named_parameters()}
    grads.update({"head." + k: p.grad.numpy() for k, p in head.named_parameters()})
    return value.item(), grads


@pytest.mark.parametrize("loss", ["mse", "xent"])
@pytest.mark.parametrize("many", [False, True], ids=["many2one", "many2many"])
@pytest.mark.parametrize("cell,num_layers,bidirectional", CONFIGS, ids=IDS)
def test_gradient_mapping(torch, cell, num_layers, bidirectional, many, loss):
    rnn, head = make_torch(torch, cell, num_layers, bidirectional)
    net = from_torch(rnn, head)
    X, y, _ = make_data(many, loss)
    value, expected = torch_grads(torch, rnn, head, X, y, many, loss)
    value2, _ = net.loss_and_grad(X, y, LENGTHS, loss=loss)
    assert abs(value2 - value) <= 1e-12 * abs(value)
    mapped = to_torch_state_dict(net, net.grad)
    assert list(mapped) == list(expected)
    for key, g in expected.items():
        assert rel_err(mapped[key], g) <= 1e-9, key
    # an explicit kind gives the same for a copy of the gradient
    copied = to_torch_state_dict(net, net.grad.copy(), kind="grad")
    for key in mapped:
        assert np.array_equal(copied[key], mapped[key])


def test_torch_ref_gradients_agree(torch):
    """The tests' own helper maps torch's gradient back the same way."""
    net = RNN(I, H, O, cell="gru", num_layers=2, bidirectional=True, random_state=4)
    X, y, _ = make_data(True, "mse")
    _, _, grad = torch_ref.torch_loss_and_grad(net.layout, net.theta, X, LENGTHS, y, "mse", True)
    net.loss_and_grad(X, y, LENGTHS)
    assert rel_err(net.grad, grad) <= 1e-9


# -- dtypes, optional biases, dropout ------------------------------------------------


def test_float32_module_widens_exactly(torch):
    rnn, head = make_torch(torch, "lstm", 2, True, dtype=torch.float32)
    net = from_torch(rnn, head)
    assert net.dtype == np.float64
    assert np.array_equal(net.views["W_l1_reverse"][:, :H], rnn.weight_hh_l1_reverse.detach().numpy())
    net32 = from_torch(rnn, head, dtype=np.float32)
    assert net32.dtype == np.float32
    assert np.array_equal(net32.theta, net.theta.astype(np.float32))
    # widening is exact: the float64 network is the float64 copy of the module
    rnn.double(), head.double()
    X, _, _ = make_data(False, "mse")
    with torch.no_grad():
        expected = torch_ref.torch_forward(net.layout, rnn, head, X, LENGTHS).numpy()
    np.testing.assert_allclose(net.predict(X, LENGTHS), expected, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(net32.predict(X, LENGTHS), expected, rtol=1e-4, atol=1e-5)


def test_float64_module_refuses_float32(torch):
    rnn, head = make_torch(torch, "gru", 1, False)
    with pytest.raises(TypeError, match="round"):
        from_torch(rnn, head, dtype=np.float32)
    rnn32, head64 = make_torch(torch, "gru", 1, False, dtype=torch.float32)[0], head
    with pytest.raises(TypeError, match="head.weight"):
        from_torch(rnn32, head64, dtype=np.float32)


@pytest.mark.parametrize("cell", list(MODULES))
def test_modules_without_bias(torch, cell):
    rnn, head = make_torch(torch, cell, 2, True, bias=False)
    head = torch.nn.Linear(2 * H, O, bias=False, dtype=torch.float64)
    net = from_torch(rnn, head)
    for name, v in net.views.items():
        if name.startswith("b"):
            assert np.all(v == 0), name
    X, _, _ = make_data(False, "mse")
    with torch.no_grad():
        expected = torch_ref.torch_forward(net.layout, rnn, head, X, LENGTHS).numpy()
    np.testing.assert_allclose(net.predict(X, LENGTHS), expected, rtol=1e-12, atol=1e-13)


def test_no_head_gives_a_fresh_one(torch):
    rnn, _ = make_torch(torch, "lstm", 1, True)
    a = from_torch(rnn, random_state=0)
    b = from_torch(rnn, output_size=4, random_state=0)
    assert a.layout.output_size == 1 and b.layout.output_size == 4
    assert np.array_equal(a.views["W"], b.views["W"])
    assert np.array_equal(a.theta, from_torch(rnn, random_state=0).theta)


def test_dropout_carries_over(torch):
    rnn, head = make_torch(torch, "gru", 2, False, dropout=0.5)
    net = from_torch(rnn, head)
    assert net.dropout == 0.5
    assert np.array_equal(net.theta, from_torch(make_torch(torch, "gru", 2, False)[0], head).theta)


# -- refusals ---------------------------------------------------------------------


def test_refusals(torch):
    nn = torch.nn
    with pytest.raises(ValueError, match="relu"):
        from_torch(nn.RNN(I, H, nonlinearity="relu", batch_first=True))
    with pytest.raises(ValueError, match="proj_size"):
        from_torch(nn.LSTM(I, H, proj_size=2, batch_first=True))
    with pytest.raises(ValueError, match="batch_first=False"):
        from_torch(nn.GRU(I, H))
    with pytest.raises(TypeError, match="nn.RNN, nn.LSTM or nn.GRU"):
        from_torch(nn.Linear(I, H))
    rnn, head = make_torch(torch, "lstm", 1, True)
    with pytest.raises(ValueError, match="in_features"):
        from_torch(rnn, nn.Linear(H, O, dtype=torch.float64))
    with pytest.raises(TypeError, match="nn.Linear"):
        from_torch(rnn, nn.Sequential(head))


def test_to_torch_refusals():
    # no torch needed: these networks have no PyTorch equivalent
    with pytest.raises(ValueError, match="peephole"):
        to_torch_state_dict(RNN(I, H, cell="lstm", peephole=True))
    with pytest.raises(ValueError, match="reset_after=False"):
        to_torch_state_dict(RNN(I, H, cell="gru", reset_after=False))
    net = RNN(I, H, cell="gru", random_state=0)
    with pytest.raises(ValueError, match="kind="):
        to_torch_state_dict(net, net.grad.copy())
    with pytest.raises(ValueError, match="kind must be"):
        to_torch_state_dict(net, kind="gradient")
    assert np.array_equal(
        to_torch_state_dict(net, net.theta.copy(), kind="params")["weight_ih_l0"], net.views["W"][:, H:]
    )


def test_gradient_bias_mapping_by_hand():
    """RNN/LSTM: grad b goes to both biases; GRU: r, z rows to both, n rows split."""
    net = RNN(I, 2, cell="gru", random_state=0)
    net.grad[:] = np.arange(net.n_params)
    g = net.grad_views
    state = to_torch_state_dict(net, net.grad)
    assert np.array_equal(state["bias_ih_l0"], g["b"])
    assert np.array_equal(state["bias_hh_l0"], np.r_[g["b"][:4], g["b_hn"]])
    params = to_torch_state_dict(net)
    assert np.array_equal(params["bias_hh_l0"], np.r_[np.zeros(4), net.views["b_hn"]])
    lstm = RNN(I, 2, cell="lstm", random_state=0)
    lstm.grad[:] = np.arange(lstm.n_params)
    state = to_torch_state_dict(lstm, lstm.grad)
    assert np.array_equal(state["bias_ih_l0"], state["bias_hh_l0"])
    assert np.all(to_torch_state_dict(lstm)["bias_hh_l0"] == 0)


def test_import_without_torch():
    """``import rnnumba.interop`` works where torch cannot be imported."""
    code = (
        "import sys\n"
        "sys.modules['torch'] = None  # any 'import torch' now fails\n"
        f"sys.path.insert(0, {ROOT!r})\n"
        "import rnnumba.interop as io\n"
        "try:\n"
        "    io.from_torch(object())\n"
        "except ImportError as e:\n"
        "    assert 'needs PyTorch' in str(e), e\n"
        "else:\n"
        "    raise SystemExit('no ImportError')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)
