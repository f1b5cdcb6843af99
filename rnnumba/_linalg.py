"""Small dense products for the kernels.

BLAS (``np.dot`` inside njit) wins once a product is big enough; below that,
its call overhead dominates and a plain loop that LLVM vectorises is faster
(the seed's 20x27x26 products). ``SMALL`` is the crossover in multiply-adds.

The loop form that vectorises best is the row-times-row dot product of
``A @ B.T`` (both operands streamed along contiguous rows, four outputs at a
time sharing each load of ``A``): 14-27 GMAC/s against 6-8 for the
``axpy`` form of ``A @ B`` on the sizes above. So ``mm_nn`` transposes ``B``
once and calls it; kernels that multiply by the same matrix at every step
keep a transposed copy and call :func:`mm_nt` directly.
"""

import numpy as np

from ._jit import jit

SMALL = 32_768


@jit
def _nt_loops(A, B, C):
    m, k = A.shape
    n = B.shape[0]
    zero = np.zeros(1, dtype=C.dtype)[0]  # accumulate in C's precision (float32 stays float32)
    for i in range(m):
        j = 0
        while j + 4 <= n:
            s0 = s1 = s2 = s3 = zero
            for q in range(k):
                a = A[i, q]
                s0 += a * B[j, q]
                s1 += a * B[j + 1, q]
                s2 += a * B[j + 2, q]
                s3 += a * B[j + 3, q]
            C[i, j] = s0
            C[i, j + 1] = s1
            C[i, j + 2] = s2
            C[i, j + 3] = s3
            j += 4
        while j < n:
            s = zero
            for q in range(k):
                s += A[i, q] * B[j, q]
            C[i, j] = s
            j += 1


@jit
def mm_nt(A, B, C):
    """C = A @ B.T for C-contiguous A (m, k), B (n, k), C (m, n)."""
    if A.shape[0] * A.shape[1] * B.shape[0] > SMALL:
        np.dot(A, B.T, C)
    else:
        _nt_loops(A, B, C)


@jit
def mm_nn(A, B, C):
    """C = A @ B for C-contiguous A (m, k), B (k, n), C (m, n)."""
    m, k = A.shape
    n = B.shape[1]
    if m * k * n > SMALL:
        np.dot(A, B, C)
    elif k < 8:  # a short inner dimension (a head's few outputs): row updates
        for i in range(m):
            for j in range(n):
                C[i, j] = 0.0
            for q in range(k):
                a = A[i, q]
                for j in range(n):
                    C[i, j] += a * B[q, j]
    else:
        _nt_loops(A, np.ascontiguousarray(B.T), C)


@jit
def mm_tn(A, B, C):
    """C = A.T @ B for C-contiguous A (k, m), B (k, n), C (m, n).

    Small sizes: both operands transposed once, then the dot-product loops
    (the long dimension ``k`` becomes their inner loop).
    """
    k, m = A.shape
    n = B.shape[1]
    if m * n * k > SMALL:
        np.dot(A.T, B, C)
    else:
        _nt_loops(np.ascontiguousarray(A.T), np.ascontiguousarray(B.T), C)
