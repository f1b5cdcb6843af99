"""Stepwise recurrence: a GEMM and a pointwise kernel per time step.

Per time step, one tiled GEMM for ``h_{t-1} W_h^T`` over the whole batch,
then one pointwise kernel for the cell (Cho's GRU: two of each). Used for
hidden sizes whose recurrent weights do not fit in one block's shared memory;
see ``docs/gpu.md``.

Buffers as in :mod:`rnnumba.gpu.persistent`, plus per-step scratch:
``Z`` (N, G*H) the recurrent products, ``Hc``/``Cc`` (N, H) the current state
and cell (Cho: ``Cc`` holds r*h_prev), and for BPTT ``DAs`` (N, G*H) this
step's gate gradients (zero for finished samples), ``DH``/``DC`` (N, H) the
gradient carried to the previous step, ``DRH`` (N, H) Cho's W_nh^T da_n.

CPU siblings: the cells' ``forward``/``backward`` in :mod:`rnnumba.cells`;
persistent sibling: :mod:`rnnumba.gpu.persistent`.
"""

import math

import numpy as np

from ._device import cuda
from ._registry import I64, IVEC, builder, compiled, vec
from .cells import CELL_KINDS, CHO, ELMAN, GATES, GRU, LSTM, funcs
from .linalg import grid1

# numba.cuda, bound when the first kernel is built; a module global (not a
# closure variable) so that the CUDA simulator can swap it for its fake module
cu = None


def _bind():
    """Bind the module global ``cu`` to ``numba.cuda`` (see the comment above)."""
    global cu
    cu = cuda()


@builder("step_forward")
def build_step_forward(dt, kind, peephole, phase):
    """Build the pointwise half of forward step ``t``, one thread per (sample, unit).

    Given ``Z = h_{t-1} W_h^T`` from the step's GEMM and ``Xp = x W_x^T + b``::

        Elman:  h_t = tanh(Xp + Z)
        LSTM:   lstm_forward(Xp + Z, c_{t-1}, p)                -> i, f, g, o, c_t, h_t
        GRU:    gru_forward(Xp_rz + Z_rz, Xp_n, Z_n + b_hn, h_{t-1})
        Cho:    phase 1: r, z = sigmoid(Xp + Z), Cc = r * h_{t-1};
                phase 2 (Z_n = (r * h_{t-1}) W_nh^T): n = tanh(Xp_n + Z_n),
                h_t = (1 - z) n + z h_{t-1}

    A sample past its length is left as it is (its state freezes). CPU
    siblings: the cells' ``forward``; persistent sibling:
    :func:`rnnumba.gpu.persistent.build_forward`.
    """
    _bind()
    F = funcs(dt)
    sigmoid, lstm_forward, gru_forward = F.sigmoid, F.lstm_forward, F.gru_forward
    G = GATES[kind]
    IS_LSTM, IS_GRU, IS_ELMAN = kind == LSTM, kind == GRU, kind == ELMAN
    PEEP = bool(peephole)
    zero = np.dtype(dt).type(0.0)
    one = np.dtype(dt).type(1.0)

    def step_forward(
        theta, x_off, Xp, Z, Hc, Cc, Out, out_ld, out_col, Hprev, Gst, gs_ld, lengths, N, T, H, t, reverse
    ):
        e = cu.grid(1)
        if e >= N * H:
            return
        n = e // H
        j = e - n * H
        L = lengths[n]
        if t >= L:
            return  # the state freezes
        GH = G * H
        tau = L - 1 - t if reverse else t
        row = n * T + tau
        xb = row * GH
        zb = n * GH
        gb = row * gs_ld
        hp = Hc[e]
        if IS_ELMAN:
            h = math.tanh(Xp[xb + j] + Z[zb + j])
        elif IS_LSTM:
            p_i = zero
            p_f = zero
            p_o = zero
            if PEEP:
                p_i = theta[x_off + j]
                p_f = theta[x_off + H + j]
                p_o = theta[x_off + 2 * H + j]
            cp = Cc[e]
            i, f, g, o, cn, h = lstm_forward(
                Xp[xb + j] + Z[zb + j],
                Xp[xb + H + j] + Z[zb + H + j],
                Xp[xb + 2 * H + j] + Z[zb + 2 * H + j],
                Xp[xb + 3 * H + j] + Z[zb + 3 * H + j],
                cp,
                p_i,
                p_f,
                p_o,
            )
            Cc[e] = cn
            Gst[gb + j] = i
            Gst[gb + H + j] = f
            Gst[gb + 2 * H + j] = g
            Gst[gb + 3 * H + j] = o
            Gst[gb + 4 * H + j] = cn
            Gst[gb + 5 * H + j] = cp
        elif IS_GRU:
            hn = Z[zb + 2 * H + j] + theta[x_off + j]
            r, z, nn, h = gru_forward(
                Xp[xb + j] + Z[zb + j], Xp[xb + H + j] + Z[zb + H + j], Xp[xb + 2 * H + j], hn, hp
            )
            Gst[gb + j] = r
            Gst[gb + H + j] = z
            Gst[gb + 2 * H + j] = nn
            Gst[gb + 3 * H + j] = hn
        elif phase == 1:  # Cho: r, z and r*h_prev
            r = sigmoid(Xp[xb + j] + Z[zb + j])
            Gst[gb + j] = r
            Gst[gb + H + j] = sigmoid(Xp[xb + H + j] + Z[zb + H + j])
            Gst[gb + 3 * H + j] = r * hp
            Cc[e] = r * hp
            return
        else:  # Cho: n and h, Z[:, 2H:] = (r*h_prev) W_nh^T
            nn = math.tanh(Xp[xb + 2 * H + j] + Z[zb + 2 * H + j])
            z = Gst[gb + H + j]
            h = (one - z) * nn + z * hp
            Gst[gb + 2 * H + j] = nn
        Hprev[row * H + j] = hp
        Out[row * out_ld + out_col + j] = h
        Hc[e] = h

    V = vec(dt)
    sig = (V, I64, V, V, V, V, V, I64, I64, V, V, I64, IVEC, I64, I64, I64, I64, I64)
    return step_forward, sig


