"""Elementwise functions that vectorise inside compiled loops.

numba turns ``np.tanh`` and ``math.exp`` into scalar libm calls (the PyPI
llvmlite has no vector math library), so a fused cell loop would spend most of
its time there. ``expm1`` below is straight-line arithmetic that LLVM
vectorises, so tanh costs a fraction of the libm call (and less than the
earlier form, a series at ``y / 64`` and six doublings), accurate to a few ulp
(tested against NumPy). ``tanh`` and ``sigmoid`` have a float32 form too,
chosen at compile time by the argument's type: the same method in float32
arithmetic (twice the SIMD lanes).

GPU kernels use ``math.tanh`` and ``math.exp`` (``rnnumba.gpu.cells``).
"""

import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic, overload

from ._jit import jit


@intrinsic
def _as_float64(typingctx, bits):
    """Reinterpret the int64 ``bits`` as a float64 (a free bitcast)."""
    if bits != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


_INV_LN2 = 1.4426950408889634
_LN2_HI, _LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10  # fdlibm's split of ln 2


@jit(inline="always")
def expm1(y):
    """``exp(y) - 1`` for ``|y| <= 39``, with full relative precision near 0.

    ``y = k ln2 + r`` with ``|r| <= ln2 / 2`` (ln 2 in two parts, so ``r`` is
    exact to double precision), ``expm1(r)`` by 13 Taylor terms, then
    ``expm1(y) = 2^k expm1(r) + (2^k - 1)`` with ``2^k`` built from its bits:
    at ``k = 0`` that is ``expm1(r)`` itself, so nothing cancels near 0.
    """
    k = np.rint(y * _INV_LN2)
    r = (y - k * _LN2_HI) - k * _LN2_LO
    p = r * (1.0 + r * (1 / 2 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120 + r * (1 / 720 + r * (
        1 / 5040 + r * (1 / 40320 + r * (1 / 362880 + r * (1 / 3628800 + r * (1 / 39916800 + r * (
            1 / 479001600 + r * (1 / 6227020800)))))))))))))  # fmt: skip
    two_k = _as_float64((np.int64(k) + 1023) << 52)
    return two_k * p + (two_k - 1.0)


@intrinsic
def _pow2_32(typingctx, k):
    """``2^k`` in float32 for an integral float32 ``k`` in [-126, 127], built from its bits."""
    if k != types.float32:
        return None

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)  # int32 lanes: numba's own integers would be int64
        e = builder.add(builder.fptosi(args[0], i32), ir.Constant(i32, 127))
        return builder.bitcast(builder.shl(e, ir.Constant(i32, 23)), ir.FloatType())

    return types.float32(types.float32), codegen


# float32 constants (numba keeps a global NumPy scalar's type); ln 2 split as in Cephes' expf
_ONE, _TWO, _INV_LN2_32 = np.float32(1.0), np.float32(2.0), np.float32(_INV_LN2)
_LN2_HI32, _LN2_LO32 = np.float32(0.693359375), np.float32(-2.12194440e-4)
_C2, _C3, _C4 = np.float32(1 / 2), np.float32(1 / 6), np.float32(1 / 24)
_C5, _C6, _C7 = np.float32(1 / 120), np.float32(1 / 720), np.float32(1 / 5040)
_TANH_CLIP32, _SIGMOID_CLIP32 = np.float32(19.5), np.float32(39.0)


@jit(inline="always")
def expm1_32(y):
    """``exp(y) - 1`` in float32 arithmetic for ``|y| <= 39``: :func:`expm1`'s method.

    ``y = k ln2 + r`` (ln 2 in two parts: ``k ln2_hi`` is exact),
    ``|r| <= ln2 / 2``, ``expm1(r)`` by 7 Taylor terms (the first left out
    is under 0.2 ulp there), ``2^k`` from its bits.
    """
    k = np.rint(y * _INV_LN2_32)
    r = (y - k * _LN2_HI32) - k * _LN2_LO32
    p = r * (_ONE + r * (_C2 + r * (_C3 + r * (_C4 + r * (_C5 + r * (_C6 + r * _C7))))))
    two_k = _pow2_32(k)
    return two_k * p + (two_k - _ONE)


def tanh(x):
    """``tanh(x) = expm1(2x) / (expm1(2x) + 2)``; |x| > 19.5 is +-1 in double.

    (Called from compiled code; this Python body is NumPy's, for reference.)
    """
    return np.tanh(x)


def sigmoid(x):
    """``1 / (1 + exp(-x)) = 1 / (2 + expm1(-x))``, never overflowing.

    (Called from compiled code; this Python body is for reference.)
    """
    return 1.0 / (1.0 + np.exp(-x))


@overload(tanh)
def _tanh(x):
    """Compiled ``tanh``: ``a = expm1(2 clip(x, +-19.5)); tanh = a / (a + 2)``, float32 or float64."""
    if x == types.float32:

        def tanh32(x):
            a = expm1_32(_TWO * min(max(x, -_TANH_CLIP32), _TANH_CLIP32))
            return a / (a + _TWO)

        return tanh32

    def tanh64(x):
        a = expm1(2.0 * min(max(x, -19.5), 19.5))
        return a / (a + 2.0)

    return tanh64


@overload(sigmoid)
def _sigmoid(x):
    """Compiled ``sigmoid``: ``1 / (2 + expm1(-clip(x, +-39)))``, float32 or float64."""
    if x == types.float32:

        def sigmoid32(x):
            return _ONE / (_TWO + expm1_32(-min(max(x, -_SIGMOID_CLIP32), _SIGMOID_CLIP32)))

        return sigmoid32

    def sigmoid64(x):
        return 1.0 / (2.0 + expm1(-min(max(x, -39.0), 39.0)))

    return sigmoid64
