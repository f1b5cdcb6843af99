"""Views of the flat parameter vector and copies of rows, for the kernels.

A layer's weights are a (rows, K) view of ``theta`` (:func:`tensor`), or a
copy padded with zero columns to whole SIMD registers where the products
repay it (:func:`padded_width`, :func:`padded_weights`, and
:func:`drop_padding` for the gradient). Rows move with plain loops
(:func:`copy_row`, :func:`add_row`). The products themselves are in
:mod:`rnnumba._linalg`.
"""

from ._jit import jit
from ._linalg import empty_aligned


@jit(inline="always")
def tensor(theta, offset, shape0, shape1):
    """``theta[offset : offset + shape0*shape1]`` as a (shape0, shape1) view."""
    return theta[offset : offset + shape0 * shape1].reshape(shape0, shape1)


@jit(inline="always")
def copy_row(dst, src):
    """``dst[:] = src`` for 1-D rows, as a plain loop.

    Much cheaper than numba's slice assignment (called hundreds of times per
    batch).
    """
    for k in range(dst.shape[0]):
        dst[k] = src[k]


@jit(inline="always")
def add_row(dst, src):
    """``dst += src`` for 1-D rows, as :func:`copy_row`."""
    for k in range(dst.shape[0]):
        dst[k] += src[k]


LANE_BYTES = 64  # one AVX-512 register; a multiple of AVX2's 32
PAD_WORK = 1 << 16  # per-step multiply-adds from which padding repays its copies


@jit
def padded_width(K, work, itemsize):
    """Return the row width of a layer's ``[h; x]`` buffer and of its weights.

    ``K``, or ``K`` rounded up to whole SIMD registers.

    The products vectorise along ``K`` and run its last ``K % lanes`` columns
    one at a time, each costing about as much as a whole register's worth, so
    a ragged ``K`` is markedly slower than the next multiple of the lanes.
    Zero columns (in the weights and in ``x``) change no sum. Only where a
    step's product (``work`` multiply-adds) is big enough to repay copying the
    weights in and their gradient out.
    """
    lanes = LANE_BYTES // itemsize
    r = K % lanes
    if r < 2 or work < PAD_WORK:
        return K
    return K + lanes - r


@jit(inline="always")
def padded_weights(theta, offset, rows, K, Kp, work):
    """Return the (rows, K) weight matrix at ``offset``, read-only.

    A view, or a copy padded with zero columns to ``Kp`` (see
    :func:`padded_width`), or, where a step's product (``work``
    multiply-adds) repays it as it repays padding, a copy that starts on a
    cache line where the view does not (the 512-bit dot products' loads
    straddle two lines otherwise: ``_dots.wide_rows``).
    """
    W = tensor(theta, offset, rows, K)
    if Kp == K and (work < PAD_WORK or W.ctypes.data % LANE_BYTES == 0):
        return W
    Wp = empty_aligned(rows, Kp, theta.dtype)
    for j in range(rows):
        copy_row(Wp[j, :K], W[j])
        for k in range(K, Kp):
            Wp[j, k] = 0.0
    return Wp


@jit(inline="always")
def drop_padding(dW, dWp):
    """Copy ``dWp`` into ``dW`` without the padding's columns (nothing to do when they are one array)."""
    if dWp.shape[1] != dW.shape[1]:
        for j in range(dW.shape[0]):
            copy_row(dW[j], dWp[j, : dW.shape[1]])
