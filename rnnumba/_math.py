"""Elementwise functions that vectorise inside compiled loops.

numba turns ``np.tanh`` and ``math.exp`` into scalar libm calls (the PyPI
llvmlite has no vector math library), so a fused cell loop would spend most of
its time there. ``expm1`` below is straight-line arithmetic that LLVM
vectorises: about 1 ns per element in float64 instead of 4-8, accurate to a few
ulp (tested against NumPy). ``tanh`` and ``sigmoid`` have a float32 form too,
chosen at compile time by the argument's type: float32 arithmetic throughout
(twice the SIMD lanes) and a Taylor series of 9 terms instead of 17.
"""

import numpy as np
from numba.core import types
from numba.extending import overload

from ._jit import jit


@jit(inline="always")
def expm1(y):
    """``exp(y) - 1`` for ``|y| <= 39``, with full relative precision near 0.

    ``a = expm1(y/64)`` by its Taylor series (``|y/64| <= 0.61``, 17 terms reach
    double precision), then six doublings ``expm1(2u) = a (2 + a)``, which keep
    the relative error small where ``exp(y) - 1`` would cancel.
    """
    r = y * (1.0 / 64.0)
    a = r * (1.0 + r * (1 / 2 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120 + r * (1 / 720 + r * (
        1 / 5040 + r * (1 / 40320 + r * (1 / 362880 + r * (1 / 3628800 + r * (1 / 39916800 + r * (
            1 / 479001600 + r * (1 / 6227020800 + r * (1 / 87178291200 + r * (1 / 1307674368000 + r * (
                1 / 20922789888000 + r * (1 / 355687428096000)))))))))))))))))  # fmt: skip
    a = a * (2.0 + a)
    a = a * (2.0 + a)
    a = a * (2.0 + a)
    a = a * (2.0 + a)
    a = a * (2.0 + a)
    return a * (2.0 + a)


# float32 constants (numba keeps a global NumPy scalar's type)
_ONE, _TWO, _SIXTY_FOURTH = np.float32(1.0), np.float32(2.0), np.float32(1.0 / 64.0)
_C2, _C3, _C4, _C5 = np.float32(1 / 2), np.float32(1 / 6), np.float32(1 / 24), np.float32(1 / 120)
_C6, _C7, _C8, _C9 = np.float32(1 / 720), np.float32(1 / 5040), np.float32(1 / 40320), np.float32(1 / 362880)
_TANH_CLIP32, _SIGMOID_CLIP32 = np.float32(19.5), np.float32(39.0)


@jit(inline="always")
def expm1_32(y):
    """:func:`expm1` in float32 arithmetic: 9 Taylor terms reach float32 precision."""
    r = y * _SIXTY_FOURTH
    a = r * (_ONE + r * (_C2 + r * (_C3 + r * (_C4 + r * (
        _C5 + r * (_C6 + r * (_C7 + r * (_C8 + r * _C9))))))))  # fmt: skip
    a = a * (_TWO + a)
    a = a * (_TWO + a)
    a = a * (_TWO + a)
    a = a * (_TWO + a)
    a = a * (_TWO + a)
    return a * (_TWO + a)


def tanh(x):
    """``tanh(x) = expm1(2x) / (expm1(2x) + 2)``; |x| > 19.5 is +-1 in double.
    (Called from compiled code; this Python body is NumPy's, for reference.)"""
    return np.tanh(x)


def sigmoid(x):
    """``1 / (1 + exp(-x)) = 1 / (2 + expm1(-x))``, never overflowing.
    (Called from compiled code; this Python body is for reference.)"""
    return 1.0 / (1.0 + np.exp(-x))


@overload(tanh)
def _tanh(x):
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
    if x == types.float32:

        def sigmoid32(x):
            return _ONE / (_TWO + expm1_32(-min(max(x, -_SIGMOID_CLIP32), _SIGMOID_CLIP32)))

        return sigmoid32

    def sigmoid64(x):
        return 1.0 / (2.0 + expm1(-min(max(x, -39.0), 39.0)))

    return sigmoid64
