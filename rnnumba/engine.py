"""The CPU engine: layers, directions, chunks and the head around the cells.

A batch is cut into ``n_chunks`` contiguous blocks of samples (a number fixed
by the batch shape, never by the thread count). Each block runs forward and
BPTT on its own into its own partial gradient; the partials are then summed in
block order, so a result is bitwise the same on 1 or 64 threads.

Each cell has its own family of compiled kernels (:func:`kernels`), built by
one factory over the cell's ``_forward``/``_backward``: a network compiles the
kernels of its own cell, dtype and head, and nothing of the other cells.

Sibling implementations of the same computation: ``rnnumba.gpu.engine`` (GPU)
and ``rnnumba.distributed`` (Dask), over the same :class:`~rnnumba.layout.Layout`.
"""

import functools
from collections import namedtuple

import numpy as np
from numba import prange

from ._borrow import borrow
from ._jit import jit
from ._linalg import empty_aligned
from .cells import elman, gru, lstm
from .layout import B_AT, DIRECTIONS, EXTRA_AT, HIDDEN, LAYERS, MANY, OUTPUTS, PEEPHOLE, W_AT
from .losses import _head, _readout
from .validation import _first_nonfinite


@jit(inline="always")
def _tensor(theta, offset, shape0, shape1):
    return theta[offset : offset + shape0 * shape1].reshape(shape0, shape1)


@jit(inline="always")
def _copy(dst, src):
    """``dst[:] = src`` for 1-D rows: a plain loop, ~10x cheaper than numba's
    slice assignment, which costs ~17 ns a call (hundreds of calls per batch)."""
    for k in range(dst.shape[0]):
        dst[k] = src[k]


@jit(inline="always")
def _add(dst, src):
    """``dst += src`` for 1-D rows, as :func:`_copy`."""
    for k in range(dst.shape[0]):
        dst[k] += src[k]


LANE_BYTES = 64  # one AVX-512 register; a multiple of AVX2's 32
PAD_WORK = 1 << 16  # per-step multiply-adds from which padding repays its copies


@jit
def _padded(K, work, itemsize):
    """Row width of a layer's ``[h; x]`` buffer (and of its weights): ``K``, or
    ``K`` rounded up to whole SIMD registers.

    The products vectorise along ``K`` and run its last ``K % lanes`` columns
    one at a time, each costing about as much as a whole register's worth:
    at the medium size (K = 136, float32) the forward product ran at 53 GMAC/s
    against 66-70 with K = 128. Zero columns (in the weights and in ``x``)
    change no sum. Only where a step's product (``work`` multiply-adds) is
    big enough to repay copying the weights in and their gradient out.
    """
    lanes = LANE_BYTES // itemsize
    r = K % lanes
    if r < 2 or work < PAD_WORK:
        return K
    return K + lanes - r


@jit(inline="always")
def _weights(theta, offset, rows, K, Kp):
    """The (rows, K) weight matrix at ``offset``: a view, or a copy padded
    with zero columns to ``Kp`` (see :func:`_padded`)."""
    W = _tensor(theta, offset, rows, K)
    if Kp == K:
        return W
    Wp = empty_aligned(rows, Kp, theta.dtype)
    for j in range(rows):
        _copy(Wp[j, :K], W[j])
        for k in range(K, Kp):
            Wp[j, k] = 0.0
    return Wp


@jit(inline="always")
def _src(t, length, d):
    """Original time index read at step ``t`` of direction ``d`` (-1: padding)."""
    if t >= length:
        return -1
    return t if d == 0 else length - 1 - t


GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def dropout_plan(p, seed=None):
    """The ``drop`` argument of the kernels: int64 ``(key, threshold)``.

    ``p`` is the probability of dropping a layer's output; ``seed`` (any
    ``numpy.random.SeedSequence`` entropy) picks the masks. ``p == 0`` or
    ``seed=None``: no dropout, ``(0, 0)``.
    """
    if not p or seed is None:
        return np.zeros(2, dtype=np.int64)
    key = np.random.SeedSequence(seed).generate_state(1, np.uint64).view(np.int64)[0]
    return np.array([key, int(round(p * 2.0**53))], dtype=np.int64)


