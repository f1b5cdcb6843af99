"""The kernels run as plain Python (``NUMBA_DISABLE_JIT=1``) and agree with the
compiled ones.

One subprocess with the JIT disabled computes every case of :func:`compute`
(losses, gradients, dL/dh0, predictions, final states, and small fits) and
saves them; this process computes the same with the compiled kernels. In
float64 the two agree to ~1e-12: they differ only where the compiled code uses
its own ``tanh``/``sigmoid`` (a few ulp from NumPy's) and fastmath's
reassociation. Besides being a check that the kernels' Python is valid Python,
this is how line coverage reaches the kernels' bodies (see ``.ci/run``).

Run as a script, this file writes the cases to the ``.npz`` named by its
argument (under whatever ``NUMBA_DISABLE_JIT`` the environment says).
"""

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# name -> RNN keyword arguments
CELLS = {
    "elman": dict(cell="elman"),
    "lstm": dict(cell="lstm"),
    "lstm_peephole": dict(cell="lstm", peephole=True),
    "gru": dict(cell="gru"),
    "gru_cho": dict(cell="gru", reset_after=False),
}
# name -> (num_layers, bidirectional, dtype)
SHAPES = {
    "1layer": (1, False, "float64"),
    "2layers_bi": (2, True, "float64"),
    "2layers_bi_f32": (2, True, "float32"),
}
FITS = ["fit_seed_sgd", "fit_classifier_adam", "fit_lbfgs_gru"]
# wide: products big enough for the blocked, transposed and padded code paths of
# rnnumba._linalg (a few seconds as Python)
WIDE = ["elman-wide", "lstm-wide", "lstm-wide_f32", "gru_cho-wide"]
# checkpointed BPTT past one segment: a stack in lockstep (rnnumba.lockstep, rnnumba.bilockstep)
LOCKSTEP = ["lstm-lockstep", "gru-lockstep", "lstm-bilockstep"]
CASES = [f"{c}-{s}" for c in CELLS for s in SHAPES] + ["elman-chunks", "gru-chunks"] + WIDE + LOCKSTEP + FITS
RTOL = {"float64": 1e-12, "float32": 1e-5}  # seen: 3e-15 and 5e-7


def _net_case(cell, num_layers, bidirectional, dtype, N=5, T=4, I=2, O=2):
    """Loss and gradient (mse and xent, with dropout and h0 on deep nets),
    dL/dh0, predictions and final states of one small network."""
    from rnnumba import RNN

    rng = np.random.default_rng(7)
    net = RNN(
        I,
        3,
        O,
        num_layers=num_layers,
        bidirectional=bidirectional,
        dtype=dtype,
        random_state=0,
        dropout=0.3 if num_layers > 1 else 0.0,
        **CELLS[cell],
    )
    net.theta[:] = rng.normal(0.0, 0.6, net.n_params)  # biases too, not only the init's
    X = rng.normal(size=(N, T, I)).astype(dtype)
    lengths = rng.integers(1, T + 1, size=N)
    lengths[0], lengths[-1] = 1, T  # variable lengths, 1 and T included
    y = rng.normal(size=(N, O)).astype(dtype)
    classes = rng.integers(0, O, size=(N, T))
    states = num_layers * (2 if bidirectional else 1)
    h0 = rng.normal(0.0, 0.5, size=(states, N, 3)).astype(dtype)
    if cell.startswith("lstm"):
        h0 = (h0, rng.normal(0.0, 0.5, size=(states, N, 3)).astype(dtype))
    out = {}
    v, g = net.loss_and_grad(X, y, lengths=lengths)
    out["mse"], out["grad_mse"] = np.float64(v), g.copy()
    v, g = net.loss_and_grad(X, y)  # the dense fast path, all of length T
    out["mse_dense"], out["grad_dense"] = np.float64(v), g.copy()
    drop = 3 if num_layers > 1 else None
    v, g = net.loss_and_grad(X, classes, lengths=lengths, dropout_seed=drop, h0=h0)
    out["xent"], out["grad_xent"] = np.float64(v), g.copy()
    for k, a in enumerate(np.atleast_1d(net.grad_h0) if not isinstance(net.grad_h0, tuple) else net.grad_h0):
        out[f"grad_h0_{k}"] = np.asarray(a)
    out["predict"] = net.predict(X, lengths)
    p, hn = net.predict(X, lengths, many_to_many=True, h0=h0, return_state=True)
    out["predict_many"] = p
    for k, a in enumerate(hn if isinstance(hn, tuple) else (hn,)):
        out[f"hn_{k}"] = a
    return out


def _chunks_case(cell):
    """A batch the engine cuts into several chunks (its parallel kernels)."""
    from rnnumba import RNN
    from rnnumba.chunks import n_chunks

    N = 40
    assert n_chunks(N, 3) > 1
    rng = np.random.default_rng(3)
    net = RNN(2, 3, 1, random_state=0, **CELLS[cell])
    X = rng.normal(size=(N, 3, 2))
    lengths = rng.integers(1, 4, size=N)
    y = rng.normal(size=N)
    v, g = net.loss_and_grad(X, y, lengths=lengths)
    return {"mse": np.float64(v), "grad": g.copy(), "predict": net.predict(X, lengths)}


