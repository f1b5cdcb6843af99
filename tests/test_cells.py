"""The compiled cells (Elman, LSTM with and without peepholes, GRU in PyTorch's
and Cho's forms) through the engine, against the NumPy reference.

Every cell x 1 or 2 layers x one or two directions x many-to-one or
many-to-many x mse or xent, with variable lengths (1 and T included): loss,
gradient and predictions equal ``tests/reference.py`` to 1e-10 in float64 and
loosely in float32; padding garbage changes nothing; a batch equals its samples
one by one; results are bitwise the same on 1 and 2 threads; large batches
(several chunks), long sequences and BLAS-sized products; the LSTM forget-gate
bias initialisation; the parameter-count and offset formulas of docs/cells.md.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import reference as ref

from rnnumba import RNN
from rnnumba.layout import Layout, n_params

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# name -> (RNN keyword arguments, the reference's GRU variant)
CELLS = {
    "elman": (dict(cell="elman"), "pytorch"),
    "lstm": (dict(cell="lstm"), "pytorch"),
    "lstm_peephole": (dict(cell="lstm", peephole=True), "pytorch"),
    "gru": (dict(cell="gru"), "pytorch"),
    "gru_cho": (dict(cell="gru", reset_after=False), "cho"),
}
NAMES = list(CELLS)

I, H, O = 2, 3, 3
LENGTHS = np.array([1, 5, 3, 2])  # includes 1 and T
T = 5


def make_net(
    name,
    num_layers=1,
    bidirectional=False,
    dtype=np.float64,
    seed=0,
    hidden=H,
    inputs=I,
    outputs=O,
    scale=0.6,
):
    """A network with N(0, scale) parameters (biases too) and the reference's GRU variant."""
    kwargs, gru = CELLS[name]
    net = RNN(
        inputs,
        hidden,
        outputs,
        num_layers=num_layers,
        bidirectional=bidirectional,
        dtype=dtype,
        random_state=seed,
        **kwargs,
    )
    net.theta[:] = np.random.default_rng(seed).normal(0.0, scale, net.n_params)
    return net, gru


def make_data(lengths=LENGTHS, T=T, inputs=I, outputs=O, many=False, loss="mse", seed=1, pad=0.0):
    """``X`` (N, T, I) and targets, with ``pad`` in every padded entry."""
    rng = np.random.default_rng(seed)
    lengths = np.asarray(lengths)
    N = len(lengths)
    valid = np.arange(T)[None, :] < lengths[:, None]
    X = rng.normal(0.0, 1.0, (N, T, inputs))
    X[~valid] = pad
    shape = (N, T) if many else (N,)
    if loss == "mse":
        y = rng.normal(0.0, 1.0, shape + (outputs,))
        if many:
            y[~valid] = pad
    else:
        y = rng.integers(0, outputs, shape)
        if many:
            y[~valid] = 0
    return X, lengths, y


def rel_err(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b), 1e-300)


def check_against_reference(net, gru, X, lengths, y, many, loss, tol):
    theta = net.theta.astype(np.float64)
    value, grad = net.loss_and_grad(X, y, lengths, loss=loss)
    r_value, r_grad = ref.loss_and_grad(net.layout, theta, X, lengths, y, loss, many, gru)
    assert abs(value - r_value) <= tol * abs(r_value)
    assert rel_err(grad, r_grad) <= tol
    # every tensor on its own too, so a small one cannot hide in the norm
    views = net.layout.views(r_grad)
    for name, g in net.grad_views.items():
        assert rel_err(g, views[name]) <= tol or np.linalg.norm(views[name]) < 1e-14, name
    out = net.predict(X, lengths, many_to_many=many)
    r_out = ref.forward(net.layout, theta, X, lengths, many, gru)
    assert np.array_equal(np.isnan(out), np.isnan(r_out))
    assert rel_err(np.nan_to_num(out), np.nan_to_num(r_out)) <= tol
    return value, grad.copy()


# -- agreement with the reference, float64 ------------------------------------


