"""The persistent backward recurrence: one launch runs BPTT over a whole sequence.

The backward twin of :func:`rnnumba.gpu.persistent.build_forward` (same
blocks, shared memory and array layout; see :mod:`rnnumba.gpu.persistent`,
which launches it). Stepwise sibling: :mod:`rnnumba.gpu.stepwise`; CPU
siblings: the cells' ``backward`` in :mod:`rnnumba.cells`.
"""

import numpy as np

from ._device import cuda
from ._registry import I64, IVEC, builder, nbtype, vec
from .cells import CHO, ELMAN, GATES, GRU, LSTM, funcs, weight_readers

# numba.cuda, bound when the kernel is built; a module global (not a closure
# variable) so that the CUDA simulator can swap it for its fake module
cu = None


def _bind():
    """Bind the module global ``cu`` to ``numba.cuda`` (see the comment above)."""
    global cu
    cu = cuda()


@builder("persistent_backward")
def build_backward(dt, kind, peephole, wsrc):
    """Build the backward recurrence of one layer and direction, a whole sequence per launch.

    From ``t = T-1`` down, per unit, with ``r`` the gradient carried from step t+1::

        dh   = r + dOut[tau]
        da   = the cell's local derivative (``lstm_backward``, ``gru_backward``,
               ``cho_backward1`` / ``cho_backward2``; Elman: dh (1 - h^2))
        r   <- pointwise part of dh_{t-1} + W_h^T da           (Cho: via W_nh^T da_n)

    writing every step's ``da`` into ``dA`` (and the h-side form into ``dAh``
    for the reset-after GRU); padded steps get ``da = 0`` and pass ``dh``
    through. The weight gradients are GEMMs afterwards
    (``rnnumba.gpu.engine.DeviceEngine.backward``). CPU siblings: the cells'
    ``backward`` (:mod:`rnnumba.cells`).
    """
    _bind()
    SHARED = wsrc == "shared"
    _, wn = weight_readers(wsrc)
    T_ = nbtype(dt)
    F = funcs(dt)
    lstm_backward, gru_backward = F.lstm_backward, F.gru_backward
    cho_backward1, cho_backward2 = F.cho_backward1, F.cho_backward2
    G = GATES[kind]
    IS_LSTM, IS_GRU, IS_CHO, IS_ELMAN = kind == LSTM, kind == GRU, kind == CHO, kind == ELMAN
    PEEP = bool(peephole)
    RB = 2 if IS_CHO else G  # gate blocks whose W^T da enters dh_prev directly
    zero = np.dtype(dt).type(0.0)
    one = np.dtype(dt).type(1.0)

    def persistent_backward(
        theta,
        w_off,
        w_ld,
        x_off,
        dOut,
        dout_ld,
        dout_col,
        Out,
        out_ld,
        out_col,
        Hprev,
        Gst,
        gs_ld,
        dA,
        dAh,
        lengths,
        N,
        T,
        H,
        reverse,
        nb,
    ):
        sm = cu.shared.array(0, T_)
        tid = cu.threadIdx.x
        nt = cu.blockDim.x
        n0 = cu.blockIdx.x * nb
        GH = G * H
        if SHARED:
            for e in range(tid, GH * H, nt):  # W_h as is: sm[r*H + k]
                r = e // H
                k = e - r * H
                sm[e] = theta[w_off + r * w_ld + k]
        s_da = GH * H if SHARED else 0  # (nb, GH): this step's dL/da, h side
        s_dh = s_da + nb * GH  # (nb, H): dL/dh carried to the previous step
        s_loc = s_dh + nb * H  # (nb, H): the pointwise part of dh_prev
        s_dc = s_loc + nb * H  # (nb, H): LSTM dL/dc carried
        for e in range(tid, nb * H, nt):
            sm[s_dh + e] = zero
            if IS_LSTM:
                sm[s_dc + e] = zero
        cu.syncthreads()
        for t in range(T - 1, -1, -1):
            for e in range(tid, nb * H, nt):
                s = e // H
                j = e - s * H
                n = n0 + s
                sd = s_da + s * GH
                if n < N and t < lengths[n]:
                    tau = lengths[n] - 1 - t if reverse else t
                    row = n * T + tau
                    ab = row * GH
                    gb = row * gs_ld
                    dh = sm[s_dh + e] + dOut[row * dout_ld + dout_col + j]
                    if IS_ELMAN:
                        h = Out[row * out_ld + out_col + j]
                        da = dh * (one - h * h)
                        dA[ab + j] = da
                        sm[sd + j] = da
                        sm[s_loc + e] = zero
                    elif IS_LSTM:
                        p_i = zero
                        p_f = zero
                        p_o = zero
                        if PEEP:
                            p_i = theta[x_off + j]
                            p_f = theta[x_off + H + j]
                            p_o = theta[x_off + 2 * H + j]
                        da_i, da_f, da_g, da_o, dcp = lstm_backward(
                            dh,
                            sm[s_dc + e],
                            Gst[gb + j],
                            Gst[gb + H + j],
                            Gst[gb + 2 * H + j],
                            Gst[gb + 3 * H + j],
                            Gst[gb + 5 * H + j],
                            Gst[gb + 4 * H + j],
                            p_i,
                            p_f,
                            p_o,
                        )
                        sm[s_dc + e] = dcp
                        dA[ab + j] = da_i
                        dA[ab + H + j] = da_f
                        dA[ab + 2 * H + j] = da_g
                        dA[ab + 3 * H + j] = da_o
                        sm[sd + j] = da_i
                        sm[sd + H + j] = da_f
                        sm[sd + 2 * H + j] = da_g
                        sm[sd + 3 * H + j] = da_o
                        sm[s_loc + e] = zero
                    elif IS_GRU:
                        da_r, da_z, da_n, dhn, loc = gru_backward(
                            dh,
                            Gst[gb + j],
                            Gst[gb + H + j],
                            Gst[gb + 2 * H + j],
                            Gst[gb + 3 * H + j],
                            Hprev[row * H + j],
                        )
                        dA[ab + j] = da_r
                        dA[ab + H + j] = da_z
                        dA[ab + 2 * H + j] = da_n
                        dAh[ab + j] = da_r
                        dAh[ab + H + j] = da_z
                        dAh[ab + 2 * H + j] = dhn
                        sm[sd + j] = da_r
                        sm[sd + H + j] = da_z
                        sm[sd + 2 * H + j] = dhn
                        sm[s_loc + e] = loc
                    else:  # Cho, first half
                        da_z, da_n, loc = cho_backward1(
                            dh, Gst[gb + H + j], Gst[gb + 2 * H + j], Hprev[row * H + j]
                        )
                        dA[ab + H + j] = da_z
                        dA[ab + 2 * H + j] = da_n
                        sm[sd + H + j] = da_z
                        sm[sd + 2 * H + j] = da_n
                        sm[s_loc + e] = loc
                else:
                    if n < N and t >= lengths[n]:  # padding: no gradient there
                        for g in range(G):
                            dA[(n * T + t) * GH + g * H + j] = zero
                            if IS_GRU:
                                dAh[(n * T + t) * GH + g * H + j] = zero
                    for g in range(G):
                        sm[sd + g * H + j] = zero
                    sm[s_loc + e] = sm[s_dh + e]  # a frozen step passes dh through
            cu.syncthreads()
            if IS_CHO:  # second half: drh = W_nh^T da_n, then da_r
                for e in range(tid, nb * H, nt):
                    s = e // H
                    k = e - s * H
                    n = n0 + s
                    if n < N and t < lengths[n]:
                        tau = lengths[n] - 1 - t if reverse else t
                        row = n * T + tau
                        sd = s_da + s * GH
                        drh = zero
                        for j in range(H):
                            drh += wn(sm, theta, w_off, w_ld, H, 2 * H + j, k) * sm[sd + 2 * H + j]
                        da_r, term = cho_backward2(drh, Gst[row * gs_ld + k], Hprev[row * H + k])
                        dA[row * GH + k] = da_r
                        sm[sd + k] = da_r
                        sm[s_loc + e] += term
                cu.syncthreads()
            for e in range(tid, nb * H, nt):  # dh_prev = pointwise part + W_h^T da
                s = e // H
                k = e - s * H
                sd = s_da + s * GH
                acc = sm[s_loc + e]
                for r in range(RB * H):
                    acc += wn(sm, theta, w_off, w_ld, H, r, k) * sm[sd + r]
                sm[s_dh + e] = acc
            cu.syncthreads()

    V = vec(dt)
    sig = (V, I64, I64, I64, V, I64, I64, V, I64, I64, V, V, I64, V, V, IVEC, I64, I64, I64, I64, I64)
    return persistent_backward, sig
