"""The GPU backend (rnnumba.gpu) run in numba's CUDA simulator, at tiny sizes.

numba reads ``NUMBA_ENABLE_CUDASIM`` once, when ``numba.cuda`` is first
imported, so the simulator runs in its own process: in an ordinary pytest run
only :func:`test_simulator_suite` runs, and it starts
``NUMBA_ENABLE_CUDASIM=1 pytest tests/test_cuda_sim.py``, where the other tests
run (and that wrapper skips itself). Everything skips without numba-cuda
(and its CUDA runtime wheel, which the simulator needs too).

Every kernel is compared in float64 with ``tests/reference.py`` to 1e-10
relative, and with the CPU engine where it has the cell.
"""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SIM = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")

if importlib.util.find_spec("numba_cuda") is None:
    pytest.skip(
        "numba-cuda is not installed (pip install numba-cuda nvidia-cuda-runtime)", allow_module_level=True
    )


needs_sim = pytest.mark.skipif(not SIM, reason="runs inside the simulator process (see test_simulator_suite)")


@pytest.mark.slow
def test_simulator_suite():
    """Run this module under NUMBA_ENABLE_CUDASIM=1 in a fresh process."""
    if SIM:
        pytest.skip("already inside the simulator process")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    probe = subprocess.run(
        [sys.executable, "-c", "from numba import cuda; cuda.to_device([1.0]).copy_to_host()"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if probe.returncode != 0:
        pytest.skip(
            f"the CUDA simulator does not start (numba-cuda needs the nvidia-cuda-runtime wheel): "
            f"{probe.stderr.strip().splitlines()[-1:]}"
        )
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            os.path.join(HERE, "test_cuda_sim.py"),
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    tail = "\n".join(run.stdout.splitlines()[-40:])
    assert run.returncode == 0, f"simulator suite failed:\n{tail}\n{run.stderr[-2000:]}"
    print(tail)


# --------------------------------------------------------------------------- problems
CELLS = {  # name -> (cell, peephole, reset_after)
    "elman": ("elman", False, True),
    "lstm": ("lstm", False, True),
    "lstm_peephole": ("lstm", True, True),
    "gru": ("gru", False, True),
    "gru_cho": ("gru", False, False),
}


def make_case(
    name,
    layers=1,
    bidir=False,
    many=False,
    loss="mse",
    lengths=(1, 3, 2),
    T=3,
    I=2,
    H=2,
    seed=0,
    dtype=np.float64,
):
    """(layout, theta, X, lengths, y, Y, count): NaN in X's padding (never read);
    ``y`` as the reference and RNN take it, ``Y`` (N, 1|T, O|1) as the engine does."""
    from rnnumba.layout import Layout

    cell, peephole, reset_after = CELLS[name]
    O = 3 if loss == "xent" else 2
    layout = Layout(cell, I, H, O, layers, bidir, peephole, reset_after)
    rng = np.random.default_rng(seed)
    theta = rng.normal(0.0, 0.6, layout.n_params).astype(dtype)
    lengths = np.asarray(lengths, dtype=np.int64)
    N = len(lengths)
    X = rng.normal(size=(N, T, I))
    valid = np.arange(T)[None, :] < lengths[:, None]
    X[~valid] = np.nan
    if loss == "mse":
        y = rng.normal(size=(N, T, O) if many else (N, O))
        Y = y if many else y[:, None, :]
    else:
        y = rng.integers(0, O, (N, T) if many else (N,))
        Y = (y[:, :, None] if many else y[:, None, None]).astype(dtype)
    count = (int(lengths.sum()) if many else N) * (O if loss == "mse" else 1)
    return layout, theta, X.astype(dtype), lengths, y, Y.astype(dtype), count


def gpu_loss_and_grad(layout, theta, X, lengths, Y, loss, count, many, strategy="auto"):
    from rnnumba.gpu import DeviceEngine

    eng = DeviceEngine(layout, theta.dtype, strategy)
    grad = np.full_like(theta, np.nan)
    value = eng.loss_and_grad(theta, grad, X, lengths, Y, loss, 1.0 / count, many)
    return value, grad, eng


def ref_loss_and_grad(layout, theta, X, lengths, y, loss, many):
    import reference as ref

    gru = "pytorch" if layout.reset_after else "cho"
    return ref.loss_and_grad(
        layout, theta.astype(np.float64), X.astype(np.float64), lengths, y, loss, many, gru
    )


def rel(a, b):
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-300)


# --------------------------------------------------------------------------- forward + BPTT
@needs_sim
@pytest.mark.parametrize("strategy", ["persistent", "stepwise"])
@pytest.mark.parametrize("name", list(CELLS))
def test_stacked_bidirectional_many_to_many_xent(name, strategy):
    layout, theta, X, lengths, y, Y, count = make_case(
        name, layers=2, bidir=True, many=True, loss="xent", lengths=(1, 3, 2, 3)
    )
    value, grad, eng = gpu_loss_and_grad(layout, theta, X, lengths, Y, "xent", count, True, strategy)
    v_ref, g_ref = ref_loss_and_grad(layout, theta, X, lengths, y, "xent", True)
    assert value == pytest.approx(v_ref, rel=1e-10)
    assert rel(grad, g_ref) < 1e-10
    import reference as ref

    pred = eng.predict(theta, X, lengths, many=True)
    want = ref.forward(layout, theta, X, lengths, True, "pytorch" if layout.reset_after else "cho")
    assert np.array_equal(np.isnan(pred), np.isnan(want))  # NaN exactly in the padding
    np.testing.assert_allclose(pred, want, rtol=1e-10, atol=1e-12)


@needs_sim
@pytest.mark.parametrize("strategy", ["persistent", "persistent-global", "stepwise"])
@pytest.mark.parametrize("name", list(CELLS))
def test_bidirectional_many_to_one_mse(name, strategy):
    # 5 samples over blocks of 3 (the simulator's 2 "multiprocessors"): a partial block
    layout, theta, X, lengths, y, Y, count = make_case(name, bidir=True, lengths=(2, 3, 1, 3, 2), H=3, seed=1)
    value, grad, eng = gpu_loss_and_grad(layout, theta, X, lengths, Y, "mse", count, False, strategy)
    v_ref, g_ref = ref_loss_and_grad(layout, theta, X, lengths, y, "mse", False)
    assert value == pytest.approx(v_ref, rel=1e-10)
    assert rel(grad, g_ref) < 1e-10
    import reference as ref

    want = ref.forward(layout, theta, X, lengths, False, "pytorch" if layout.reset_after else "cho")
    np.testing.assert_allclose(eng.predict(theta, X, lengths), want, rtol=1e-10, atol=1e-12)


@needs_sim
@pytest.mark.parametrize("name", ["elman", "lstm_peephole", "gru_cho"])
def test_deep_unidirectional_many_to_many_mse(name):
    layout, theta, X, lengths, y, Y, count = make_case(
        name, layers=3, many=True, lengths=(3, 1, 2), H=3, seed=2
    )
    value, grad, _ = gpu_loss_and_grad(layout, theta, X, lengths, Y, "mse", count, True)
    v_ref, g_ref = ref_loss_and_grad(layout, theta, X, lengths, y, "mse", True)
    assert value == pytest.approx(v_ref, rel=1e-10)
    assert rel(grad, g_ref) < 1e-10


@needs_sim
@pytest.mark.parametrize("name", list(CELLS))
def test_matches_cpu_engine(name):
    """The same numbers as rnnumba's CPU engine (RNN.loss_and_grad)."""
    from rnnumba.network import RNN

    layout, theta, X, lengths, y, Y, count = make_case(name, bidir=True, lengths=(2, 3, 1), seed=3)
    net = RNN(
        layout.input_size,
        layout.hidden,
        layout.output_size,
        cell=layout.cell,
        bidirectional=True,
        peephole=layout.peephole,
        reset_after=layout.reset_after,
    )
    v_cpu, g_cpu = net.loss_and_grad(X, y, lengths=lengths, loss="mse", theta=theta)
    g_cpu = g_cpu.copy()
    v_ref, g_ref = ref_loss_and_grad(layout, theta, X, lengths, y, "mse", False)
    # the CPU engine must agree with the reference first: a disagreement fails
    assert abs(v_cpu - v_ref) <= 1e-10 * abs(v_ref) and rel(g_cpu, g_ref) < 1e-10, name
    value, grad, _ = gpu_loss_and_grad(layout, theta, X, lengths, Y, "mse", count, False)
    assert value == pytest.approx(v_cpu, rel=1e-10)
    assert rel(grad, g_cpu) < 1e-10


@needs_sim
@pytest.mark.parametrize("name", ["elman", "lstm", "gru_cho"])
def test_float32(name):
    layout, theta, X, lengths, y, Y, count = make_case(
        name, bidir=True, many=True, lengths=(2, 3, 1), seed=4, dtype=np.float32
    )
    value, grad, _ = gpu_loss_and_grad(layout, theta, X, lengths, Y, "mse", count, True)
    assert grad.dtype == np.float32
    v_ref, g_ref = ref_loss_and_grad(layout, theta, X, lengths, y, "mse", True)
    assert value == pytest.approx(v_ref, rel=1e-5)
    assert rel(grad, g_ref) < 1e-5


@needs_sim
def test_deterministic_bitwise():
    layout, theta, X, lengths, y, Y, count = make_case("lstm", bidir=True, lengths=(2, 3, 1, 3, 1), seed=5)
    v1, g1, eng = gpu_loss_and_grad(layout, theta, X, lengths, Y, "mse", count, False)
    g2 = np.empty_like(g1)
    v2 = eng.loss_and_grad(theta, g2, X, lengths, Y, "mse", 1.0 / count, False)
    assert v1 == v2 and np.array_equal(g1, g2)


@needs_sim
def test_plan_by_size():
    from rnnumba.gpu import DeviceEngine
    from rnnumba.layout import Layout

    assert DeviceEngine(Layout("gru", 1, 8)).plan(5)[0] == "persistent"
    # 4*64*64*8 bytes of W_h exceed the simulator's 48 KiB; a step's product is small
    assert DeviceEngine(Layout("lstm", 1, 64)).plan(5)[0] == "persistent-global"
    # ... and large: 64*4*512*512 multiply-adds a step
    assert DeviceEngine(Layout("lstm", 1, 512)).plan(64)[0] == "stepwise"
    with pytest.raises(ValueError, match="shared memory"):
        DeviceEngine(Layout("lstm", 1, 64), strategy="persistent").plan(5)
    with pytest.raises(ValueError, match="strategy must be"):
        DeviceEngine(Layout("lstm", 1, 4), strategy="fast")


@needs_sim
def test_refused_persistent_launch_falls_back(monkeypatch):
    """A GPU may refuse a persistent launch (shared memory, registers): the
    engine warns and finishes with the stepwise kernels, same numbers."""
    from rnnumba.gpu import persistent

    def refuse(*args, **kwargs):
        raise RuntimeError("CUDA_ERROR_INVALID_VALUE (pretend)")

    monkeypatch.setattr(persistent, "launch_forward", refuse)
    layout, theta, X, lengths, y, Y, count = make_case("lstm", lengths=(2, 3, 1), seed=9)
    with pytest.warns(RuntimeWarning, match="persistent kernel launch failed"):
        value, grad, eng = gpu_loss_and_grad(layout, theta, X, lengths, Y, "mse", count, False)
    assert eng.plan(3)[0] == "stepwise"
    v_ref, g_ref = ref_loss_and_grad(layout, theta, X, lengths, y, "mse", False)
    assert value == pytest.approx(v_ref, rel=1e-10)
    assert rel(grad, g_ref) < 1e-10


# --------------------------------------------------------------------------- building blocks
@needs_sim
@pytest.mark.parametrize("accumulate", [False, True])
def test_gemm_strided_split_k(accumulate):
    """C (+)= A^T B with K long enough to be split, on offset strided views."""
    from numba import cuda

    from rnnumba.gpu import linalg

    rng = np.random.default_rng(0)
    M, N, K = 5, 3, 37
    A = rng.normal(size=(K, M + 2))  # use columns 1..M
    B = rng.normal(size=(K, N))
    C0 = rng.normal(size=(M, N + 1))
    assert linalg.splits(M, N, K)[0] > 1
    dA, dB, dC = cuda.to_device(A.ravel()), cuda.to_device(B.ravel()), cuda.to_device(C0.ravel())

    buf = cuda.device_array(4096)

    def scratch(n):
        assert n <= buf.shape[0]
        return buf

    linalg.gemm(
        (dA, 1, 1, M + 2), (dB, 0, N, 1), (dC, 0, N + 1, 1), M, N, K, accumulate=accumulate, scratch=scratch
    )
    want = C0.copy()
    want[:, :N] = (C0[:, :N] if accumulate else 0) + A[:, 1 : M + 1].T @ B
    np.testing.assert_allclose(dC.copy_to_host().reshape(M, N + 1), want, rtol=1e-13)


@needs_sim
def test_gemm_bias_and_colsum():
    from numba import cuda

    from rnnumba.gpu import linalg

    rng = np.random.default_rng(1)
    M, N, K = 6, 5, 3
    A, W, b = rng.normal(size=(M, K)), rng.normal(size=(N, K)), rng.normal(size=N)
    dC = cuda.device_array(M * N)
    dAm, dW = cuda.to_device(A.ravel()), cuda.to_device(W.ravel())
    linalg.gemm((dAm, 0, K, 1), (dW, 0, 1, K), (dC, 0, N, 1), M, N, K, bias=(cuda.to_device(b), 0))
    np.testing.assert_allclose(dC.copy_to_host().reshape(M, N), A @ W.T + b, rtol=1e-13)
    P = rng.normal(size=(20, 4))
    Q = rng.normal(size=(20, 4))
    out = cuda.to_device(np.zeros(6))
    linalg.colsum(
        cuda.to_device(P.ravel()),
        1,
        4,
        20,
        3,
        out,
        2,
        B=cuda.to_device(Q.ravel()),
        b_off=0,
        b_ld=4,
        scratch=lambda n: cuda.device_array(n),
    )
    np.testing.assert_allclose(out.copy_to_host()[2:5], (P[:, 1:4] * Q[:, 0:3]).sum(0), rtol=1e-13)


# --------------------------------------------------------------------------- training on the device
def host_fit(
    layout,
    theta,
    X,
    lengths,
    y,
    loss,
    many,
    method,
    lr,
    bs,
    epochs,
    clip,
    wd,
    seed,
    mu,
    nesterov,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
):
    """The CPU solvers' semantics (rnnumba.solvers.kernels._epoch) in NumPy."""
    import math

    theta = theta.astype(np.float64).copy()
    N = len(lengths)
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    rng = np.random.default_rng(seed)
    n_blocks, step, curve = -(-N // bs), 0, []
    for _ in range(epochs):
        total = rows = 0
        for k in rng.permutation(n_blocks):
            s0, s1 = k * bs, min(N, (k + 1) * bs)
            value, g = ref_loss_and_grad(layout, theta, X[s0:s1], lengths[s0:s1], y[s0:s1], loss, many)
            n2 = g @ g
            if clip and n2 > clip * clip:
                g = g * (clip / math.sqrt(n2))
            g = g + wd * theta
            step += 1
            if method == "adam":
                m = b1 * m + (1 - b1) * g
                v = b2 * v + (1 - b2) * g * g
                theta = theta - lr * (m / (1 - b1**step)) / (np.sqrt(v / (1 - b2**step)) + eps)
            else:
                if mu:
                    m = mu * m + g
                    g = g + mu * m if nesterov else m
                theta = theta - lr * g
            total += value * (s1 - s0)
            rows += s1 - s0
        curve.append(total / rows)
    return theta, np.array(curve)


@needs_sim
@pytest.mark.parametrize(
    "solver, clip, wd",
    [("sgd", None, 0.0), ("momentum", 0.5, 0.01), ("nesterov", None, 0.0), ("adam", 0.3, 1e-3)],
)
def test_train_epochs_matches_host_solver(solver, clip, wd):
    from rnnumba.gpu import train_epochs

    layout, theta, X, lengths, y, Y, _ = make_case("gru", lengths=(2, 3, 1, 3, 2), seed=6)
    kw = dict(lr=0.1, batch_size=2, epochs=2, clip=clip, weight_decay=wd, random_state=3)
    th, curve = train_epochs(layout, theta, X, lengths, Y, "mse", False, solver=solver, **kw)
    method = "adam" if solver == "adam" else "sgd"
    mu = 0.9 if solver in ("momentum", "nesterov") else 0.0
    th_ref, c_ref = host_fit(
        layout, theta, X, lengths, y, "mse", False, method, 0.1, 2, 2, clip, wd, 3, mu, solver == "nesterov"
    )
    assert rel(th, th_ref) < 1e-10
    np.testing.assert_allclose(curve, c_ref, rtol=1e-10)
    th2, curve2 = train_epochs(layout, theta, X, lengths, Y, "mse", False, solver=solver, **kw)
    assert np.array_equal(th, th2) and np.array_equal(curve, curve2)  # a seeded fit repeats bitwise


@needs_sim
def test_train_many_to_many_xent_stepwise():
    from rnnumba.gpu import train_epochs

    layout, theta, X, lengths, y, Y, _ = make_case("elman", many=True, loss="xent", lengths=(2, 3, 1), seed=7)
    th, curve = train_epochs(
        layout,
        theta,
        X,
        lengths,
        Y,
        "xent",
        True,
        solver="sgd",
        lr=0.2,
        batch_size=2,
        epochs=2,
        random_state=0,
        strategy="stepwise",
    )
    th_ref, c_ref = host_fit(
        layout, theta, X, lengths, y, "xent", True, "sgd", 0.2, 2, 2, None, 0.0, 0, 0.0, False
    )
    assert rel(th, th_ref) < 1e-10
    np.testing.assert_allclose(curve, c_ref, rtol=1e-10)


@needs_sim
@pytest.mark.parametrize("lr, where", [(1e200, "loss"), (np.inf, "update")])
def test_divergence_restores_last_finite_parameters(lr, where):
    from rnnumba.gpu import DeviceTrainer

    layout, theta, X, lengths, y, Y, _ = make_case("elman", lengths=(2, 3, 1, 2), seed=8)
    tr = DeviceTrainer(layout, theta, X, lengths, Y, "mse", False, method="sgd", lr=lr, batch_size=2)
    mean, finite = tr.epoch(np.array([0, 1]))
    assert not finite
    # "loss": step 1 is finite and moves theta to ~1e200, step 2's loss overflows -> back to theta_0;
    # "update": step 1's update is inf -> back to theta_0 at once
    np.testing.assert_array_equal(tr.theta(), theta)
    assert np.isfinite(mean) if where == "loss" else np.isnan(mean)
    assert tr.step == (1 if where == "loss" else 0)
    assert tr.epoch(np.array([0, 1])) == (pytest.approx(np.nan, nan_ok=True), False)
    np.testing.assert_array_equal(tr.theta(), theta)


# --------------------------------------------------------------------------- availability
@needs_sim
def test_available_in_simulator():
    from rnnumba.gpu import available

    ok, reason = available()
    assert ok and "simulator" in reason


# --------------------------------------------------------------------------- the public switch
@needs_sim
@pytest.mark.parametrize("many", [False, True])
def test_rnn_device_cuda_matches_cpu_and_models_move_between_devices(many):
    import rnnumba

    rng = np.random.default_rng(7)
    X = rng.normal(size=(3, 4, 2))
    lengths = np.array([4, 1, 3])
    y = rng.normal(size=(3, 4, 2) if many else (3, 2))
    cpu = rnnumba.RNN(2, 3, 2, cell="gru", bidirectional=True, random_state=0)
    gpu = cpu.copy().to("cuda")
    assert gpu.device == "cuda" and np.array_equal(gpu.theta, cpu.theta)
    l_cpu, g_cpu = cpu.loss_and_grad(X, y, lengths=lengths)
    l_gpu, g_gpu = gpu.loss_and_grad(X, y, lengths=lengths)
    assert abs(l_gpu - l_cpu) <= 1e-12 * l_cpu
    assert np.max(np.abs(g_gpu - g_cpu)) <= 1e-10 * np.max(np.abs(g_cpu))
    p_cpu = cpu.predict(X, lengths=lengths, many_to_many=many)
    p_gpu = gpu.predict(X, lengths=lengths, many_to_many=many)
    assert np.allclose(p_gpu, p_cpu, rtol=1e-12, atol=1e-14, equal_nan=True)
    # a network "trained" on the GPU predicts on the CPU from the same vector
    gpu.theta -= 0.1 * g_gpu
    back = gpu.copy().to("cpu")
    assert np.allclose(back.predict(X, lengths=lengths), gpu.predict(X, lengths=lengths), rtol=1e-12)


@needs_sim
def test_device_cuda_refuses_what_the_gpu_backend_lacks():
    """Dropout between layers and initial/final states run on the CPU only:
    on device="cuda" they are refused with a clear error, never ignored."""
    import rnnumba

    X, y = np.zeros((3, 4, 2)), np.zeros(3)
    with pytest.raises(ValueError, match="dropout between layers is not implemented on the GPU"):
        rnnumba.RNN(2, 3, num_layers=2, dropout=0.5, device="cuda")
    net = rnnumba.RNN(2, 3, random_state=0, device="cuda")
    with pytest.raises(ValueError, match="initial and final states are not implemented on the GPU"):
        net.loss_and_grad(X, y, h0=np.zeros((1, 3, 3)))
    with pytest.raises(ValueError, match="initial and final states are not implemented on the GPU"):
        net.predict(X, h0=np.zeros((1, 3, 3)))
    with pytest.raises(ValueError, match="initial and final states are not implemented on the GPU"):
        net.predict(X, return_state=True)
    net.to("cpu")  # the same network on the CPU takes them
    _, state = net.predict(X, return_state=True)
    assert state.shape == (1, 3, 3)


# --------------------------------------------------------------------------- estimators on device="cuda"
def _est_data(seed=11, N=7, T=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, T, 2))
    lengths = np.array([3, 1, 2, 3, 2, 3, 1][:N])
    return X, lengths, rng.normal(size=N)


@needs_sim
@pytest.mark.parametrize(
    "kw",
    [
        dict(solver="sgd", lr=0.1, momentum=0.9, nesterov=True, clip=0.5),
        dict(solver="adam", lr=0.05, weight_decay=1e-3),
        dict(solver="sgd", lr=0.1, early_stopping=True, validation_fraction=0.3, n_iter_no_change=1),
    ],
)
def test_estimator_device_cuda_matches_cpu_fit(kw, tmp_path):
    import rnnumba

    X, lengths, y = _est_data()
    base = dict(hidden=3, cell="gru", batch_size=2, epochs=2, random_state=5, **kw)
    cpu = rnnumba.RNNRegressor(**base).fit(X, y, lengths=lengths)
    gpu = rnnumba.RNNRegressor(device="cuda", **base).fit(X, y, lengths=lengths)
    assert rel(gpu.theta_, cpu.theta_) < 1e-10
    np.testing.assert_allclose(gpu.loss_curve_, cpu.loss_curve_, rtol=1e-10)
    assert gpu.n_iter_ == cpu.n_iter_ and gpu.stop_reason_ == cpu.stop_reason_
    # predicts on the CPU after a GPU fit, and so does the saved model
    assert gpu.net_.device == "cpu" and gpu.get_params()["device"] == "cuda"
    np.testing.assert_allclose(gpu.predict(X, lengths), cpu.predict(X, lengths), rtol=1e-9)
    gpu.save(tmp_path / "m.npz")
    back = rnnumba.load(tmp_path / "m.npz")
    assert back.device == "cuda" and back.net_.device == "cpu"
    np.testing.assert_array_equal(back.predict(X, lengths), gpu.predict(X, lengths))
    again = rnnumba.RNNRegressor(device="cuda", **base).fit(X, y, lengths=lengths)
    assert np.array_equal(again.theta_, gpu.theta_)  # a seeded GPU fit repeats bitwise


@needs_sim
def test_fit_device_cuda_classifier_and_callbacks_see_device_theta():
    import rnnumba

    X, lengths, _ = _est_data(N=6)
    y = np.array([0, 1, 0, 1, 1, 0])
    seen = []
    kw = dict(hidden=2, epochs=2, batch_size=3, lr=0.2, random_state=1)
    cb = lambda est, e, loss: seen.append(est.theta_.copy())  # noqa: E731
    gpu = rnnumba.fit(X, y, lengths=lengths, device="cuda", callbacks=cb, **kw)
    cpu = rnnumba.fit(X, y, lengths=lengths, **kw)
    assert isinstance(gpu, rnnumba.RNNClassifier) and len(seen) == 2
    assert rel(seen[-1], gpu.theta_) == 0 and rel(gpu.theta_, cpu.theta_) < 1e-10
    assert rel(seen[0], seen[1]) > 0  # theta was copied back after each epoch
    np.testing.assert_array_equal(gpu.predict(X, lengths), cpu.predict(X, lengths))


@needs_sim
def test_estimator_device_cuda_lbfgs():
    import rnnumba

    X, lengths, y = _est_data()
    base = dict(hidden=2, solver="L-BFGS-B", epochs=2, random_state=2)
    cpu = rnnumba.RNNRegressor(**base).fit(X, y, lengths=lengths)
    gpu = rnnumba.RNNRegressor(device="cuda", **base).fit(X, y, lengths=lengths)
    assert gpu.n_iter_ == cpu.n_iter_ and gpu.net_.device == "cpu"
    assert rel(gpu.theta_, cpu.theta_) < 1e-8
    np.testing.assert_allclose(gpu.loss_curve_, cpu.loss_curve_, rtol=1e-9)


def test_device_cuda_without_gpu_raises_at_fit():
    import rnnumba
    from rnnumba.gpu import available

    if SIM or available()[0]:
        pytest.skip("CUDA can run here")
    X, lengths, y = _est_data()
    est = rnnumba.RNNRegressor(hidden=2, epochs=1, device="cuda")
    with pytest.raises(RuntimeError, match="device='cuda' cannot run here"):
        est.fit(X, y, lengths=lengths)
    assert "net_" not in est.__dict__  # nothing half-fitted
    with pytest.raises(ValueError, match="device must be 'cpu' or 'cuda'"):
        rnnumba.fit(X, y, lengths=lengths, hidden=2, epochs=1, device="tpu")