@jit(inline="always")
def _mix(x):
    """splitmix64's finaliser: a bijection of uint64 that scrambles every bit."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@jit
def _dropout(A, drop, layer, s0, lens):
    """Inverted dropout, in place, of a layer's outputs ``A`` (T, n, H*D) at
    every valid step: each entry is zeroed or scaled by 1 / (keep probability).

    ``drop`` is ``(key, threshold)``: entry ``(sample s0+i, step t, unit j)`` is
    dropped when 53 bits of a hash of (key, layer, s0+i, t, j) fall below
    ``threshold`` (``p * 2**53``). A counter-based mask: the same on any
    chunking or thread count, and the backward pass recomputes it instead of
    storing it. ``threshold == 0``: no dropout.
    """
    key, threshold = drop[0], drop[1]
    if threshold == 0:
        return
    scale = 9007199254740992.0 / (9007199254740992.0 - threshold)  # 2**53 / (2**53 - threshold)
    for i in range(A.shape[1]):
        for t in range(lens[i]):
            row = _mix(_mix(_mix(np.uint64(key) ^ np.uint64(layer)) ^ np.uint64(s0 + i)) ^ np.uint64(t))
            for j in range(A.shape[2]):
                u = np.int64(_mix(row + np.uint64(j) * GOLDEN) >> np.uint64(11))
                A[t, i, j] = A[t, i, j] * scale if u >= threshold else 0.0


@jit(inline="always")
def _features(spec, HXs, top, lengths, s0, s1, many):
    """Head inputs: (n, H*D) final states, or (sum of lengths, H*D) valid steps."""
    H, L, D = spec[HIDDEN], spec[LAYERS], spec[DIRECTIONS]
    n = s1 - s0
    if many:
        M = 0
        for i in range(n):
            M += lengths[s0 + i]
        F = np.empty((M, H * D), dtype=top.dtype)
        m = 0
        for i in range(n):
            for t in range(lengths[s0 + i]):
                _copy(F[m], top[t, i])
                m += 1
        return F
    F = np.empty((n, H * D), dtype=top.dtype)
    for d in range(D):
        HX = HXs[(L - 1) * D + d]
        T = HX.shape[0] - 1
        for i in range(n):
            _copy(F[i, d * H : (d + 1) * H], HX[T, i, :H])  # states freeze: row T is final
    return F


@jit
def _sum_chunks(grad, partial, values, n_chunks):
    """``grad`` = the partial gradients of the first ``n_chunks`` rows summed in
    row order; returns the losses summed the same way (thread-count independent)."""
    total = values[0]
    for k in range(grad.shape[0]):
        grad[k] = partial[0, k]
    for c in range(1, n_chunks):
        total += values[c]
        for k in range(grad.shape[0]):
            grad[k] += partial[c, k]
    return total


# -- one family of kernels per cell -------------------------------------------------------------

# cell family -> (module, _forward, _backward); the GRU's two forms are two families
_CELLS = {
    "elman": (elman, elman._forward, elman._backward),
    "lstm": (lstm, lstm._forward, lstm._backward),
    "gru": (gru, gru._forward, gru._backward),
    "gru_cho": (gru, gru._forward_cho, gru._backward_cho),
}
FAMILIES = tuple(_CELLS)
# the first sample of a batch, for compiled callers: an int64, where a literal 0
# would compile a second signature (Literal[int](0)) of the kernel it is passed to
FIRST = np.int64(0)

Kernels = namedtuple(
    "Kernels", "family chunk_loss_and_grad loss_and_grad chunks_loss_and_grad chunk_predict predict"
)
Kernels.__doc__ = """The compiled kernels of one cell family (see :func:`kernels`).