def _wide_case(cell, dtype):
    """Two chunks of 16 rows, hidden 32 (elman: 40; the float64 LSTM: 128, four gates of
    ``_linalg.WIDE`` bytes), 3 inputs (a ragged width)."""
    from rnnumba import RNN

    hidden = {"elman": 40, "lstm": 128 if dtype == "float64" else 32}.get(cell, 32)
    rng = np.random.default_rng(11)
    net = RNN(3, hidden, 2, random_state=0, dtype=dtype, **CELLS[cell])
    X = rng.normal(size=(32, 2, 3)).astype(dtype)
    lengths = rng.integers(1, 3, size=32)
    y = rng.normal(size=(32, 2)).astype(dtype)
    v, g = net.loss_and_grad(X, y, lengths=lengths)
    return {"mse": np.float64(v), "grad": g.copy(), "predict": net.predict(X, lengths)}


def _lockstep_case(cell, bidirectional=False):
    """Two layers, an output per step, T = 300 (two segments), with h0 and dropout, by checkpoints."""
    from rnnumba import RNN

    rng = np.random.default_rng(5)
    net = RNN(2, 3, 2, num_layers=2, bidirectional=bidirectional, random_state=0, dropout=0.3, **CELLS[cell])
    N, T = 3, 300
    X = rng.normal(size=(N, T, 2))
    lengths = np.array([T, 256, 100])  # past, at and before the segments' boundary
    y = rng.normal(size=(N, T, 2))
    h0 = rng.normal(0.0, 0.5, size=(4 if bidirectional else 2, N, 3))
    h0 = (h0, h0[::-1].copy()) if cell == "lstm" else h0
    v, g = net.loss_and_grad(X, y, lengths=lengths, h0=h0, dropout_seed=3, memory="checkpoint")
    out = {"mse": np.float64(v), "grad": g.copy()}
    for k, a in enumerate(net.grad_h0 if isinstance(net.grad_h0, tuple) else (net.grad_h0,)):
        out[f"grad_h0_{k}"] = np.asarray(a)
    seqs = net.prepare(X, lengths=lengths)
    out["predict"] = net.backend.predict(net.theta, seqs, True, storage="checkpoint")
    return out


def _fit_case(name):
    """A few epochs of the estimators (the solvers' compiled epoch loop, or scipy)."""
    import rnnumba
    from rnnumba.datasets import make_toy

    X, z = make_toy(32, random_state=0)
    if name == "fit_seed_sgd":
        model = rnnumba.RNNRegressor(hidden=4, epochs=2, random_state=0).fit(X, z)
        return {"predict": model.predict(X), "theta": model.theta_}
    if name == "fit_classifier_adam":
        model = rnnumba.RNNClassifier(hidden=4, epochs=2, solver="adam", batch_size=8, random_state=0)
        model.fit(X, (z > 5).astype(int))
        return {"proba": model.predict_proba(X), "theta": model.theta_}
    model = rnnumba.RNNRegressor(hidden=3, cell="gru", epochs=3, solver="L-BFGS-B", random_state=0)
    model.fit(X[:16], z[:16])
    return {"predict": model.predict(X), "theta": model.theta_}


def compute_case(name):
    """The arrays of one case of :data:`CASES`."""
    if name in FITS:
        return _fit_case(name)
    cell, shape = name.split("-")
    if shape == "chunks":
        return _chunks_case(cell)
    if shape.endswith("lockstep"):
        return _lockstep_case(cell, shape == "bilockstep")
    if shape.startswith("wide"):
        return _wide_case(cell, "float32" if shape.endswith("f32") else "float64")
    return _net_case(cell, *SHAPES[shape])


def compute():
    """Every case, as one flat dict ``"case/array" -> ndarray``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # compile notices; uint64 hashes wrapping in plain Python
        return {f"{case}/{k}": np.asarray(v) for case in CASES for k, v in compute_case(case).items()}


@pytest.fixture(scope="module")
def nojit(tmp_path_factory):
    """:func:`compute` in a subprocess with the JIT disabled."""
    path = tmp_path_factory.mktemp("nojit") / "cases.npz"
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    run = subprocess.run(
        [sys.executable, os.path.abspath(__file__), str(path)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    with np.load(path) as data:
        return dict(data)


@pytest.fixture(scope="module")
def jit():
    """:func:`compute` here, with the compiled kernels."""
    import numba

    if numba.config.DISABLE_JIT:
        pytest.skip("the JIT is disabled in this process too: nothing compiled to compare with")
    return compute()


def test_subprocess_ran_without_the_jit(nojit):
    assert nojit["_nojit/disable_jit"] == 1 and nojit["_nojit/kernels_are_python"] == 1


@pytest.mark.parametrize("case", CASES)
def test_plain_python_matches_compiled(case, nojit, jit):
    dtype = "float32" if case.endswith("f32") else "float64"
    keys = sorted(k for k in jit if k.startswith(case + "/"))
    assert keys and keys == sorted(k for k in nojit if k.startswith(case + "/"))
    for key in keys:
        a, b = nojit[key], jit[key]
        assert a.shape == b.shape and a.dtype == b.dtype, key
        assert np.array_equal(np.isnan(a), np.isnan(b)), key
        a, b = np.nan_to_num(a).astype(np.float64), np.nan_to_num(b).astype(np.float64)
        scale = max(np.max(np.abs(b), initial=0.0), 1e-300)
        err = np.max(np.abs(a - b), initial=0.0) / scale
        assert err <= RTOL[dtype], f"{key}: max |nojit - jit| / max |jit| = {err:.3g}"


def _main(path):
    import numba

    from rnnumba import engine

    results = compute()
    results["_nojit/disable_jit"] = np.asarray(int(numba.config.DISABLE_JIT))
    kernels = engine.kernels("elman")[1:]
    results["_nojit/kernels_are_python"] = np.asarray(
        int(all(type(k).__name__ == "function" for k in kernels))
    )
    np.savez(path, **results)


if __name__ == "__main__":
    _main(sys.argv[1])