@builder("step_backward")
def build_step_backward(dt, kind, peephole, phase):
    """Build the pointwise half of BPTT step ``t``, one thread per (sample, unit).

    ``dh = DH + dOut[tau]`` (``DH``: carried from step t+1), then the cell's local
    derivative (``lstm_backward``, ``gru_backward``, ``cho_backward1``; Elman
    ``da = dh (1 - h^2)``) into ``dA`` (and ``dAh``) and ``DAs``, and ``DH`` set
    to the pointwise part of dh_{t-1}; the caller's GEMM then adds
    ``DAs W_h``. Cho's phase 2, after ``DRH = da_n W_nh``: ``cho_backward2`` ->
    ``da_r`` and ``DH += DRH * r``. Padded steps zero their ``dA`` and leave
    ``DH``. CPU siblings: the cells' ``backward``; persistent sibling:
    :func:`rnnumba.gpu.persistent.build_backward`.
    """
    _bind()
    F = funcs(dt)
    lstm_backward, gru_backward = F.lstm_backward, F.gru_backward
    cho_backward1, cho_backward2 = F.cho_backward1, F.cho_backward2
    G = GATES[kind]
    IS_LSTM, IS_GRU, IS_ELMAN = kind == LSTM, kind == GRU, kind == ELMAN
    PEEP = bool(peephole)
    zero = np.dtype(dt).type(0.0)
    one = np.dtype(dt).type(1.0)

    def step_backward(
        theta,
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
        DAs,
        DH,
        DC,
        DRH,
        lengths,
        N,
        T,
        H,
        t,
        reverse,
    ):
        e = cu.grid(1)
        if e >= N * H:
            return
        n = e // H
        j = e - n * H
        L = lengths[n]
        GH = G * H
        sb = n * GH
        if t >= L:
            if phase == 1:
                for g in range(G):  # padding: no gradient; DH passes through
                    dA[(n * T + t) * GH + g * H + j] = zero
                    if IS_GRU:
                        dAh[(n * T + t) * GH + g * H + j] = zero
                    DAs[sb + g * H + j] = zero
            return
        tau = L - 1 - t if reverse else t
        row = n * T + tau
        ab = row * GH
        gb = row * gs_ld
        if phase == 2:  # Cho: DRH = W_nh^T da_n is ready
            da_r, term = cho_backward2(DRH[e], Gst[gb + j], Hprev[row * H + j])
            dA[ab + j] = da_r
            DAs[sb + j] = da_r
            DH[e] += term
            return
        dh = DH[e] + dOut[row * dout_ld + dout_col + j]
        if IS_ELMAN:
            h = Out[row * out_ld + out_col + j]
            da = dh * (one - h * h)
            dA[ab + j] = da
            DAs[sb + j] = da
            DH[e] = zero
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
                DC[e],
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
            DC[e] = dcp
            dA[ab + j] = da_i
            dA[ab + H + j] = da_f
            dA[ab + 2 * H + j] = da_g
            dA[ab + 3 * H + j] = da_o
            DAs[sb + j] = da_i
            DAs[sb + H + j] = da_f
            DAs[sb + 2 * H + j] = da_g
            DAs[sb + 3 * H + j] = da_o
            DH[e] = zero
        elif IS_GRU:
            da_r, da_z, da_n, dhn, loc = gru_backward(
                dh, Gst[gb + j], Gst[gb + H + j], Gst[gb + 2 * H + j], Gst[gb + 3 * H + j], Hprev[row * H + j]
            )
            dA[ab + j] = da_r
            dA[ab + H + j] = da_z
            dA[ab + 2 * H + j] = da_n
            dAh[ab + j] = da_r
            dAh[ab + H + j] = da_z
            dAh[ab + 2 * H + j] = dhn
            DAs[sb + j] = da_r
            DAs[sb + H + j] = da_z
            DAs[sb + 2 * H + j] = dhn
            DH[e] = loc
        else:  # Cho, first half
            da_z, da_n, loc = cho_backward1(dh, Gst[gb + H + j], Gst[gb + 2 * H + j], Hprev[row * H + j])
            dA[ab + H + j] = da_z
            dA[ab + 2 * H + j] = da_n
            DAs[sb + H + j] = da_z
            DAs[sb + 2 * H + j] = da_n
            DH[e] = loc

    V = vec(dt)
    sig = (V, I64, V, I64, I64, V, I64, I64, V, V, I64, V, V, V, V, V, V, IVEC, I64, I64, I64, I64, I64)
    return step_backward, sig


