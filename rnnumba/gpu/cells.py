"""The cells' pointwise math on the device, shared by the persistent and the
stepwise kernels: one unit ``j`` of one sample, given its pre-activations.

The equations are those of ``tests/reference.py`` (and of the CPU kernels in
:mod:`rnnumba.cells`):

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

from ._device import cuda


@functools.cache
def funcs(dt):
    c = cuda()
    one = np.dtype(dt).type(1.0)
    dev = c.jit(device=True, inline="always")

    @dev
    def sigmoid(a):
        return one / (one + math.exp(-a))

    @dev
    def lstm_forward(a_i, a_f, a_g, a_o, c_prev, p_i, p_f, p_o):
        i = sigmoid(a_i + p_i * c_prev)
        f = sigmoid(a_f + p_f * c_prev)
        g = math.tanh(a_g)
        cn = f * c_prev + i * g
        o = sigmoid(a_o + p_o * cn)
        return i, f, g, o, cn, o * math.tanh(cn)

    @dev
    def lstm_backward(dh, dc, i, f, g, o, c_prev, cn, p_i, p_f, p_o):
        """-> (da_i, da_f, da_g, da_o, dc_prev)"""
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
        """Reset-after: -> (r, z, n, h)"""
        r = sigmoid(a_r)
        z = sigmoid(a_z)
        n = math.tanh(x_n + r * hn)
        return r, z, n, (one - z) * n + z * h_prev

    @dev
    def gru_backward(dh, r, z, n, hn, h_prev):
        """Reset-after: -> (da_r, da_z, da_n, dhn, dh_prev without W^T terms)"""
        da_n = dh * (one - z) * (one - n * n)
        dz = dh * (h_prev - n)
        dr = da_n * hn
        return dr * r * (one - r), dz * z * (one - z), da_n, da_n * r, dh * z

    @dev
    def cho_backward1(dh, z, n, h_prev):
        """Reset-before, first half: -> (da_z, da_n, dh_prev so far)"""
        da_n = dh * (one - z) * (one - n * n)
        dz = dh * (h_prev - n)
        return dz * z * (one - z), da_n, dh * z

    @dev
    def cho_backward2(drh, r, h_prev):
        """Reset-before, second half, given drh = W_nh^T da_n: -> (da_r, dh_prev term)"""
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
GATES = {ELMAN: 1, LSTM: 4, GRU: 3, CHO: 3}


def kind(layout):
    """The kernel family of a layout: 'elman', 'lstm', 'gru' (reset-after) or 'cho'."""
    if layout.cell == "gru" and not layout.reset_after:
        return CHO
    return layout.cell


def store_width(kind_, H):
    """Per-step values kept for BPTT besides h (``Gst`` rows):
    LSTM i, f, g, o, c, c_prev; GRU r, z, n, hn (Cho: r, z, n, r*h_prev)."""
    return {ELMAN: 1, LSTM: 6 * H, GRU: 4 * H, CHO: 4 * H}[kind_]
