"""The Elman (tanh) cell: ``h_t = tanh(W [h_{t-1}; x_t] + b)``.

CPU kernels over one time-major chunk; see :mod:`rnnumba.cells` for the shared
call shape and the BPTT recursion; the GPU twins are ``rnnumba.gpu.persistent``
and ``rnnumba.gpu.stepwise`` (element-wise parts in ``rnnumba.gpu.cells``).
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
from .._math import tanh  # noqa: F401  (re-exported for the other cells)
from ._bptt import copy_rows, input_part_only, mm_x_nt, mm_x_tn, split_dhx, take_rows

STATE_WIDTH = 0  # nothing beyond h is needed for BPTT: tanh' = 1 - h^2


@jit
def forward(W, b, extra, HX, S, lengths):
    """Run the forward pass over a chunk.

    For every step ``t`` and valid sample::

        z_t = W [h_{t-1}; x_t]        one product per step (step 0: x_0's columns
                                      only when every h_{-1} is 0)
        h_t = tanh(z_t + b)           written into HX[t+1, :, :H]

    A sample past its length keeps ``h`` (``HX[t+1] = HX[t]``). ``HX[t, :, H:]``
    holds ``x_t`` and ``HX[0, :, :H]`` ``h_{-1}`` (the caller's); ``S`` and
    ``extra`` are unused (``STATE_WIDTH = 0``). GPU siblings: the Elman branches
    of ``rnnumba.gpu.persistent.build_forward`` and
    ``rnnumba.gpu.stepwise.build_step_forward``.
    """
    W, HX = borrow(W), borrow(HX)  # the caller's: no counting of their views
    T, n = HX.shape[0] - 1, HX.shape[1]
    H = b.shape[0]
    Z = empty_aligned(n, H, HX.dtype)
    WT = step_weights(W, n)
    skip0 = input_part_only(HX, H, H)
    for t in range(T):
        if t == 0 and skip0:
            mm_x_nt(HX[0], W, Z, H)  # h_{-1} = 0: only x_0's columns
        else:
            mm_step(HX[t], W, WT, Z)  # Z = [h_{t-1}; x_t] W^T
        for i in range(n):
            if t < lengths[i]:
                for j in range(H):
                    HX[t + 1, i, j] = tanh(Z[i, j] + b[j])
            else:  # past the end: keep the final state
                for j in range(H):
                    HX[t + 1, i, j] = HX[t, i, j]


@jit
def backward(W, b, extra, HX, S, lengths, dHs, dhT, dW, db, dextra, dX, dh0):
    """Run BPTT over a chunk, from ``t = T-1`` down.

    With ``r_t`` what step t+1 passes back (``r_{T-1}``: ``dhT``, or 0)::

        dh_t            = dHs[t] + r_t
        dz_t            = dh_t * (1 - h_t^2)          0 past a sample's length,
                                                      where r_{t-1} = dh_t
        [r_{t-1}; dx_t] = dz_t W
        dW = sum_t dz_t^T [h_{t-1}; x_t]     db = sum_t dz_t   (over samples too)

    ``dHs`` (T, n, H) is dL/dh_t from above; ``dhT`` (n, H), if not empty, the
    adjoint carried in from a later segment; ``dW``, ``db`` are written (not
    accumulated); ``dX`` (T, n, I) and ``dh0`` (n, H), if not empty, receive
    ``dx_t`` and ``r_{-1}`` = dL/dh_{-1}. GPU siblings: the Elman branches of
    ``rnnumba.gpu.persistent.build_backward`` and
    ``rnnumba.gpu.stepwise.build_step_backward``.
    """
    W, HX, dHs, dW, dX = borrow(W), borrow(HX), borrow(dHs), borrow(dW), borrow(dX)  # as in forward
    T, n = HX.shape[0] - 1, HX.shape[1]
    H = b.shape[0]
    K = HX.shape[2]
    dZ = empty_aligned3(T, n, H, HX.dtype)
    one = HX.dtype.type(1)  # 1 - h^2 in the arrays' precision
    dh_next = np.zeros((n, H), dtype=HX.dtype)
    take_rows(dh_next, dhT)
    dHX = empty_aligned(n, K if dX.shape[0] > 0 else H, HX.dtype)  # [dh_{t-1}; dx_t] or dh_{t-1}
    WT = back_weights(W, n)
    for t in range(T - 1, -1, -1):
        for i in range(n):
            valid = t < lengths[i]
            for j in range(H):
                dh = dh_next[i, j] + dHs[t, i, j]
                h = HX[t + 1, i, j]
                dh_next[i, j] = dh  # a frozen step passes dh through
                dZ[t, i, j] = dh * (one - h * h) if valid else 0.0
        if t > 0 or dX.shape[0] > 0 or dh0.shape[0] > 0:  # nothing reads step 0's otherwise
            mm_back(dZ[t], W, WT, dHX)  # [dh_{t-1}; dx_t] = dz_t W
            split_dhx(dHX, dh_next, dX, t, lengths)
    copy_rows(dh0, dh_next)
    # tied weights: one product over all steps, dW = sum_t dz_t^T [h_{t-1}; x_t]
    if input_part_only(HX, H, H):  # h_{-1} = 0: step 0 adds to the x columns only
        mm_tn_blocked(dZ[1:].reshape((T - 1) * n, H), HX[1:T].reshape((T - 1) * n, K), dW)
        mm_x_tn(dZ[0], HX[0], dW, H)
    else:
        mm_tn_blocked(dZ.reshape(T * n, H), HX[:T].reshape(T * n, K), dW)
    for j in range(H):
        db[j] = 0.0
    for t in range(T):
        for i in range(n):
            for j in range(H):
                db[j] += dZ[t, i, j]
