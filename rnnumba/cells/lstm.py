"""The LSTM cell, optionally with Graves' peephole connections.

Gates i, f, g, o in PyTorch's order::

    a   = W [h_{t-1}; x_t] + b                    (4H rows: a_i, a_f, a_g, a_o)
    i   = sigmoid(a_i + p_i * c_{t-1})
    f   = sigmoid(a_f + p_f * c_{t-1})
    g   = tanh(a_g)
    c_t = f * c_{t-1} + i * g
    o   = sigmoid(a_o + p_o * c_t)
    h_t = o * tanh(c_t)

``extra`` is the flat peephole tensor ``p`` (3, H) (rows p_i, p_f, p_o), or
empty for the plain LSTM (then every ``p`` term above is absent).

CPU kernels over one time-major chunk; see :mod:`rnnumba.cells` for the shared
call shape and BPTT recursion and :mod:`rnnumba.cells.elman` for the model they
follow. GPU siblings: ``rnnumba.gpu.cells`` (``lstm_forward``,
``lstm_backward``) inside ``rnnumba.gpu.persistent`` and ``rnnumba.gpu.stepwise``.
"""

import numpy as np

from .._borrow import borrow
from .._jit import jit
from .._linalg import (
    back_weights,
    empty_aligned,
    empty_aligned3,
    mm_back,
    mm_step,
    mm_tn_blocked,
    step_weights,
)
from .._math import sigmoid, tanh
from ._bptt import copy_rows, split_dhx, take_rows

# floats per hidden unit kept in S for BPTT: S[t+1, n, k*H:(k+1)*H] holds
# k = 0: c_t, 1: i, 2: f, 3: g, 4: o, 5: tanh(c_t) of step t;
# S[0, n, :H] = c_{-1}, the initial cell state (written by the engine)
STATE_WIDTH = 6
C, I, F, G, O, TC = 0, 1, 2, 3, 4, 5


@jit
def forward(W, b, extra, HX, S, lengths):
    """Run the forward pass over a chunk.

    For every step ``t``::

        a_t = W [h_{t-1}; x_t]        one product per step, all four gates (4H rows)

    then, per valid sample, :func:`_step` (the module's equations, ``+ b``),
    writing ``h_t`` into ``HX[t+1, :, :H]`` and ``c_t, i, f, g, o, tanh(c_t)``
    into the state row of step t (below). A sample past its length keeps both
    ``h`` and ``c``. ``HX[0, :, :H]`` holds ``h_{-1}`` and ``S[0, :, :H]``
    ``c_{-1}`` (the caller's).

    ``S`` holds every step's state (``T + 1`` rows, for BPTT: step t reads
    row t and writes row t+1), or, for prediction, a ring of two rows (step
    t reads row ``t % 2`` and writes the other).
    """
    W, HX, S = borrow(W), borrow(HX), borrow(S)  # the caller's: no counting of their views
    T, n = HX.shape[0] - 1, HX.shape[1]
    H = b.shape[0] // 4
    R = S.shape[0]  # T + 1, or a ring of 2
    peep = extra.shape[0] > 0
    Z = empty_aligned(n, 4 * H, HX.dtype)
    WT = step_weights(W, n)
    for t in range(T):
        mm_step(HX[t], W, WT, Z)  # Z = [h_{t-1}; x_t] W^T, all four gates at once
        r0, r1 = t % R, (t + 1) % R
        for i in range(n):
            if t < lengths[i]:
                _step(Z[i], b, extra, S[r0, i], S[r1, i], HX[t + 1, i], H, peep)
            else:  # past the end: keep both h and c
                for j in range(H):
                    HX[t + 1, i, j] = HX[t, i, j]
                    S[r1, i, j] = S[r0, i, j]


