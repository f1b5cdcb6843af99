"""The CPU engine: layers, directions, chunks and the head around the cells.

A batch is cut into ``n_chunks`` contiguous blocks of samples (a number fixed
by the batch shape, never by the thread count). Each block runs forward and
BPTT on its own into its own partial gradient; the partials are then summed in
block order, so a result is bitwise the same on 1 or 64 threads.

Sibling implementations of the same computation: ``rnnumba.gpu.engine`` (GPU)
and ``rnnumba.distributed`` (Dask), over the same :class:`~rnnumba.layout.Layout`.
"""

import numpy as np
from numba import prange

from ._jit import jit
from .cells import elman, gru, lstm
from .losses import _head, _readout

ELMAN, LSTM, GRU = 0, 1, 2


@jit(inline="always")
def _tensor(theta, offset, shape0, shape1):
    return theta[offset : offset + shape0 * shape1].reshape(shape0, shape1)


@jit
def _state_width(cell, H):
    if cell == LSTM:
        return lstm.STATE_WIDTH * H
    if cell == GRU:
        return gru.STATE_WIDTH * H
    return elman.STATE_WIDTH


@jit
def _cell_forward(spec, W, b, extra, HX, S, lengths):
    # spec: Layout.spec(); LSTM peepholes are on iff ``extra`` is not empty
    cell = spec[0]
    if cell == ELMAN:
        elman._forward(W, b, extra, HX, S, lengths)
    elif cell == LSTM:
        lstm._forward(W, b, extra, HX, S, lengths)
    elif cell == GRU:
        gru._forward(W, b, extra, HX, S, lengths, spec[7] != 0)


@jit
def _cell_backward(spec, W, b, extra, HX, S, lengths, dHs, dW, db, dextra, dX):
    cell = spec[0]
    if cell == ELMAN:
        elman._backward(W, b, extra, HX, S, lengths, dHs, dW, db, dextra, dX)
    elif cell == LSTM:
        lstm._backward(W, b, extra, HX, S, lengths, dHs, dW, db, dextra, dX)
    elif cell == GRU:
        gru._backward(W, b, extra, HX, S, lengths, dHs, dW, db, dextra, dX, spec[7] != 0)


@jit(inline="always")
def _gates(cell):
    return 1 if cell == ELMAN else (4 if cell == LSTM else 3)


@jit(inline="always")
def _extra_size(spec):
    """Size of the cell's extra tensor: GRU's b_hn, LSTM peepholes, or none."""
    cell, H = spec[0], spec[1]
    if cell == GRU:
        return H
    if cell == LSTM and spec[6]:
        return 3 * H
    return 0


@jit(inline="always")
def _src(t, length, d):
    """Original time index read at step ``t`` of direction ``d`` (-1: padding)."""
    if t >= length:
        return -1
    return t if d == 0 else length - 1 - t


@jit
def _chunk_forward(theta, spec, offsets, X, lengths, s0, s1):
    """Forward through all layers for samples ``s0:s1``.

    Returns the per-(layer, direction) ``HX`` and ``S`` buffers (kept for BPTT)
    and the top layer's outputs (T, n, H*D) in original time order, zero in
    the padding.
    """
    cell, H, L, D = spec[0], spec[1], spec[2], spec[3]
    T, n = X.shape[1], s1 - s0
    lens = lengths[s0:s1]
    dtype = theta.dtype
    width = _state_width(cell, H)
    G = _gates(cell)
    inp = np.zeros((T, n, X.shape[2]), dtype=dtype)
    for i in range(n):
        for t in range(lens[i]):
            inp[t, i, :] = X[s0 + i, t, :]
    HXs, Ss = [], []
    for layer in range(L):
        I_l = inp.shape[2]
        out = np.zeros((T, n, H * D), dtype=dtype)
        for d in range(D):
            row = offsets[layer * D + d]
            W = _tensor(theta, row[0], G * H, H + I_l)
            b = theta[row[1] : row[1] + G * H]
            extra = theta[row[2] : row[2] + _extra_size(spec)]
            HX = np.zeros((T + 1, n, H + I_l), dtype=dtype)
            S = np.zeros((T + 1, n, width), dtype=dtype)
            for i in range(n):
                for t in range(lens[i]):
                    HX[t, i, H:] = inp[_src(t, lens[i], d), i, :]
            _cell_forward(spec, W, b, extra, HX, S, lens)
            for i in range(n):
                for t in range(lens[i]):
                    out[_src(t, lens[i], d), i, d * H : (d + 1) * H] = HX[t + 1, i, :H]
            HXs.append(HX)
            Ss.append(S)
        inp = out
    return HXs, Ss, inp


