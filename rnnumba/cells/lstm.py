"""The LSTM cell (gates i, f, g, o in PyTorch's order), optionally with
Graves' peephole connections::

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
call shape and :mod:`rnnumba.cells.elman` for the model they follow.
"""

import numpy as np

from .._jit import jit
from .._linalg import mm_nn, mm_nt, mm_tn
from .._math import sigmoid, tanh

# floats per hidden unit kept in S for BPTT: S[t+1, n, k*H:(k+1)*H] holds
# k = 0: c_t, 1: i, 2: f, 3: g, 4: o, 5: tanh(c_t) of step t; S[0, n, :H] = c_{-1} = 0
STATE_WIDTH = 6
C, I, F, G, O, TC = 0, 1, 2, 3, 4, 5


@jit
def _forward(W, b, extra, HX, S, lengths):
    T, n = HX.shape[0] - 1, HX.shape[1]
    H = b.shape[0] // 4
    peep = extra.shape[0] > 0
    Z = np.empty((n, 4 * H), dtype=HX.dtype)
    for i in range(n):
        for j in range(H):
            S[0, i, j] = 0.0  # c_{-1}
    for t in range(T):
        mm_nt(HX[t], W, Z)  # Z = [h_{t-1}; x_t] W^T, all four gates at once
        for i in range(n):
            if t < lengths[i]:
                for j in range(H):
                    c_prev = S[t, i, j]
                    a_i = Z[i, j] + b[j]
                    a_f = Z[i, H + j] + b[H + j]
                    a_g = Z[i, 2 * H + j] + b[2 * H + j]
                    a_o = Z[i, 3 * H + j] + b[3 * H + j]
                    if peep:
                        a_i += extra[j] * c_prev
                        a_f += extra[H + j] * c_prev
                    ig = sigmoid(a_i)
                    fg = sigmoid(a_f)
                    gg = tanh(a_g)
                    c = fg * c_prev + ig * gg
                    if peep:
                        a_o += extra[2 * H + j] * c
                    og = sigmoid(a_o)
                    tc = tanh(c)
                    HX[t + 1, i, j] = og * tc
                    S[t + 1, i, C * H + j] = c
                    S[t + 1, i, I * H + j] = ig
                    S[t + 1, i, F * H + j] = fg
                    S[t + 1, i, G * H + j] = gg
                    S[t + 1, i, O * H + j] = og
                    S[t + 1, i, TC * H + j] = tc
            else:  # past the end: keep both h and c
                for j in range(H):
                    HX[t + 1, i, j] = HX[t, i, j]
                    S[t + 1, i, j] = S[t, i, j]


@jit
def _backward(W, b, extra, HX, S, lengths, dHs, dW, db, dextra, dX):
    """BPTT. ``dHs`` (T, n, H) is dL/dh_t from above; ``dW``, ``db`` and the
    peephole gradient ``dextra`` are written (not accumulated); ``dX`` (T, n, I),
    if not empty, receives dL/dx_t."""
    T, n = HX.shape[0] - 1, HX.shape[1]
    H = b.shape[0] // 4
    K = HX.shape[2]
    peep = extra.shape[0] > 0
    dZ = np.empty((T, n, 4 * H), dtype=HX.dtype)  # dL/da, gates i, f, g, o
    dh_next = np.zeros((n, H), dtype=HX.dtype)
    dc_next = np.zeros((n, H), dtype=HX.dtype)
    dHX = np.empty((n, K), dtype=HX.dtype)
    want_dx = dX.shape[0] > 0
    for t in range(T - 1, -1, -1):
        for i in range(n):
            if t < lengths[i]:
                for j in range(H):
                    dh = dh_next[i, j] + dHs[t, i, j]
                    c_prev = S[t, i, j]
                    ig = S[t + 1, i, I * H + j]
                    fg = S[t + 1, i, F * H + j]
                    gg = S[t + 1, i, G * H + j]
                    og = S[t + 1, i, O * H + j]
                    tc = S[t + 1, i, TC * H + j]
                    # h = o * tanh(c)
                    da_o = dh * tc * og * (1.0 - og)
                    dc = dc_next[i, j] + dh * og * (1.0 - tc * tc)
                    if peep:  # o = sigmoid(a_o + p_o * c)
                        dc += da_o * extra[2 * H + j]
                    # c = f * c_prev + i * g
                    da_i = dc * gg * ig * (1.0 - ig)
                    da_f = dc * c_prev * fg * (1.0 - fg)
                    da_g = dc * ig * (1.0 - gg * gg)
                    dc_prev = dc * fg
                    if peep:  # i, f read c_prev
                        dc_prev += da_i * extra[j] + da_f * extra[H + j]
                    dc_next[i, j] = dc_prev
                    dZ[t, i, j] = da_i
                    dZ[t, i, H + j] = da_f
                    dZ[t, i, 2 * H + j] = da_g
                    dZ[t, i, 3 * H + j] = da_o
            else:  # a frozen step passes dh and dc through
                for j in range(H):
                    dh_next[i, j] += dHs[t, i, j]
                for j in range(4 * H):
                    dZ[t, i, j] = 0.0
        mm_nn(dZ[t], W, dHX)  # [dh_{t-1}; dx_t] = da_t W
        for i in range(n):
            if t < lengths[i]:
                for j in range(H):
                    dh_next[i, j] = dHX[i, j]
                if want_dx:
                    for j in range(K - H):
                        dX[t, i, j] = dHX[i, H + j]
            elif want_dx:
                for j in range(K - H):
                    dX[t, i, j] = 0.0
    # tied weights: one product over all steps, dW = sum_t da_t^T [h_{t-1}; x_t]
    mm_tn(dZ.reshape(T * n, 4 * H), HX[:T].reshape(T * n, K), dW)
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