@jit(inline="always")
def _step(z, b, p, s0, s1, h, H, peep):
    """Run one sample's step from its products ``z = W [h_{t-1}; x_t]`` (4H).

    The equations::

        i = sigmoid(z_i + b_i + p_i * c_{t-1})      f = sigmoid(z_f + b_f + p_f * c_{t-1})
        g = tanh(z_g + b_g)                         c_t = f * c_{t-1} + i * g
        o = sigmoid(z_o + b_o + p_o * c_t)          h_t = o * tanh(c_t)

    (``p`` terms only if ``peep``; they are added into ``z`` in place). Fills
    the state row ``s1`` (c, i, f, g, o, tanh c) and ``h``; ``s0[:H]`` is c_{t-1}.

    One short loop per quantity, each writing one array: a loop that wrote all
    six rows at once needed more run-time aliasing checks than LLVM makes, and
    stayed scalar.
    """
    if peep:  # i, f see c_{t-1}
        for j in range(H):
            z[j] += p[j] * s0[j]
            z[H + j] += p[H + j] * s0[j]
    for j in range(2 * H):  # i, f: adjacent in z and in s1
        s1[I * H + j] = sigmoid(z[j] + b[j])
    for j in range(H):
        s1[G * H + j] = tanh(z[2 * H + j] + b[2 * H + j])
    for j in range(H):
        s1[C * H + j] = s1[F * H + j] * s0[j] + s1[I * H + j] * s1[G * H + j]
    if peep:  # o sees c_t
        for j in range(H):
            z[3 * H + j] += p[2 * H + j] * s1[j]
    for j in range(H):
        s1[O * H + j] = sigmoid(z[3 * H + j] + b[3 * H + j])
    for j in range(H):
        s1[TC * H + j] = tanh(s1[C * H + j])
    for j in range(H):
        h[j] = s1[O * H + j] * s1[TC * H + j]


@jit(inline="always")
def _step_back(dh, dc, s0, s1, p, dz, H, peep):
    """Run one sample's step of BPTT, from ``dh`` = dL/dh_t and ``dc`` = dL/dc_t.

    The equations::

        da_o     = dh * tanh(c_t) * o (1 - o)
        dc      += dh * o * (1 - tanh(c_t)^2)  + da_o * p_o
        da_i     = dc * g * i (1 - i)
        da_f     = dc * c_{t-1} * f (1 - f)
        da_g     = dc * i * (1 - g^2)
        dc_{t-1} = dc * f  + da_i * p_i + da_f * p_f

    (``p`` terms only if ``peep``). ``dc`` comes from step t+1 and is
    overwritten with dL/dc_{t-1}; the gate gradients go to ``dz`` (4H: i, f,
    g, o). One short loop per quantity, as in :func:`_step`. GPU sibling:
    ``lstm_backward`` in ``rnnumba.gpu.cells``.
    """
    one = s1.dtype.type(1)  # a float64 1.0 would make float32 loops convert
    for j in range(H):  # h = o * tanh(c)
        dz[3 * H + j] = dh[j] * s1[TC * H + j] * s1[O * H + j] * (one - s1[O * H + j])
    for j in range(H):
        dc[j] += dh[j] * s1[O * H + j] * (one - s1[TC * H + j] * s1[TC * H + j])
    if peep:  # o = sigmoid(a_o + p_o * c)
        for j in range(H):
            dc[j] += dz[3 * H + j] * p[2 * H + j]
    for j in range(H):  # c = f * c_prev + i * g
        dz[j] = dc[j] * s1[G * H + j] * s1[I * H + j] * (one - s1[I * H + j])
    for j in range(H):
        dz[H + j] = dc[j] * s0[j] * s1[F * H + j] * (one - s1[F * H + j])
    for j in range(H):
        dz[2 * H + j] = dc[j] * s1[I * H + j] * (one - s1[G * H + j] * s1[G * H + j])
    for j in range(H):
        dc[j] *= s1[F * H + j]
    if peep:  # i, f read c_prev
        for j in range(H):
            dc[j] += dz[j] * p[j] + dz[H + j] * p[H + j]