@pytest.mark.parametrize("loss", ["mse", "xent"])
@pytest.mark.parametrize("many", [False, True], ids=["many2one", "many2many"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("name", NAMES)
def test_matches_reference(name, num_layers, bidirectional, many, loss):
    net, gru = make_net(name, num_layers, bidirectional)
    X, lengths, y = make_data(many=many, loss=loss)
    check_against_reference(net, gru, X, lengths, y, many, loss, 1e-10)


@pytest.mark.parametrize("name", NAMES)
def test_large_batch_several_chunks(name):
    """N = 40: the engine cuts the batch into blocks (each with its own partial gradient)."""
    from rnnumba.chunks import n_chunks

    rng = np.random.default_rng(5)
    lengths = rng.integers(1, T + 1, 40)
    lengths[:2] = (1, T)
    net, gru = make_net(name, 2, True)
    assert n_chunks(40, net.layout.hidden) > 1
    X, lengths, y = make_data(lengths, many=False)
    check_against_reference(net, gru, X, lengths, y, False, "mse", 1e-10)


@pytest.mark.parametrize("name", NAMES)
def test_long_sequence(name):
    """T = 200 (small weights: a saturated 200-step recurrence tests nothing)."""
    net, gru = make_net(name, 1, True, scale=0.3)
    X, lengths, y = make_data([200, 1, 137], T=200, many=True)
    check_against_reference(net, gru, X, lengths, y, True, "mse", 1e-10)


@pytest.mark.parametrize("name", ["lstm", "lstm_peephole", "gru", "gru_cho"])
def test_blas_sized_products(name):
    """H = 48, 20 samples: the per-step and weight-gradient products are big
    enough for the blocked loops (row updates; the GRU's contiguous copies of
    its n-row blocks included)."""
    hidden = 48
    net, gru = make_net(name, 2, True, hidden=hidden, inputs=3, scale=1.0 / np.sqrt(hidden))
    rng = np.random.default_rng(2)
    lengths = rng.integers(1, 5, 20)
    lengths[:2] = (1, 4)
    X, lengths, y = make_data(lengths, T=4, inputs=3, many=True)
    check_against_reference(net, gru, X, lengths, y, True, "mse", 1e-10)


@pytest.mark.parametrize("name", ["elman", "lstm_peephole", "gru", "gru_cho"])
def test_wide_gate_products(name):
    """Per-step outputs of ``_linalg.WIDE`` bytes a row or more run as dot
    products over the rows of ``W`` instead of row updates over ``W^T``:
    float64 at hidden 512 (Elman), 128 (the LSTM's four gates) and 256 (the
    GRU's reset and update gates), two layers in both directions, against the
    NumPy reference."""
    from rnnumba import _linalg

    hidden = {"elman": 512, "lstm_peephole": 128}.get(name, 256)
    gates = {"elman": 1, "lstm_peephole": 4}.get(name, 2)  # the GRU's W_rz: r and z
    wide, narrow = np.zeros((gates * hidden, hidden + 3)), np.zeros((gates * hidden // 2, hidden + 3))
    assert _linalg.step_weights(wide, 8).shape[0] == 0  # the dot products, over W itself
    assert _linalg.step_weights(narrow, 8).shape == narrow.shape[::-1]  # row updates over W^T
    net, gru = make_net(name, 2, True, hidden=hidden, inputs=3, scale=1.0 / np.sqrt(hidden))
    X, lengths, y = make_data([3, 1, 2, 3, 2, 3, 1, 3, 2], T=3, inputs=3, many=True)
    check_against_reference(net, gru, X, lengths, y, True, "mse", 1e-10)


@pytest.mark.parametrize("name", NAMES)
def test_narrow_input_products(name):
    """Where the gates outnumber ``[h; x]``'s columns (hidden 32, one input: an
    LSTM's 128 gates by 33, a GRU's 64), BPTT's per-step product takes dot
    products over a transposed copy of ``W`` and the weight gradient runs along
    the gates (``_linalg.back_weights``, ``mm_tn_blocked``), as they do where
    the gates fill four 512-bit registers on a CPU with them
    (``_dots.wide_rows``: a float64 Elman layer); a float32 Elman layer and
    weights larger than L2 keep the row updates. Two layers in both
    directions, 40 samples in blocks of at most 16, against the NumPy
    reference."""
    from rnnumba import _dots, _linalg

    wide = _dots.VECTORS_512
    assert _linalg.back_weights(np.zeros((128, 33)), 16).shape == (33, 128)  # dot products
    assert _linalg.back_weights(np.zeros((32, 33), np.float32), 64).shape[0] == 0  # row updates
    assert (_linalg.back_weights(np.zeros((32, 33)), 64).shape[0] > 0) == wide  # float64: 4 registers
    assert _linalg.back_weights(np.zeros((2048, 576), np.float32), 16).shape[0] == 0  # over L2
    net, gru = make_net(name, 2, True, hidden=32, inputs=1, scale=1.0 / np.sqrt(32))
    lengths = np.random.default_rng(5).integers(1, 5, 40)
    X, lengths, y = make_data(lengths, T=4, inputs=1, many=True)
    check_against_reference(net, gru, X, lengths, y, True, "mse", 1e-10)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(300, 128, 33), (300, 33, 128), (0, 128, 33), (130, 1024, 7), (5, 6, 5)])
def test_weight_gradient_product(shape, dtype):
    """``_linalg.mm_tn_blocked``, ``C = A.T @ B``, in each of its forms: along ``C``'s
    rows, along its columns (more rows than columns, under ``WIDE`` bytes a
    column), several blocks of ``TN_BLOCK`` rows and none; against float64 NumPy."""
    from rnnumba import _linalg

    k, m, n = shape
    rng = np.random.default_rng(0)
    A, B = rng.normal(size=(k, m)).astype(dtype), rng.normal(size=(k, n)).astype(dtype)
    C = np.full((m, n), np.nan, dtype)
    _linalg.mm_tn_blocked(A, B, C)
    expected = A.astype(np.float64).T @ B.astype(np.float64)
    scale = np.sqrt(max(k, 1))
    assert np.abs(C - expected).max() <= (1e-12 if dtype == np.float64 else 1e-5) * scale


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", NAMES)
def test_padded_rows(name, dtype):
    """H = 61, 5 inputs, 2 layers, both directions, 20 samples per chunk: the
    engine pads both layers' ``[h; x]`` rows (66 and 183 wide) and weights to
    whole SIMD registers (``_rows.padded_width``); the zero columns change nothing."""
    from rnnumba._rows import padded_width

    hidden, inputs = 61, 5
    net, gru = make_net(name, 2, True, dtype=dtype, hidden=hidden, inputs=inputs, scale=1.0 / np.sqrt(hidden))
    gates = {"elman": 1, "lstm": 4, "gru": 3}[net.layout.cell]
    itemsize = np.dtype(dtype).itemsize
    for K in (hidden + inputs, 3 * hidden):  # layer 0, layer 1 (reads both directions)
        assert padded_width(K, 20 * gates * hidden * K, itemsize) > K
    rng = np.random.default_rng(3)
    lengths = rng.integers(1, 7, 40)
    lengths[:2] = (1, 6)
    X, lengths, y = make_data(lengths, T=6, inputs=inputs, many=True)
    if dtype == np.float64:
        check_against_reference(net, gru, X, lengths, y, True, "mse", 1e-10)
        return
    X = X.astype(np.float32).astype(np.float64)
    value, grad = net.loss_and_grad(X, y, lengths)
    theta = net.theta.astype(np.float64)
    r_value, r_grad = ref.loss_and_grad(net.layout, theta, X, lengths, y.astype(np.float32), "mse", True, gru)
    assert abs(value - r_value) <= 1e-4 * abs(r_value)
    assert rel_err(grad, r_grad) <= 1e-4
    out = net.predict(X, lengths, many_to_many=True)
    r_out = ref.forward(net.layout, theta, X, lengths, True, gru)
    assert rel_err(np.nan_to_num(out), np.nan_to_num(r_out)) <= 1e-4


def test_cho_gru_leaves_b_hn_alone():
    """Cho's GRU never reads b_hn: its gradient is exactly 0 and it changes nothing."""
    net, _ = make_net("gru_cho", 2, True)
    X, lengths, y = make_data(many=True)
    value, grad = net.loss_and_grad(X, y, lengths)
    grad = grad.copy()
    for name, g in net.grad_views.items():
        if name.startswith("b_hn"):
            assert np.all(g == 0.0)
    for name, v in net.views.items():
        if name.startswith("b_hn"):
            v[:] = 123.0
    value2, grad2 = net.loss_and_grad(X, y, lengths)
    assert value2 == value and np.array_equal(grad2, grad)


# -- float32 ------------------------------------------------------------------


@pytest.mark.parametrize("config", [(1, False, False), (2, True, True)], ids=["1-uni-m2o", "2-bi-m2m"])
@pytest.mark.parametrize("name", NAMES)
def test_float32_agrees_loosely(name, config):
    num_layers, bidirectional, many = config
    net, gru = make_net(name, num_layers, bidirectional, dtype=np.float32)
    X, lengths, y = make_data(many=many)
    X = X.astype(np.float32).astype(np.float64)  # the exact inputs the float32 net sees
    value, grad = net.loss_and_grad(X, y, lengths)
    assert grad.dtype == np.float32
    r_value, r_grad = ref.loss_and_grad(
        net.layout, net.theta.astype(np.float64), X, lengths, y.astype(np.float32), "mse", many, gru
    )
    assert abs(value - r_value) <= 1e-4 * abs(r_value)
    assert rel_err(grad, r_grad) <= 1e-4
    out = net.predict(X, lengths, many_to_many=many)
    assert out.dtype == np.float32
    r_out = ref.forward(net.layout, net.theta.astype(np.float64), X, lengths, many, gru)
    assert rel_err(np.nan_to_num(out), np.nan_to_num(r_out)) <= 1e-4


# -- padding, batching --------------------------------------------------------


@pytest.mark.parametrize("loss", ["mse", "xent"])
@pytest.mark.parametrize("name", NAMES)
def test_padding_garbage_changes_nothing(name, loss):
    net, _ = make_net(name, 2, True)
    for many in (False, True):
        X, lengths, y = make_data(many=many, loss=loss)
        value, grad = net.loss_and_grad(X, y, lengths, loss=loss)
        grad = grad.copy()
        out = net.predict(X, lengths, many_to_many=many)
        X_nan, _, y_nan = make_data(many=many, loss=loss, pad=np.nan)
        if loss == "xent" and many:
            y_nan[np.arange(T)[None, :] >= lengths[:, None]] = 10**6  # out-of-range classes
        value2, grad2 = net.loss_and_grad(X_nan, y_nan, lengths, loss=loss)
        assert value2 == value
        assert np.array_equal(grad2, grad)
        out2 = net.predict(X_nan, lengths, many_to_many=many)
        assert np.array_equal(out2, out, equal_nan=True)


@pytest.mark.parametrize("many", [False, True], ids=["many2one", "many2many"])
@pytest.mark.parametrize("name", NAMES)
def test_batch_equals_samples_one_by_one(name, many):
    net, _ = make_net(name, 2, True)
    X, lengths, y = make_data(many=many)
    value, grad = net.loss_and_grad(X, y, lengths)
    grad = grad.copy()
    out = net.predict(X, lengths, many_to_many=many)
    # the batch loss is the mean over targets: weight each sample by its count
    weights = lengths / lengths.sum() if many else np.full(len(lengths), 1.0 / len(lengths))
    total, total_grad = 0.0, np.zeros_like(grad)
    for k, L in enumerate(lengths):
        Xk, yk = X[k : k + 1, :L], (y[k : k + 1, :L] if many else y[k : k + 1])
        v, g = net.loss_and_grad(Xk, yk)
        total += weights[k] * v
        total_grad += weights[k] * g
        ok = net.predict(Xk, many_to_many=many)
        if many:
            np.testing.assert_allclose(ok[0], out[k, :L], rtol=1e-12, atol=1e-14)
        else:
            np.testing.assert_allclose(ok[0], out[k], rtol=1e-12, atol=1e-14)
    assert abs(total - value) <= 1e-12 * abs(value)
    assert rel_err(total_grad, grad) <= 1e-12


def test_list_of_sequences_equals_padded_array():
    net, _ = make_net("lstm_peephole", 2, True)
    X, lengths, y = make_data(many=True)
    seqs = [X[k, :L] for k, L in enumerate(lengths)]
    targets = [y[k, :L] for k, L in enumerate(lengths)]
    value, grad = net.loss_and_grad(X, y, lengths)
    grad = grad.copy()
    value2, grad2 = net.loss_and_grad(seqs, targets)
    assert value2 == value and np.array_equal(grad2, grad)


# -- thread-count determinism --------------------------------------------------


def determinism_results():
    """What the thread-count test compares: loss, gradient and predictions of
    every cell (and two in float32) on a 40-sample batch (several chunks), two
    layers, both directions."""
    rng = np.random.default_rng(7)
    lengths = rng.integers(1, T + 1, 40)
    lengths[:2] = (1, T)
    results = []
    cases = [(name, np.float64) for name in NAMES] + [("lstm", np.float32), ("gru_cho", np.float32)]
    for name, dtype in cases:
        net, _ = make_net(name, 2, True, dtype=dtype)
        for many, loss in ((False, "mse"), (True, "xent")):
            X, lengths, y = make_data(lengths, many=many, loss=loss)
            value, grad = net.loss_and_grad(X, y, lengths, loss=loss)
            results += [np.array([value]), grad.copy(), net.predict(X, lengths, many_to_many=many)]
    return results


def _run_with_threads(threads, path):
    code = (
        "import sys, numpy as np\n"
        f"sys.path[:0] = [{ROOT!r}, {HERE!r}]\n"
        "import test_cells\n"
        f"np.savez({path!r}, *test_cells.determinism_results())\n"
    )
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads))
    run = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, timeout=900, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    with np.load(path) as f:
        return [f[k] for k in f.files]


