"""Small dense products for the kernels.

BLAS (``np.dot`` inside njit) wins once a product is big enough; below that,
its call overhead dominates and a plain loop that LLVM vectorises is faster
(the seed's 20x27x26 products). ``SMALL`` is the crossover in multiply-adds.
"""

import numpy as np

from ._jit import jit

SMALL = 32_768


@jit(inline="always")
def mm_nt(A, B, C):
    """C = A @ B.T for C-contiguous A (m, k), B (n, k), C (m, n)."""
    m, k = A.shape
    n = B.shape[0]
    if m * n * k > SMALL:
        np.dot(A, B.T, C)
        return
    for i in range(m):
        for j in range(n):
            s = 0.0
            for q in range(k):
                s += A[i, q] * B[j, q]
            C[i, j] = s


@jit(inline="always")
def mm_nn(A, B, C):
    """C = A @ B for C-contiguous A (m, k), B (k, n), C (m, n)."""
    m, k = A.shape
    n = B.shape[1]
    if m * n * k > SMALL:
        np.dot(A, B, C)
        return
    for i in range(m):
        for j in range(n):
            C[i, j] = 0.0
        for q in range(k):
            a = A[i, q]
            for j in range(n):
                C[i, j] += a * B[q, j]


@jit(inline="always")
def mm_tn(A, B, C):
    """C = A.T @ B for C-contiguous A (k, m), B (k, n), C (m, n)."""
    k, m = A.shape
    n = B.shape[1]
    if m * n * k > SMALL:
        np.dot(A.T, B, C)
        return
    for i in range(m):
        for j in range(n):
            C[i, j] = 0.0
    for q in range(k):
        for i in range(m):
            a = A[q, i]
            for j in range(n):
                C[i, j] += a * B[q, j]
