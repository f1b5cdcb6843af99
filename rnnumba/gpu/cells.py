"""The cells' pointwise math on the device.

Shared by the persistent and the stepwise kernels: one unit ``j`` of one
sample, given its pre-activations.

The equations are those of ``docs/cells.md`` and ``tests/reference.py`` (and of
the CPU kernels in :mod:`rnnumba.cells`, the siblings named below):

* Elman: ``h = tanh(a)``.
* LSTM (Graves' peepholes ``p``, zero without): ``i = s(a_i + p_i c_prev)``,
  ``f = s(a_f + p_f c_prev)``, ``g = tanh(a_g)``, ``c = f c_prev + i g``,
  ``o = s(a_o + p_o c)``, ``h = o tanh(c)``.
* GRU, PyTorch's reset-after: ``n = tanh(x_n + r (W_nh h + b_hn))``; Cho's
  reset-before: ``n = tanh(x_n + W_nh (r h))``; both ``h' = (1-z) n + z h``.

Every function is compiled per dtype with constants of that dtype, so float32
kernels never widen to float64. All are ``inline="always"`` (they also compile
to PTX without a device that way).
"""

import functools
import math
from types import SimpleNamespace

import numpy as np

from ..layout import GATES as LAYOUT_GATES
from ._device import cuda


@functools.cache
def funcs(dt):
    """Build the cells' device functions for one dtype.

    Parameters
    ----------
    dt : str or numpy dtype
        ``"float32"`` or ``"float64"``: the constants' and arithmetic's dtype.

    Returns
    -------
    types.SimpleNamespace
        ``sigmoid``, ``lstm_forward``, ``lstm_backward``, ``gru_forward``,
        ``gru_backward``, ``cho_backward1``, ``cho_backward2`` (numba-cuda
        device functions) and ``one`` (1 in that dtype).
    """
    c = cuda()
    one = np.dtype(dt).type(1.0)
    dev = c.jit(device=True, inline="always")

    @dev
    def sigmoid(a):
        """``1 / (1 + exp(-a))``; CPU sibling: ``rnnumba._math.sigmoid``."""
        return one / (one + math.exp(-a))

    @dev
    def lstm_forward(a_i, a_f, a_g, a_o, c_prev, p_i, p_f, p_o):
        """One LSTM unit's step from its pre-activations ``a = W [h_{t-1}; x_t] + b``.

        ``i = s(a_i + p_i c_prev)``, ``f = s(a_f + p_f c_prev)``, ``g = tanh(a_g)``,
        ``c = f c_prev + i g``, ``o = s(a_o + p_o c)``, ``h = o tanh(c)``
        -> ``(i, f, g, o, c, h)``. CPU sibling: ``rnnumba.cells.lstm._step``.
        """
        i = sigmoid(a_i + p_i * c_prev)
        f = sigmoid(a_f + p_f * c_prev)
        g = math.tanh(a_g)
        cn = f * c_prev + i * g
        o = sigmoid(a_o + p_o * cn)
        return i, f, g, o, cn, o * math.tanh(cn)

    @dev
    def lstm_backward(dh, dc, i, f, g, o, c_prev, cn, p_i, p_f, p_o):
        """One LSTM unit's step of BPTT -> ``(da_i, da_f, da_g, da_o, dc_prev)``.

        ``da_o = dh tanh(c) o(1-o)``; ``dc' = dc + dh o (1 - tanh(c)^2) + da_o p_o``;
        ``da_i = dc' g i(1-i)``, ``da_f = dc' c_prev f(1-f)``, ``da_g = dc' i (1-g^2)``;
        ``dc_prev = dc' f + da_i p_i + da_f p_f``. CPU sibling:
        ``rnnumba.cells.lstm._step_back``.
        """
        tc = math.tanh(cn)
        do = dh * tc
        dcn = dc + dh * o * (one - tc * tc)
        da_o = do * o * (one - o)
        dcn = dcn + da_o * p_o
        da_i = dcn * g * i * (one - i)
        da_f = dcn * c_prev * f * (one - f)
        da_g = dcn * i * (one - g * g)
        dc_prev = dcn * f + da_i * p_i + da_f * p_f
        return da_i, da_f, da_g, da_o, dc_prev

    @dev
    def gru_forward(a_r, a_z, x_n, hn, h_prev):
        """Reset-after GRU unit's step -> ``(r, z, n, h)``.

        ``r = s(a_r)``, ``z = s(a_z)``, ``n = tanh(x_n + r hn)``,
        ``h = (1-z) n + z h_prev``, where ``a_r``, ``a_z`` hold both products and
        the biases, ``x_n = W_nx x + b_n`` and ``hn = W_nh h_prev + b_hn``.
        CPU sibling: ``rnnumba.cells.gru._step`` (``reset_after``).
        """
        r = sigmoid(a_r)
        z = sigmoid(a_z)
        n = math.tanh(x_n + r * hn)
        return r, z, n, (one - z) * n + z * h_prev

    @dev
    def gru_backward(dh, r, z, n, hn, h_prev):
        """Reset-after GRU unit's step of BPTT -> ``(da_r, da_z, da_n, dhn, dh_prev without W^T terms)``.

        ``da_n = dh (1-z)(1-n^2)``, ``da_z = dh (h_prev - n) z(1-z)``,
        ``da_r = da_n hn r(1-r)``, ``dhn = da_n r`` (dL/d(W_nh h_prev + b_hn)),
        and ``dh z``, the pointwise part of dh_prev. CPU sibling:
        ``rnnumba.cells.gru._step_back`` (``reset_after``).
        """
        da_n = dh * (one - z) * (one - n * n)
        dz = dh * (h_prev - n)
        dr = da_n * hn
        return dr * r * (one - r), dz * z * (one - z), da_n, da_n * r, dh * z

    @dev
    def cho_backward1(dh, z, n, h_prev):
        """Reset-before (Cho) GRU, first half of BPTT -> ``(da_z, da_n, dh_prev so far)``.

        ``da_z = dh (h_prev - n) z(1-z)``, ``da_n = dh (1-z)(1-n^2)``, ``dh z``.
        CPU sibling: ``rnnumba.cells.gru._step_back`` (Cho).
        """
        da_n = dh * (one - z) * (one - n * n)
        dz = dh * (h_prev - n)
        return dz * z * (one - z), da_n, dh * z

    @dev
    def cho_backward2(drh, r, h_prev):
        """Reset-before (Cho) GRU, second half, given ``drh = W_nh^T da_n`` -> ``(da_r, dh_prev term)``.

        ``da_r = drh h_prev r(1-r)``, and ``drh r`` for dh_prev. CPU sibling:
        the Cho branch after the ``W_nh`` product in ``rnnumba.cells.gru``'s
        ``backward_cho``.
        """
        dr = drh * h_prev
        return dr * r * (one - r), drh * r

    return SimpleNamespace(
        sigmoid=sigmoid,
        lstm_forward=lstm_forward,
        lstm_backward=lstm_backward,
        gru_forward=gru_forward,
        gru_backward=gru_backward,
        cho_backward1=cho_backward1,
        cho_backward2=cho_backward2,
        one=one,
    )