@jit
def backward(W, b, extra, HX, S, lengths, dHs, dhT, dW, db, dextra, dX, dh0):
    """Run BPTT over a chunk, from ``t = T-1`` down.

    With ``r_t`` what step t+1 passes back (``r_{T-1}``, ``dc_{T-1}``: ``dhT``'s
    two halves, or 0)::

        dh_t             = dHs[t] + r_t
        da_t, dc_{t-1}   = _step_back(dh_t, dc_t)           (dc_t carried)
        [r_{t-1}; dx_t]  = da_t W
        dW = sum_t da_t^T [h_{t-1}; x_t]     db = sum_t da_t
        dp_i = sum_t da_i * c_{t-1}   dp_f = sum_t da_f * c_{t-1}   dp_o = sum_t da_o * c_t

    (sums over samples too). Past a sample's length ``da_t = 0`` and both
    ``dh`` and ``dc`` pass through. ``dHs`` (T, n, H) is dL/dh_t from above;
    ``dW``, ``db`` and the peephole gradient ``dextra`` are written (not
    accumulated); ``dX`` (T, n, I) and ``dh0`` (n, 2H), if not empty, receive
    dL/dx_t and [dL/dh_{-1}; dL/dc_{-1}].
    """
    W, HX, S, dHs, dW, dX = borrow(W), borrow(HX), borrow(S), borrow(dHs), borrow(dW), borrow(dX)  # as above
    T, n = HX.shape[0] - 1, HX.shape[1]
    H = b.shape[0] // 4
    K = HX.shape[2]
    peep = extra.shape[0] > 0
    dZ = empty_aligned3(T, n, 4 * H, HX.dtype)  # dL/da, gates i, f, g, o
    dh_next = np.zeros((n, H), dtype=HX.dtype)
    dc_next = np.zeros((n, H), dtype=HX.dtype)
    take_rows(dh_next, dhT)
    take_rows(dc_next, dhT[:, H:])
    dHX = empty_aligned(n, K, HX.dtype)
    WT = back_weights(W, n)
    for t in range(T - 1, -1, -1):
        for i in range(n):
            if t < lengths[i]:
                dh = dh_next[i]
                for j in range(H):
                    dh[j] += dHs[t, i, j]
                _step_back(dh, dc_next[i], S[t, i], S[t + 1, i], extra, dZ[t, i], H, peep)
            else:  # a frozen step passes dh and dc through
                for j in range(H):
                    dh_next[i, j] += dHs[t, i, j]
                for j in range(4 * H):
                    dZ[t, i, j] = 0.0
        if t > 0 or dX.shape[0] > 0 or dh0.shape[0] > 0:  # nothing reads step 0's otherwise
            mm_back(dZ[t], W, WT, dHX)  # [dh_{t-1}; dx_t] = da_t W
            split_dhx(dHX, dh_next, dX, t, lengths)
    copy_rows(dh0, dh_next)
    copy_rows(dh0[:, H:], dc_next)
    # tied weights: one product over all steps, dW = sum_t da_t^T [h_{t-1}; x_t]
    mm_tn_blocked(dZ.reshape(T * n, 4 * H), HX[:T].reshape(T * n, K), dW)
    for j in range(4 * H):
        db[j] = 0.0
    for j in range(dextra.shape[0]):
        dextra[j] = 0.0
    for t in range(T):
        for i in range(n):
            for j in range(4 * H):
                db[j] += dZ[t, i, j]
            if peep:  # dZ is 0 on frozen steps, so they add nothing
                for j in range(H):
                    dextra[j] += dZ[t, i, j] * S[t, i, j]
                    dextra[H + j] += dZ[t, i, H + j] * S[t, i, j]
                    dextra[2 * H + j] += dZ[t, i, 3 * H + j] * S[t + 1, i, j]
