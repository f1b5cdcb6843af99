"""What the cells' loops share.

Splitting a BPTT step's product, and step 0's products over the input columns
alone when every ``h_{-1}`` is zero.
"""

from .._jit import jit
from .._linalg import SMALL


@jit(inline="always")
def split_dhx(dHX, dh_next, dX, t, lengths):
    """Split a step's product ``dHX = da_t W`` (n, H+I) into ``[dh_{t-1}; dx_t]``.

    Valid samples take ``dh_{t-1} = dHX[:, :H]`` into ``dh_next`` (a frozen
    sample keeps the ``dh`` it passes through) and, if ``dX`` is not empty,
    ``dx_t = dHX[:, H:]`` into ``dX[t]`` (0 past a sample's end).
    """
    H = dh_next.shape[1]
    want_dx = dX.shape[0] > 0
    for i in range(dHX.shape[0]):
        if t < lengths[i]:
            for j in range(H):
                dh_next[i, j] = dHX[i, j]
            if want_dx:
                for j in range(dHX.shape[1] - H):
                    dX[t, i, j] = dHX[i, H + j]
        elif want_dx:
            for j in range(dHX.shape[1] - H):
                dX[t, i, j] = 0.0


@jit(inline="always")
def take_rows(dst, src):
    """``dst[i] = src[i, :dst.shape[1]]`` for the rows of ``src`` (none if empty).

    The adjoint carried into a backward pass (``dhT``) from the segment after
    it, when there is one; else ``dst`` keeps its zeros.
    """
    for i in range(src.shape[0]):
        for j in range(dst.shape[1]):
            dst[i, j] = src[i, j]


@jit(inline="always")
def copy_rows(dst, src):
    """``dst[:, :src.shape[1]] = src`` for the rows of ``dst`` (none if empty).

    Used for dL/dh_{-1} out of a backward pass, when it was asked for.
    """
    for i in range(dst.shape[0]):
        for j in range(src.shape[1]):
            dst[i, j] = src[i, j]


@jit
def input_part_only(HX, H, rows):
    """Whether step 0's products may leave out the ``h_{-1}`` columns.

    True when every initial state (row 0 of ``HX``) is zero, so that
    ``W [h_{-1}; x_0] = W_x x_0``, and the input part of a product with ``rows``
    outputs is small enough for the plain loops below. At the seed's T = 3
    that is a third of the forward products and of the weight gradient's rows.
    """
    n, I = HX.shape[1], HX.shape[2] - H
    if n * I * rows > SMALL:
        return False
    for i in range(n):
        for j in range(H):
            if HX[0, i, j] != 0.0:
                return False
    return True


@jit
def mm_x_nt(HX0, W, Z, H):
    """``Z = x_0 W_x^T`` (``W_x = W[:, H:]``): step 0's product over the input columns only."""
    I = HX0.shape[1] - H
    for i in range(Z.shape[0]):
        for j in range(Z.shape[1]):
            s = 0.0
            for k in range(I):
                s += HX0[i, H + k] * W[j, H + k]
            Z[i, j] = s


@jit
def mm_x_tn(dZ0, HX0, dW, H):
    """``dW_x += dz_0^T x_0`` (``dW_x = dW[:, H:]``): step 0's share of the weight gradient.

    Used when ``h_{-1}`` is zero: the ``h`` columns get nothing from step 0.
    """
    I = HX0.shape[1] - H
    for i in range(dZ0.shape[0]):
        for j in range(dZ0.shape[1]):
            d = dZ0[i, j]
            for k in range(I):
                dW[j, H + k] += d * HX0[i, H + k]