def forward_kernel(dt, kind, peephole, phase=1):
    """Return the compiled ``step_forward`` kernel for a dtype, cell kind, peephole flag and phase.

    Parameters
    ----------
    dt : str
        ``"float32"`` or ``"float64"``.
    kind : {"elman", "lstm", "gru", "cho"}
    peephole : bool
    phase : {1, 2}
        Cho's GRU has two phases per step; the other cells one.

    Returns
    -------
    numba-cuda dispatcher
        See :func:`build_step_forward`.
    """
    return compiled("step_forward", dt, kind, bool(peephole), phase)


def backward_kernel(dt, kind, peephole, phase=1):
    """Return the compiled ``step_backward`` kernel for a dtype, cell kind, peephole flag and phase.

    Parameters
    ----------
    dt : str
        ``"float32"`` or ``"float64"``.
    kind : {"elman", "lstm", "gru", "cho"}
    peephole : bool
    phase : {1, 2}
        Cho's GRU has two phases per step; the other cells one.

    Returns
    -------
    numba-cuda dispatcher
        See :func:`build_step_backward`.
    """
    return compiled("step_backward", dt, kind, bool(peephole), phase)


def variants():
    """``[(name, key), ...]``: every stepwise kernel (cells, peepholes, phases) in both dtypes."""
    out = []
    for dt in ("float32", "float64"):
        for kind in CELL_KINDS:
            for peep in (False, True) if kind == LSTM else (False,):
                for phase in (1, 2) if kind == CHO else (1,):
                    out.append(("step_forward", (dt, kind, peep, phase)))
                    out.append(("step_backward", (dt, kind, peep, phase)))
    return out


__all__ = ["forward_kernel", "backward_kernel", "grid1"]
