"""The GRU cell, in PyTorch's form or Cho et al.'s.

Rows r, z, n in PyTorch's order::

    r   = sigmoid(W_r [h_{t-1}; x_t] + b_r)
    z   = sigmoid(W_z [h_{t-1}; x_t] + b_z)
    n   = tanh(W_nx x_t + b_n + r * (W_nh h_{t-1} + b_hn))     reset_after=True (PyTorch)
    n   = tanh(W_nx x_t + b_n + W_nh (r * h_{t-1}))            reset_after=False (Cho et al.)
    h_t = (1 - z) * n + z * h_{t-1}

with ``W_nh = W[2H:3H, :H]``, ``W_nx = W[2H:3H, H:]`` and ``extra`` = ``b_hn``
(H,) (unused by Cho's form, whose ``b_hn`` gradient is exactly 0).

The r and z rows take one product over the contiguous rows ``W[:2H]`` per step.
The n rows are strided sub-blocks of ``W``: they are copied once per call into
contiguous ``W_nh``, ``W_nx``, so BLAS always sees contiguous operands; the
input half ``W_nx x_t`` of all steps is one product before the recurrence, and
its gradients one product after it.

CPU kernels over one time-major chunk; see :mod:`rnnumba.cells` for the shared
call shape and BPTT recursion and :mod:`rnnumba.cells.elman` for the model they
follow. GPU siblings: ``rnnumba.gpu.cells`` (``gru_forward``, ``gru_backward``;
Cho's form ``cho_backward1``/``cho_backward2``) inside ``rnnumba.gpu.persistent``
and ``rnnumba.gpu.stepwise``.
"""

import numpy as np

from .._borrow import borrow
from .._jit import jit
from .._linalg import (
    back_weights,
    empty_aligned,
    empty_aligned3,
    mm_back,
    mm_nn,
    mm_nt,
    mm_step,
    mm_tn_blocked,
    step_weights,
)
from .._math import sigmoid, tanh
from ._bptt import copy_rows, take_rows

# floats per hidden unit kept in S for BPTT: S[t+1, n, k*H:(k+1)*H] holds
# k = 0: r, 1: z, 2: n of step t and 3: W_nh h_{t-1} + b_hn (reset_after) or
# r * h_{t-1} (Cho); row 0 is unused
STATE_WIDTH = 4
R, Z, N, HN = 0, 1, 2, 3


@jit
def _split(W, H):
    """Contiguous copies of the n rows' blocks: (W_nh (H, H), W_nx (H, I))."""
    K = W.shape[1]
    W_nh = empty_aligned(H, H, W.dtype)
    W_nx = empty_aligned(H, K - H, W.dtype)
    for j in range(H):
        for k in range(H):
            W_nh[j, k] = W[2 * H + j, k]
        for k in range(K - H):
            W_nx[j, k] = W[2 * H + j, H + k]
    return W_nh, W_nx


@jit
def _inputs(HX, H):
    """Contiguous copy of the inputs x_t of all steps, (T, n, I)."""
    T, n, K = HX.shape[0] - 1, HX.shape[1], HX.shape[2]
    X = empty_aligned3(T, n, K - H, HX.dtype)
    for t in range(T):
        for i in range(n):
            for k in range(K - H):
                X[t, i, k] = HX[t, i, H + k]
    return X