def test_bitwise_same_on_1_and_2_threads(tmp_path):
    one = _run_with_threads(1, str(tmp_path / "one.npz"))
    two = _run_with_threads(2, str(tmp_path / "two.npz"))
    here = determinism_results()
    assert len(one) == len(two) == len(here)
    for a, b, c in zip(one, two, here, strict=True):
        assert np.array_equal(a, b, equal_nan=True)
        assert np.array_equal(a, c, equal_nan=True)


# -- initialisation -------------------------------------------------------------


@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (2, True)])
def test_lstm_forget_bias_init(num_layers, bidirectional):
    hidden = 2
    # output_size = 4H: the head's bias has the shape of a gate bias, and stays 0
    net = RNN(
        3, hidden, 4 * hidden, cell="lstm", num_layers=num_layers, bidirectional=bidirectional, random_state=0
    )
    gate_biases = [n for n in net.views if n.startswith("b") and n != "b_out"]
    assert len(gate_biases) == num_layers * (2 if bidirectional else 1)
    expected = np.r_[np.zeros(hidden), np.ones(hidden), np.zeros(2 * hidden)]
    for name in gate_biases:
        assert np.array_equal(net.views[name], expected), name
    assert np.all(net.views["b_out"] == 0)
    assert np.array_equal(RNN(3, hidden, cell="lstm", forget_bias=0.5).views["b"], 0.5 * expected)
    net.init(random_state=0, forget_bias=-2.0)
    for name in gate_biases:
        assert np.array_equal(net.views[name], -2.0 * expected)
    same = RNN(
        3, hidden, 4 * hidden, cell="lstm", num_layers=num_layers, bidirectional=bidirectional, random_state=0
    )
    # the forget bias does not move the random stream of the weights
    for name, v in same.views.items():
        if not name.startswith("b"):
            assert np.array_equal(v, net.views[name])
    with pytest.raises(ValueError, match="forget_bias"):
        net.init(forget_bias=np.nan)