@jit
def _features(spec, HXs, top, lengths, s0, s1, many):
    """Head inputs: (n, H*D) final states, or (sum of lengths, H*D) valid steps."""
    H, L, D = spec[1], spec[2], spec[3]
    n = s1 - s0
    if many:
        M = 0
        for i in range(n):
            M += lengths[s0 + i]
        F = np.empty((M, H * D), dtype=top.dtype)
        m = 0
        for i in range(n):
            for t in range(lengths[s0 + i]):
                F[m, :] = top[t, i, :]
                m += 1
        return F
    F = np.empty((n, H * D), dtype=top.dtype)
    T = top.shape[0]
    for d in range(D):
        HX = HXs[(L - 1) * D + d]
        for i in range(n):
            F[i, d * H : (d + 1) * H] = HX[T, i, :H]  # states freeze: row T is final
    return F


@jit
def _chunk_loss_and_grad(theta, g, spec, offsets, X, lengths, Y, loss, scale, s0, s1):
    cell, H, L, D = spec[0], spec[1], spec[2], spec[3]
    O, many = spec[5], spec[8]
    T, n = X.shape[1], s1 - s0
    lens = lengths[s0:s1]
    G = _gates(cell)
    HXs, Ss, top = _chunk_forward(theta, spec, offsets, X, lengths, s0, s1)
    F = _features(spec, HXs, top, lengths, s0, s1, many)

    # the head
    Yc = np.empty((F.shape[0], Y.shape[2]), dtype=theta.dtype)
    m = 0
    for i in range(n):
        steps = lens[i] if many else 1
        for t in range(steps):
            Yc[m, :] = Y[s0 + i, t, :]
            m += 1
    head = offsets[L * D]
    dF = np.empty_like(F)
    value = _head(
        _tensor(theta, head[0], O, H * D),
        theta[head[1] : head[1] + O],
        F,
        Yc,
        loss,
        scale,
        dF,
        _tensor(g, head[0], O, H * D),
        g[head[1] : head[1] + O],
    )

    # dL/d(top layer outputs), original time order
    dOut = np.zeros((T, n, H * D), dtype=theta.dtype)
    if many:
        m = 0
        for i in range(n):
            for t in range(lens[i]):
                dOut[t, i, :] = dF[m, :]
                m += 1

    # BPTT, top layer first
    for layer in range(L - 1, -1, -1):
        I_l = X.shape[2] if layer == 0 else H * D
        dInp = np.zeros((T if layer > 0 else 0, n, I_l), dtype=theta.dtype)
        for d in range(D):
            row = offsets[layer * D + d]
            HX, S = HXs[layer * D + d], Ss[layer * D + d]
            dHs = np.zeros((T, n, H), dtype=theta.dtype)
            for i in range(n):
                for t in range(lens[i]):
                    dHs[t, i, :] = dOut[_src(t, lens[i], d), i, d * H : (d + 1) * H]
                if layer == L - 1 and not many:  # the final state feeds the head
                    dHs[lens[i] - 1, i, :] += dF[i, d * H : (d + 1) * H]
            dX = np.zeros((T if layer > 0 else 0, n, I_l), dtype=theta.dtype)
            n_extra = _extra_size(spec)
            _cell_backward(
                spec,
                _tensor(theta, row[0], G * H, H + I_l),
                theta[row[1] : row[1] + G * H],
                theta[row[2] : row[2] + n_extra],
                HX,
                S,
                lens,
                dHs,
                _tensor(g, row[0], G * H, H + I_l),
                g[row[1] : row[1] + G * H],
                g[row[2] : row[2] + n_extra],
                dX,
            )
            if layer > 0:
                for i in range(n):
                    for t in range(lens[i]):
                        dInp[_src(t, lens[i], d), i, :] += dX[t, i, :]
        dOut = dInp
    return value


