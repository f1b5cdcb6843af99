"""The tools people would otherwise use, doing the same training step.

A step is forward + BPTT + plain SGD update of a many-to-one network with a
linear head and mean squared error, on a fixed (N, T, I) batch.

* :func:`torch_step` -- ``nn.RNN``/``nn.LSTM``/``nn.GRU`` + ``nn.Linear``, autograd,
  ``torch.optim.SGD``.
* :func:`numpy_step` -- a straightforward NumPy Elman BPTT done the way that
  matches PyTorch at large sizes: the input projection of all steps as one
  matrix product before the recurrence, every weight gradient as one product
  after it; only ``h_{t-1} W_hh`` stays in the time loop.
"""

import numpy as np


def torch_step(cell, N, T, I, H, dtype, threads, lr=0.01, seed=0):
    """(train_step, predict) closures for PyTorch on the CPU."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    tdt = torch.float32 if dtype == np.float32 else torch.float64
    kind = {"elman": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    rnn = kind(I, H, batch_first=True).to(tdt)
    head = torch.nn.Linear(H, 1).to(tdt)
    params = list(rnn.parameters()) + list(head.parameters())
    opt = torch.optim.SGD(params, lr=lr)
    rng = np.random.default_rng(seed)
    X = torch.from_numpy(rng.normal(size=(N, T, I)).astype(dtype))
    y = torch.from_numpy(rng.normal(size=(N, 1)).astype(dtype))

    def last(x):
        out = rnn(x)[1]
        return (out[0] if isinstance(out, tuple) else out)[-1]

    def step():
        opt.zero_grad()
        loss = torch.mean((head(last(X)) - y) ** 2)
        loss.backward()
        opt.step()
        return loss.item()

    def predict():
        with torch.no_grad():
            return head(last(X))

    return step, predict


def numpy_step(N, T, I, H, dtype, lr=0.01, seed=0):
    """(train_step, predict) closures for the NumPy Elman baseline."""
    rng = np.random.default_rng(seed)
    k = 1 / np.sqrt(H)
    W_hh = rng.uniform(-k, k, (H, H)).astype(dtype)
    W_xh = rng.uniform(-k, k, (I, H)).astype(dtype)
    b = np.zeros(H, dtype)
    w_o = rng.uniform(-k, k, H).astype(dtype)
    b_o = np.zeros(1, dtype)
    X = rng.normal(size=(T, N, I)).astype(dtype)  # time-major
    y = rng.normal(size=N).astype(dtype)

    def forward():
        hs = np.empty((T + 1, N, H), dtype)
        hs[0] = 0
        A = (X.reshape(T * N, I) @ W_xh).reshape(T, N, H) + b
        for t in range(T):
            hs[t + 1] = np.tanh(A[t] + hs[t] @ W_hh)
        return hs, hs[T] @ w_o + b_o

    def step():
        nonlocal b_o
        hs, yhat = forward()
        dy = 2 * (yhat - y) / N
        dh = np.outer(dy, w_o)
        dw_o, db_o = hs[T].T @ dy, dy.sum(keepdims=True)
        dZ = np.empty((T, N, H), dtype)
        for t in range(T - 1, -1, -1):
            dZ[t] = dh * (1 - hs[t + 1] ** 2)
            dh = dZ[t] @ W_hh.T
        dW_hh = hs[:T].reshape(T * N, H).T @ dZ.reshape(T * N, H)
        dW_xh = X.reshape(T * N, I).T @ dZ.reshape(T * N, H)
        for p, g in ((W_hh, dW_hh), (W_xh, dW_xh), (b, dZ.sum((0, 1))), (w_o, dw_o)):
            p -= lr * g
        b_o = b_o - lr * db_o
        return float(np.mean((yhat - y) ** 2))

    def predict():
        return forward()[1]

    return step, predict