@jit(inline="always")
def _step(a_rz, a_nh, ax, b, b_hn, hin, h0, s1, h1, H, reset_after):
    """Run one sample's step from the products of its step.

    The products are ``a_rz = W_rz [h_{t-1}; x_t]`` (2H), ``a_nh = W_nh hin``
    and ``ax = W_nx x_t`` (H each)::

        r, z = sigmoid(a_rz + b_rz)
        n    = tanh(ax + b_n + r * (a_nh + b_hn))     reset_after (hin = h_{t-1})
        n    = tanh(ax + b_n + a_nh)                  Cho         (hin = r * h_{t-1})
        h_t  = (1 - z) * n + z * h_{t-1}

    Fills the state row ``s1`` (r, z, n, and ``a_nh + b_hn`` or ``hin``) and
    ``h1``; ``h0`` is h_{t-1}. One short loop per quantity (see
    ``lstm._step``: wider loops stayed scalar). ``n`` goes to ``h1`` first and
    is copied to ``s1``: a loop that read ``s1`` and wrote ``s1[N]`` stayed
    scalar (LLVM could not bound the overlap): these loops ran ~2.4x slower.
    """
    one = s1.dtype.type(1)  # a float64 1.0 would make float32 loops convert
    for j in range(2 * H):  # r, z: adjacent in a_rz and in s1
        s1[R * H + j] = sigmoid(a_rz[j] + b[j])
    if reset_after:  # n = tanh(W_nx x + b_n + r * (W_nh h + b_hn))
        for j in range(H):
            s1[HN * H + j] = a_nh[j] + b_hn[j]
        for j in range(H):
            h1[j] = tanh(ax[j] + b[2 * H + j] + s1[R * H + j] * s1[HN * H + j])
    else:  # n = tanh(W_nx x + b_n + W_nh (r * h))
        for j in range(H):
            s1[HN * H + j] = hin[j]
        for j in range(H):
            h1[j] = tanh(ax[j] + b[2 * H + j] + a_nh[j])
    for j in range(H):
        s1[N * H + j] = h1[j]
    for j in range(H):
        h1[j] = (one - s1[Z * H + j]) * h1[j] + s1[Z * H + j] * h0[j]


@jit(inline="always")
def _step_back(dh, h0, s1, da_rz, da_n, da_nh, hin, H, reset_after):
    """Run one sample's step of BPTT, from ``dh`` = dL/dh_t to the pre-activation gradients.

    The equations::

        da_n  = dh * (1 - z) * (1 - n^2)
        da_z  = dh * (h_{t-1} - n) * z (1 - z)
        dh   <- dh * z                                 (the pointwise part of dL/dh_{t-1})
        reset_after:  da_r = da_n * (W_nh h_{t-1} + b_hn) * r (1 - r)
                      da_nh = da_n * r,   hin = h_{t-1}
        Cho:          da_nh = da_n,       hin = r * h_{t-1}
                      (da_r needs da_n W_nh first: the caller forms it)

    ``da_nh`` is dL/d(W_nh hin) and ``hin`` what ``W_nh`` multiplied. One
    short loop per quantity, as in :func:`_step`. GPU siblings:
    ``gru_backward``, ``cho_backward1`` in ``rnnumba.gpu.cells``.
    """
    one = s1.dtype.type(1)
    for j in range(H):  # h' = (1 - z) * n + z * h
        da_n[j] = dh[j] * (one - s1[Z * H + j]) * (one - s1[N * H + j] * s1[N * H + j])
    for j in range(H):
        da_rz[H + j] = dh[j] * (h0[j] - s1[N * H + j]) * s1[Z * H + j] * (one - s1[Z * H + j])
    for j in range(H):
        dh[j] *= s1[Z * H + j]
    if reset_after:  # a_n = ... + r * (W_nh h + b_hn)
        for j in range(H):
            da_rz[j] = da_n[j] * s1[HN * H + j] * s1[R * H + j] * (one - s1[R * H + j])
        for j in range(H):
            da_nh[j] = da_n[j] * s1[R * H + j]
        for j in range(H):
            hin[j] = h0[j]
    else:  # a_n = ... + W_nh (r * h): dr needs W_nh^T da_n first
        for j in range(H):
            da_nh[j] = da_n[j]
        for j in range(H):
            hin[j] = s1[HN * H + j]