def test_other_cells_ignore_forget_bias():
    for cell in ("elman", "gru"):
        net = RNN(2, 3, cell=cell, num_layers=2, forget_bias=5.0, random_state=0)
        for name, v in net.views.items():
            if name.startswith("b"):
                assert np.all(v == 0), name


# -- docs/cells.md formulas -------------------------------------------------------


def documented_n_params(cell, I, H, O, L, D, peephole=False):
    """docs/cells.md: sum over layers of D*(G*H*(H + I_l) + G*H + E) + O*H*D + O."""
    G = {"elman": 1, "lstm": 4, "gru": 3}[cell]
    E = H if cell == "gru" else (3 * H if peephole else 0)
    return sum(D * (G * H * (H + (I if l == 0 else H * D)) + G * H + E) for l in range(L)) + O * H * D + O


def documented_offset(cell, I, H, L, D, layer, direction, peephole=False):
    """docs/cells.md: offset of W of (layer, direction); b follows at + G*H*(H+I_l)."""
    G = {"elman": 1, "lstm": 4, "gru": 3}[cell]
    E = H if cell == "gru" else (3 * H if peephole else 0)
    block0 = G * H * (H + I) + G * H + E
    block = G * H * (H + H * D) + G * H + E
    return (D * block0 + ((layer - 1) * D + direction) * block) if layer else direction * block0


@pytest.mark.parametrize("name", NAMES)
def test_documented_formulas(name):
    kwargs, _ = CELLS[name]
    for L in (1, 2, 3):
        for D in (1, 2):
            layout = Layout(kwargs["cell"], 2, 3, 4, L, D == 2, kwargs.get("peephole", False))
            peep = layout.peephole
            count = documented_n_params(layout.cell, 2, 3, 4, L, D, peep)
            assert layout.n_params == count == n_params(layout.cell, 2, 3, 4, L, D == 2, peep)
            table = layout.offsets()
            G = layout.gates
            for layer in range(L):
                I_l = 2 if layer == 0 else 3 * D
                for d in range(D):
                    off = documented_offset(layout.cell, 2, 3, L, D, layer, d, peep)
                    assert table[layer * D + d, 0] == off
                    assert table[layer * D + d, 1] == off + G * 3 * (3 + I_l)
                    if table[layer * D + d, 2] >= 0:
                        assert table[layer * D + d, 2] == off + G * 3 * (3 + I_l) + G * 3
            assert table[-1, 0] == documented_offset(layout.cell, 2, 3, L, D, L, 0, peep)