ELMAN, LSTM, GRU, CHO = "elman", "lstm", "gru", "cho"
CELL_KINDS = (ELMAN, LSTM, GRU, CHO)
GATES = {**LAYOUT_GATES, CHO: LAYOUT_GATES[GRU]}  # rnnumba.layout owns the gate counts


def kind(layout):
    """Return the kernel family of a layout: 'elman', 'lstm', 'gru' (reset-after) or 'cho'."""
    if layout.cell == "gru" and not layout.reset_after:
        return CHO
    return layout.cell


def store_width(kind_, H):
    """Per-step values kept for BPTT besides h (``Gst`` rows), in units of floats.

    LSTM i, f, g, o, c, c_prev; GRU r, z, n, hn (Cho: r, z, n, r*h_prev).
    """
    return {ELMAN: 1, LSTM: 6 * H, GRU: 4 * H, CHO: 4 * H}[kind_]


def weight_readers(wsrc):
    """Build the inline device functions that read the recurrent weights.

    ``W_h^T[k, r]`` (forward) and ``W_h[r, k]`` (backward), from shared memory
    or from global memory.
    """
    c = cuda()
    dev = c.jit(device=True, inline="always")
    if wsrc == "shared":

        @dev
        def fwd(sm, WT, idx):
            return sm[idx]

        @dev
        def bwd(sm, theta, w_off, w_ld, H, r, k):
            return sm[r * H + k]

    else:

        @dev
        def fwd(sm, WT, idx):
            return WT[idx]

        @dev
        def bwd(sm, theta, w_off, w_ld, H, r, k):
            return theta[w_off + r * w_ld + k]

    return fwd, bwd