``loss_and_grad`` runs the chunks one after the other, ``chunks_loss_and_grad``
on numba's threads (``parallel=True``, for Python callers only: a cached
function that calls a parallel one can crash a later process, numba issue
8578); both sum the partial gradients in chunk order, so they agree bitwise.
``chunk_predict`` is one chunk's prediction, ``predict`` every chunk on numba's
threads. ``chunk_loss_and_grad`` is what the solvers' compiled epoch calls."""


@functools.cache
def kernels(family):
    """The compiled kernels of a cell family: ``"elman"``, ``"lstm"``,
    ``"gru"`` (PyTorch's form) or ``"gru_cho"`` (Cho et al.'s), as
    :attr:`rnnumba.layout.Layout.kernel_family` names them.

    Every kernel takes ``theta``, the padded batch, its ``lengths`` and the
    layout's named ``spec`` and ``offsets`` (:mod:`rnnumba.layout`). Made once
    per process; each kernel compiles on its first call (or loads from the
    disk cache) for the dtype it is given.
    """
    if family not in _CELLS:
        raise ValueError(f"unknown cell family {family!r}; expected one of {FAMILIES}")
    module, FORWARD, BACKWARD = _CELLS[family]
    GATES = {"elman": 1, "lstm": 4, "gru": 3}[module.__name__.rsplit(".", 1)[1]]
    LSTM = module is lstm
    CARRIED = 2 if LSTM else 1  # [h; c] for the LSTM: the width of h0 and hn, in units of H
    WIDTH = module.STATE_WIDTH  # what the cell keeps in S for BPTT, in units of H
    EXTRA = 1 if module is gru else (3 if LSTM else 0)  # b_hn (H); peepholes (3H), if any

    @jit(inline="always", name=f"extra_size_{family}")
    def extra_size(spec):
        return EXTRA * spec[HIDDEN] if not LSTM or spec[PEEPHOLE] else 0

    @jit(name=f"chunk_forward_{family}", driver=True)
    def chunk_forward(theta, spec, offsets, X, lengths, drop, h0, s0, s1):
        """Forward through all layers for samples ``s0:s1``.

        Returns the per-(layer, direction) ``HX`` and ``S`` buffers (kept for
        BPTT) and, for a many-to-many head, the top layer's outputs (T, n, H*D)
        in original time order, zero in the padding (else an empty array).
        ``drop``: see :func:`_dropout`, applied to the outputs of every layer but
        the last. ``h0`` (L*D, N, carried width) holds the initial states, or is
        empty for zero states.
        """
        H, L, D, many = spec[HIDDEN], spec[LAYERS], spec[DIRECTIONS], spec[MANY]
        T, n = X.shape[1], s1 - s0
        lens = lengths[s0:s1]
        dtype = theta.dtype
        n_extra = extra_size(spec)
        inp = np.empty((0, 0, 0), dtype=dtype)  # the layer below's outputs; layer 0 reads X
        HXs, Ss = [], []
        for layer in range(L):
            I_l = X.shape[2] if layer == 0 else H * D
            Kp = _padded(H + I_l, n * GATES * H * (H + I_l), theta.itemsize)
            # outputs in time order: for the next layer or a many-to-many head only
            out = np.zeros((T if layer < L - 1 or many else 0, n, H * D), dtype=dtype)
            for d in range(D):
                row = offsets[layer * D + d]
                W = _weights(theta, row[W_AT], GATES * H, H + I_l, Kp)
                b = theta[row[B_AT] : row[B_AT] + GATES * H]
                extra = theta[row[EXTRA_AT] : row[EXTRA_AT] + n_extra]
                HX = np.zeros((T + 1, n, Kp), dtype=dtype)
                S = np.zeros((T + 1, n, WIDTH * H), dtype=dtype)
                for i in range(n):
                    for t in range(lens[i]):
                        src = _src(t, lens[i], d)
                        if layer == 0:
                            _copy(HX[t, i, H : H + I_l], X[s0 + i, src])
                        else:
                            _copy(HX[t, i, H : H + I_l], inp[src, i])
                if h0.shape[0] > 0:  # h_{-1} in row 0 of HX; the LSTM's c_{-1} in row 0 of S
                    for i in range(n):
                        _copy(HX[0, i, :H], h0[layer * D + d, s0 + i, :H])
                        if LSTM:
                            _copy(S[0, i, :H], h0[layer * D + d, s0 + i, H:])
                FORWARD(W, b, extra, HX, S, lens)
                if out.shape[0] > 0:
                    for i in range(n):
                        for t in range(lens[i]):
                            _copy(out[_src(t, lens[i], d), i, d * H : (d + 1) * H], HX[t + 1, i, :H])
                HXs.append(HX)
                Ss.append(S)
            if layer < L - 1:
                _dropout(out, drop, layer, s0, lens)
            inp = out
        return HXs, Ss, inp

    @jit(name=f"chunk_loss_and_grad_{family}", driver=True)
    def chunk_loss_and_grad(theta, g, spec, offsets, X, lengths, Y, loss, scale, drop, h0, dh0, s0, s1):
        """Loss of samples ``s0:s1`` (times ``scale``) and its gradient, written
        into ``g``: forward, the head, then BPTT from the top layer down."""
        # the caller holds these for the whole call: views of them need no counting
        theta, g, spec, offsets = borrow(theta), borrow(g), borrow(spec), borrow(offsets)
        X, lengths, Y = borrow(X), borrow(lengths), borrow(Y)
        drop, h0, dh0 = borrow(drop), borrow(h0), borrow(dh0)
        H, L, D = spec[HIDDEN], spec[LAYERS], spec[DIRECTIONS]
        O, many = spec[OUTPUTS], spec[MANY]
        T, n = X.shape[1], s1 - s0
        lens = lengths[s0:s1]
        # NaN for a NaN/inf among the chunk's inputs or targets, so that a caller
        # may leave that check to the kernel (network.loss_and_grad's dense path)
        if _first_nonfinite(X[s0:s1], lens) >= 0 or _first_nonfinite(Y[s0:s1], lens) >= 0:
            return np.nan
        HXs, Ss, top = chunk_forward(theta, spec, offsets, X, lengths, drop, h0, s0, s1)
        F = _features(spec, HXs, top, lengths, s0, s1, many)

        # the head
        Yc = np.empty((F.shape[0], Y.shape[2]), dtype=theta.dtype)
        m = 0
        for i in range(n):
            steps = lens[i] if many else 1
            for t in range(steps):
                _copy(Yc[m], Y[s0 + i, t])
                m += 1
        head = offsets[L * D]
        dF = np.empty_like(F)
        value = _head(
            _tensor(theta, head[W_AT], O, H * D),
            theta[head[B_AT] : head[B_AT] + O],
            F,
            Yc,
            loss,
            scale,
            dF,
            _tensor(g, head[W_AT], O, H * D),
            g[head[B_AT] : head[B_AT] + O],
        )

        # dL/d(top layer outputs), original time order (many-to-one: only dF, below).
        # Every buffer, even an unused (empty) one, is its own allocation: LLVM
        # vectorises worse when several empty buffers share one array.
        dOut = np.zeros((T if many else 0, n, H * D), dtype=theta.dtype)
        if many:
            m = 0
            for i in range(n):
                for t in range(lens[i]):
                    _copy(dOut[t, i], dF[m])
                    m += 1

        # BPTT, top layer first
        n_extra = extra_size(spec)
        for layer in range(L - 1, -1, -1):
            I_l = X.shape[2] if layer == 0 else H * D
            K = H + I_l
            dInp = np.zeros((T if layer > 0 else 0, n, I_l), dtype=theta.dtype)
            for d in range(D):
                row = offsets[layer * D + d]
                HX, S = HXs[layer * D + d], Ss[layer * D + d]
                Kp = HX.shape[2]  # K, or padded (see _padded)
                dHs = np.zeros((T, n, H), dtype=theta.dtype)
                for i in range(n):
                    if dOut.shape[0] > 0:
                        for t in range(lens[i]):
                            _copy(dHs[t, i], dOut[_src(t, lens[i], d), i, d * H : (d + 1) * H])
                    if layer == L - 1 and not many:  # the final state feeds the head
                        _add(dHs[lens[i] - 1, i], dF[i, d * H : (d + 1) * H])
                dX = np.zeros((T if layer > 0 else 0, n, Kp - H), dtype=theta.dtype)
                dS0 = np.empty((n if dh0.shape[0] > 0 else 0, CARRIED * H), dtype=theta.dtype)
                dW = _tensor(g, row[W_AT], GATES * H, K)
                dWp = dW if Kp == K else empty_aligned(GATES * H, Kp, theta.dtype)
                BACKWARD(
                    _weights(theta, row[W_AT], GATES * H, K, Kp),
                    theta[row[B_AT] : row[B_AT] + GATES * H],
                    theta[row[EXTRA_AT] : row[EXTRA_AT] + n_extra],
                    HX,
                    S,
                    lens,
                    dHs,
                    dWp,
                    g[row[B_AT] : row[B_AT] + GATES * H],
                    g[row[EXTRA_AT] : row[EXTRA_AT] + n_extra],
                    dX,
                    dS0,
                )
                if Kp != K:  # the padding's columns of dW are dropped
                    for j in range(GATES * H):
                        _copy(dW[j], dWp[j, :K])
                for i in range(dS0.shape[0]):  # this chunk's rows of dL/dh0: no sum needed
                    _copy(dh0[layer * D + d, s0 + i], dS0[i])
                if layer > 0:
                    for i in range(n):
                        for t in range(lens[i]):
                            _add(dInp[_src(t, lens[i], d), i], dX[t, i, :I_l])
            if layer > 0:  # through the dropout on the layer below's outputs
                _dropout(dInp, drop, layer - 1, s0, lens)
            dOut = dInp
        return value

    @jit(name=f"loss_and_grad_{family}", driver=True)
    def loss_and_grad(theta, grad, spec, offsets, X, lengths, Y, loss, scale, drop, h0, dh0, n_chunks):
        """Loss and gradient of a padded batch on one thread; fills ``grad``.

        The same chunks, arithmetic and order of summation as
        ``chunks_loss_and_grad``, so the results are bitwise equal."""
        N = X.shape[0]
        value = 0.0
        part = np.empty_like(grad) if n_chunks > 1 else grad  # every entry gets written
        for c in range(n_chunks):  # fixed order: thread-count independent
            s0, s1 = c * N // n_chunks, (c + 1) * N // n_chunks
            out = grad if c == 0 else part
            value += chunk_loss_and_grad(
                theta, out, spec, offsets, X, lengths, Y, loss, scale, drop, h0, dh0, s0, s1
            )
            if c > 0:
                for k in range(grad.shape[0]):
                    grad[k] += part[k]
        return value

    @jit(parallel=True, name=f"chunks_loss_and_grad_{family}", driver=True)
    def chunks_loss_and_grad(theta, grad, spec, offsets, X, lengths, Y, loss, scale, drop, h0, dh0, n_chunks):
        """Every chunk on numba's threads, each into its own partial gradient,
        then the partials summed in chunk order into ``grad``."""
        N, P = X.shape[0], theta.shape[0]
        partial = np.empty((n_chunks, P), dtype=theta.dtype)  # every entry gets written
        values = np.empty(n_chunks, dtype=np.float64)
        for c in prange(n_chunks):
            s0, s1 = c * N // n_chunks, (c + 1) * N // n_chunks
            values[c] = chunk_loss_and_grad(
                theta, partial[c], spec, offsets, X, lengths, Y, loss, scale, drop, h0, dh0, s0, s1
            )
        return _sum_chunks(grad, partial, values, n_chunks)

    @jit(name=f"chunk_predict_{family}", driver=True)
    def chunk_predict(theta, spec, offsets, X, lengths, h0, s0, s1, out, hn):
        """Head outputs of samples ``s0:s1`` into ``out`` (and their final
        states into ``hn``, if it is not empty)."""
        theta, spec, offsets = borrow(theta), borrow(spec), borrow(offsets)
        X, lengths, h0, out, hn = borrow(X), borrow(lengths), borrow(h0), borrow(out), borrow(hn)
        H, L, D, O, many = spec[HIDDEN], spec[LAYERS], spec[DIRECTIONS], spec[OUTPUTS], spec[MANY]
        head = offsets[L * D]
        no_dropout = np.zeros(2, dtype=np.int64)  # predictions never drop
        HXs, Ss, top = chunk_forward(theta, spec, offsets, X, lengths, no_dropout, h0, s0, s1)
        T = X.shape[1]
        for k in range(hn.shape[0]):  # final states: row T (states freeze past a length)
            for i in range(s1 - s0):
                _copy(hn[k, s0 + i, :H], HXs[k][T, i, :H])
                if LSTM:
                    _copy(hn[k, s0 + i, H:], Ss[k][T, i, :H])
        F = _features(spec, HXs, top, lengths, s0, s1, many)
        Yhat = np.empty((F.shape[0], O), dtype=theta.dtype)
        _readout(_tensor(theta, head[W_AT], O, H * D), theta[head[B_AT] : head[B_AT] + O], F, Yhat)
        m = 0
        for i in range(s1 - s0):
            if many:
                for t in range(lengths[s0 + i]):
                    _copy(out[s0 + i, t], Yhat[m])
                    m += 1
            else:
                _copy(out[s0 + i, 0], Yhat[i])

    @jit(parallel=True, name=f"predict_{family}", driver=True)
    def predict(theta, spec, offsets, X, lengths, h0, n_chunks, out, hn):
        """Raw head outputs into ``out``: (N, O), or (N, T, O) with NaN in padding;
        if ``hn`` (L*D, N, carried width) is not empty, the final states into it."""
        N = X.shape[0]
        for c in prange(n_chunks):
            s0, s1 = c * N // n_chunks, (c + 1) * N // n_chunks
            chunk_predict(theta, spec, offsets, X, lengths, h0, s0, s1, out, hn)

    return Kernels(family, chunk_loss_and_grad, loss_and_grad, chunks_loss_and_grad, chunk_predict, predict)