@jit(parallel=True)
def _chunks_loss_and_grad(theta, partial, values, spec, offsets, X, lengths, Y, loss, scale):
    """Every chunk on numba's threads, each into its own row of ``partial``.

    Called from Python only (:func:`loss_and_grad`): a disk-cached njit function
    that calls a ``parallel=True`` one can crash a later process that loads it
    from the cache (numba issue 8578), and in a ``parallel=True`` function every
    array expression becomes a parallel region of its own, so this one holds
    nothing but the loop.
    """
    N, n_chunks = X.shape[0], values.shape[0]
    for c in prange(n_chunks):
        s0, s1 = c * N // n_chunks, (c + 1) * N // n_chunks
        values[c] = _chunk_loss_and_grad(theta, partial[c], spec, offsets, X, lengths, Y, loss, scale, s0, s1)


@jit
def _loss_and_grad(theta, grad, spec, offsets, X, lengths, Y, loss, scale, n_chunks):
    """Loss and gradient of a padded batch on one thread; fills ``grad``.

    The same chunks, the same arithmetic and the same order of summation as
    :func:`loss_and_grad`'s parallel path, so the results are bitwise equal;
    for compiled callers (the solvers' epoch loop), which must not call a
    parallel function.
    """
    N = X.shape[0]
    grad[:] = 0.0
    value = _chunk_loss_and_grad(theta, grad, spec, offsets, X, lengths, Y, loss, scale, 0, N // n_chunks)
    if n_chunks > 1:
        part = np.empty_like(grad)
        for c in range(1, n_chunks):  # fixed order: thread-count independent
            s0, s1 = c * N // n_chunks, (c + 1) * N // n_chunks
            part[:] = 0.0
            value += _chunk_loss_and_grad(theta, part, spec, offsets, X, lengths, Y, loss, scale, s0, s1)
            grad += part
    return value


def loss_and_grad(theta, grad, spec, offsets, X, lengths, Y, loss, scale, n_chunks):
    """Loss and gradient of a padded batch; fills ``grad``, returns the loss.

    ``spec`` and ``offsets`` come from :class:`~rnnumba.layout.Layout`
    (``spec[8]`` is the many-to-many flag), ``Y`` is (N, 1 or T, O) and
    ``scale`` is 1 / the number of loss terms. With several chunks they run on
    numba's threads and their partial gradients are summed in chunk order.
    """
    if n_chunks == 1:  # no parallel region: its start-up costs more than a small batch
        return _loss_and_grad(theta, grad, spec, offsets, X, lengths, Y, loss, scale, 1)
    partial = np.zeros((n_chunks, theta.shape[0]), dtype=theta.dtype)
    values = np.empty(n_chunks, dtype=np.float64)
    _chunks_loss_and_grad(theta, partial, values, spec, offsets, X, lengths, Y, loss, scale)
    grad[:] = partial[0]
    total = values[0]
    for c in range(1, n_chunks):  # fixed order: thread-count independent
        grad += partial[c]
        total += values[c]
    return total


@jit
def _chunk_predict(theta, spec, offsets, X, lengths, s0, s1, out):
    H, L, D, O, many = spec[1], spec[2], spec[3], spec[5], spec[8]
    head = offsets[L * D]
    HXs, Ss, top = _chunk_forward(theta, spec, offsets, X, lengths, s0, s1)
    F = _features(spec, HXs, top, lengths, s0, s1, many)
    Yhat = np.empty((F.shape[0], O), dtype=theta.dtype)
    _readout(_tensor(theta, head[0], O, H * D), theta[head[1] : head[1] + O], F, Yhat)
    m = 0
    for i in range(s1 - s0):
        if many:
            for t in range(lengths[s0 + i]):
                out[s0 + i, t, :] = Yhat[m, :]
                m += 1
        else:
            out[s0 + i, 0, :] = Yhat[i, :]


@jit(parallel=True)
def _predict(theta, spec, offsets, X, lengths, n_chunks, out):
    """Raw head outputs into ``out``: (N, O), or (N, T, O) with NaN in padding."""
    N = X.shape[0]
    for c in prange(n_chunks):
        _chunk_predict(theta, spec, offsets, X, lengths, c * N // n_chunks, (c + 1) * N // n_chunks, out)