def _family(reset_after, suffix):
    """Build the GRU's compiled ``forward`` and ``backward`` for one form.

    PyTorch's (``reset_after``) or Cho et al.'s; each form compiles only its
    own branch.
    """

    @jit(name="forward" + suffix)
    def forward(W, b, extra, HX, S, lengths):
        """Run the forward pass over a chunk.

        With ``W_rz = W[:2H]`` and ``W_nh``, ``W_nx`` as in the module::

            ax_t = W_nx x_t                   every step in one product, before the loop
            a_rz = W_rz [h_{t-1}; x_t]        per step
            hin  = h_{t-1}  or  r * h_{t-1}   (reset_after / Cho; r from a_rz + b_r)
            a_nh = W_nh hin                   per step

        then :func:`_step` per valid sample (``h_t`` into ``HX[t+1, :, :H]``,
        r, z, n, hn into ``S[t+1]``, or into row ``(t+1) % 2`` of a ring of two
        rows in prediction, as in ``lstm.forward``); a sample past its length
        keeps ``h``.
        """
        W, HX, S = borrow(W), borrow(HX), borrow(S)  # the caller's: no counting of their views
        T, n = HX.shape[0] - 1, HX.shape[1]
        H = b.shape[0] // 3
        K = HX.shape[2]
        W_rz = W[: 2 * H]  # contiguous rows
        W_nh, W_nx = _split(W, H)
        X = _inputs(HX, H)
        AX = empty_aligned3(T, n, H, HX.dtype)  # W_nx x_t for every step
        mm_nt(X.reshape(T * n, K - H), W_nx, AX.reshape(T * n, H))
        A_rz = empty_aligned(n, 2 * H, HX.dtype)
        A_nh = empty_aligned(n, H, HX.dtype)
        hin = empty_aligned(n, H, HX.dtype)  # what W_nh multiplies: h or r*h
        W_rzT, W_nhT = step_weights(W_rz, n), step_weights(W_nh, n)
        for t in range(T):
            mm_step(HX[t], W_rz, W_rzT, A_rz)  # r, z pre-activations
            for i in range(n):
                if reset_after:
                    for j in range(H):
                        hin[i, j] = HX[t, i, j]
                else:
                    for j in range(H):
                        hin[i, j] = sigmoid(A_rz[i, j] + b[j]) * HX[t, i, j]
            mm_step(hin, W_nh, W_nhT, A_nh)
            S1 = S[(t + 1) % S.shape[0]]  # T + 1 rows, or a ring of 2
            for i in range(n):
                if t < lengths[i]:
                    _step(
                        A_rz[i],
                        A_nh[i],
                        AX[t, i],
                        b,
                        extra,
                        hin[i],
                        HX[t, i],
                        S1[i],
                        HX[t + 1, i],
                        H,
                        reset_after,
                    )
                else:  # past the end: keep the final state
                    for j in range(H):
                        HX[t + 1, i, j] = HX[t, i, j]

    @jit(name="backward" + suffix)
    def backward(W, b, extra, HX, S, lengths, dHs, dhT, dW, db, dextra, dX, dh0):
        """Run BPTT over a chunk, from ``t = T-1`` down.

        With ``r_t`` what step t+1 passes back (``r_{T-1}``: ``dhT``, or 0)::

            dh_t              = dHs[t] + r_t
            da_rz, da_n, da_nh, dh_t * z = _step_back(dh_t)
            dhin              = da_nh W_nh
              Cho:  da_r = dhin * h_{t-1} * r (1 - r),   dhin <- dhin * r
            [dh'; dx_t]       = da_rz W_rz
            r_{t-1}           = dh_t * z + dh' + dhin
          after the loop (sums over steps and samples):
            dW_rz = sum_t da_rz^T [h_{t-1}; x_t]   dW_nh = sum_t da_nh^T hin_t
            dW_nx = sum_t da_n^T x_t               dx_t += da_n W_nx
            db_rz = sum da_rz    db_n = sum da_n   db_hn = sum da_nh (reset_after; Cho: 0)

        Past a sample's length every ``da`` is 0 and ``dh`` passes through.
        ``dHs`` (T, n, H) is dL/dh_t from above; ``dhT`` (n, H), if not empty,
        the adjoint carried in from a later segment; ``dW``, ``db`` and ``dextra``
        (the gradient of ``b_hn``) are written (not accumulated); ``dX`` (T, n, I)
        and ``dh0`` (n, H), if not empty, receive dL/dx_t and dL/dh_{-1}.
        """
        W, HX, S, dHs, dW, dX = (
            borrow(W),
            borrow(HX),
            borrow(S),
            borrow(dHs),
            borrow(dW),
            borrow(dX),
        )  # as above
        T, n = HX.shape[0] - 1, HX.shape[1]
        H = b.shape[0] // 3
        K = HX.shape[2]
        W_rz = W[: 2 * H]
        W_nh, W_nx = _split(W, H)
        dA_rz = empty_aligned3(T, n, 2 * H, HX.dtype)  # dL/d(r, z pre-activations)
        dA_n = np.empty((T, n, H), dtype=HX.dtype)  # dL/d(n pre-activation)
        dA_nh = empty_aligned3(T, n, H, HX.dtype)  # dL/d(W_nh hin): r*dA_n or dA_n
        hin = empty_aligned3(T, n, H, HX.dtype)  # h_{t-1} or r*h_{t-1}
        one = HX.dtype.type(1)  # 1 - r in the arrays' precision
        dh_next = np.zeros((n, H), dtype=HX.dtype)
        take_rows(dh_next, dhT)
        dHX = empty_aligned(n, K, HX.dtype)
        dhin = empty_aligned(n, H, HX.dtype)
        W_nhT, W_rzT = back_weights(W_nh, n), back_weights(W_rz, n)
        want_dx = dX.shape[0] > 0
        for t in range(T - 1, -1, -1):
            for i in range(n):
                if t < lengths[i]:
                    dh = dh_next[i]
                    for j in range(H):
                        dh[j] += dHs[t, i, j]
                    _step_back(
                        dh,
                        HX[t, i],
                        S[t + 1, i],
                        dA_rz[t, i],
                        dA_n[t, i],
                        dA_nh[t, i],
                        hin[t, i],
                        H,
                        reset_after,
                    )
                else:  # a frozen step passes dh through
                    for j in range(H):
                        dh_next[i, j] += dHs[t, i, j]
                        dA_rz[t, i, j] = 0.0
                        dA_rz[t, i, H + j] = 0.0
                        dA_n[t, i, j] = 0.0
                        dA_nh[t, i, j] = 0.0
                        hin[t, i, j] = 0.0
            mm_back(dA_nh[t], W_nh, W_nhT, dhin)  # dL/d hin
            if not reset_after:  # hin = r * h
                for i in range(n):
                    if t < lengths[i]:
                        for j in range(H):
                            r = S[t + 1, i, R * H + j]
                            dA_rz[t, i, j] = dhin[i, j] * HX[t, i, j] * r * (one - r)
                            dhin[i, j] *= r
            if t == 0 and not (want_dx or dh0.shape[0] > 0):
                break  # nothing reads step 0's dh_{-1} or dx_0
            mm_back(dA_rz[t], W_rz, W_rzT, dHX)  # [dh_{t-1}; dx_t] through r and z
            for i in range(n):
                if t < lengths[i]:
                    for j in range(H):
                        dh_next[i, j] += dHX[i, j] + dhin[i, j]
                    if want_dx:
                        for j in range(K - H):
                            dX[t, i, j] = dHX[i, H + j]
                elif want_dx:
                    for j in range(K - H):
                        dX[t, i, j] = 0.0
        copy_rows(dh0, dh_next)
        # tied weights: one product per block over all steps
        mm_tn_blocked(dA_rz.reshape(T * n, 2 * H), HX[:T].reshape(T * n, K), dW[: 2 * H])
        dW_nh = empty_aligned(H, H, HX.dtype)
        mm_tn_blocked(dA_nh.reshape(T * n, H), hin.reshape(T * n, H), dW_nh)
        X = _inputs(HX, H)
        dW_nx = empty_aligned(H, K - H, HX.dtype)
        mm_tn_blocked(dA_n.reshape(T * n, H), X.reshape(T * n, K - H), dW_nx)
        for j in range(H):
            for k in range(H):
                dW[2 * H + j, k] = dW_nh[j, k]
            for k in range(K - H):
                dW[2 * H + j, H + k] = dW_nx[j, k]
        if want_dx:  # the n rows' share of dx_t, one product over all steps
            dXn = np.empty((T, n, K - H), dtype=HX.dtype)
            mm_nn(dA_n.reshape(T * n, H), W_nx, dXn.reshape(T * n, K - H))
            for t in range(T):
                for i in range(n):
                    if t < lengths[i]:
                        for j in range(K - H):
                            dX[t, i, j] += dXn[t, i, j]
        for j in range(3 * H):
            db[j] = 0.0
        for j in range(H):
            dextra[j] = 0.0
        for t in range(T):
            for i in range(n):
                for j in range(2 * H):
                    db[j] += dA_rz[t, i, j]
                for j in range(H):
                    db[2 * H + j] += dA_n[t, i, j]
                if reset_after:  # Cho's form leaves b_hn out: its gradient stays 0
                    for j in range(H):
                        dextra[j] += dA_nh[t, i, j]

    return forward, backward


forward, backward = _family(True, "")
forward_cho, backward_cho = _family(False, "_cho")