def training_kernel(family, n_chunks):
    """The compiled function behind :func:`loss_and_grad` for a cell family and
    ``n_chunks`` (same arguments): no parallel region for one chunk. For callers
    that keep it per batch shape, to skip this wrapper (~0.3 us of a seed step)."""
    k = kernels(family)
    return k.loss_and_grad if n_chunks == 1 else k.chunks_loss_and_grad


def loss_and_grad(family, theta, grad, spec, offsets, X, lengths, Y, loss, scale, drop, h0, dh0, n_chunks):
    """Loss and gradient of a padded batch; fills ``grad``, returns the loss.

    ``family`` names the cell's kernels (:func:`kernels`), ``spec`` and
    ``offsets`` come from :class:`~rnnumba.layout.Layout`, ``Y`` is (N, 1 or
    T, O), ``scale`` is 1 / the number of loss terms and ``drop`` (int64 (2,))
    the dropout key and threshold (:func:`_dropout`; zeros for none). ``h0``
    (L*D, N, carried width) holds initial states, ``dh0`` of the same shape
    receives dL/dh0; either may be empty (zero states; no state gradient).
    With several chunks they run on numba's threads and their partial
    gradients are summed in chunk order.
    """
    run = training_kernel(family, n_chunks)
    return run(theta, grad, spec, offsets, X, lengths, Y, loss, scale, drop, h0, dh0, n_chunks)
