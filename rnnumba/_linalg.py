"""Dense products for the kernels.

``A @ B.T`` with both operands streamed along contiguous rows is the form
that vectorises best (dot products along the inner dimension), so ``mm_nn``
transposes ``B`` once and calls it, and kernels that multiply by the same
matrix at every step keep a transposed copy and call :func:`mm_nt` directly.

:func:`mm_nt` picks one of three by size (measured on the development
machine, single-threaded, GMAC/s float32/float64):

* inner dimension below ``BLOCKED`` (32): four dot products at a time sharing each
  row of ``A`` (``_nt_loops``; the seed's 10x27x26 products: 19/14, where
  OpenBLAS's call overhead leaves 13/11);
* up to ``LARGE`` multiply-adds: 4x4 blocks of ``C``, sixteen dot products
  sharing the loads of four rows of each operand (``_nt_blocked``): 57-100 /
  40-50 on the per-step products of the medium and large networks, where
  SciPy's OpenBLAS, which runs its AVX2 (Haswell) kernels on this AVX-512
  CPU, reaches 40-51 / 26-29;
* above that, BLAS, whose cache blocking wins on the biggest products.

The weight gradients' one product over all steps (``mm_tn``, a long inner
dimension) is BLAS's at every size: faster than the loops with the transposes
they would need (53 / 28 against 49 / 20 GMAC/s at the medium size; 1.4x-2x at
the seed's).
"""

import numpy as np

from ._jit import jit

SMALL = 32_768
BLOCKED = 32  # inner dimension from which the 4x4-blocked loops win
LARGE = 1 << 27  # multiply-adds above which BLAS takes over (its cache blocking)


@jit(inline="always")
def _nt_row(A, B, C, i, j0, k):
    """``C[i, j0:] = A[i, :k] @ B[j0:, :k].T``: four dot products at a time
    sharing each load of ``A[i]``, vectorised along the inner dimension."""
    n = B.shape[0]
    zero = C.dtype.type(0)  # accumulate in C's precision (float32 stays float32)
    j = j0
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


@jit(inline="always")
def _nt_loops(A, B, C, k):
    """``C = A[:, :k] @ B[:, :k].T`` one row of ``C`` at a time (short inner dimensions)."""
    for i in range(A.shape[0]):
        _nt_row(A, B, C, i, 0, k)


@jit
def _nt_blocked(A, B, C, k):
    """``C = A[:, :k] @ B[:, :k].T`` in 4x4 blocks of ``C``: sixteen dot products share each
    load of four rows of ``A`` and four of ``B``, vectorised along the inner
    dimension. On the development machine's AVX-512 cores this runs at 40-80
    GMAC/s (float64/float32) on the per-step products, where SciPy's OpenBLAS
    (its Haswell kernels) gives 25-50."""
    m = A.shape[0]
    n = B.shape[0]
    m4, n4 = m - m % 4, n - n % 4
    zero = C.dtype.type(0)
    for i in range(0, m4, 4):
        for j in range(0, n4, 4):
            c00 = c01 = c02 = c03 = c10 = c11 = c12 = c13 = zero
            c20 = c21 = c22 = c23 = c30 = c31 = c32 = c33 = zero
            for q in range(k):
                a0, a1, a2, a3 = A[i, q], A[i + 1, q], A[i + 2, q], A[i + 3, q]
                b0, b1, b2, b3 = B[j, q], B[j + 1, q], B[j + 2, q], B[j + 3, q]
                c00 += a0 * b0
                c01 += a0 * b1
                c02 += a0 * b2
                c03 += a0 * b3
                c10 += a1 * b0
                c11 += a1 * b1
                c12 += a1 * b2
                c13 += a1 * b3
                c20 += a2 * b0
                c21 += a2 * b1
                c22 += a2 * b2
                c23 += a2 * b3
                c30 += a3 * b0
                c31 += a3 * b1
                c32 += a3 * b2
                c33 += a3 * b3
            C[i, j], C[i, j + 1], C[i, j + 2], C[i, j + 3] = c00, c01, c02, c03
            C[i + 1, j], C[i + 1, j + 1], C[i + 1, j + 2], C[i + 1, j + 3] = c10, c11, c12, c13
            C[i + 2, j], C[i + 2, j + 1], C[i + 2, j + 2], C[i + 2, j + 3] = c20, c21, c22, c23
            C[i + 3, j], C[i + 3, j + 1], C[i + 3, j + 2], C[i + 3, j + 3] = c30, c31, c32, c33
        for r in range(i, i + 4):  # the columns left over
            _nt_row(A, B, C, r, n4, k)
    for i in range(m4, m):  # the rows left over
        _nt_row(A, B, C, i, 0, k)


@jit(inline="always")
def mm_nt(A, B, C):
    """C = A @ B.T for C-contiguous A (m, k), B (n, k), C (m, n)."""
    mm_nt_k(A, B, C, A.shape[1])


@jit(inline="always")
def mm_nt_k(A, B, C, k):
    """``C = A[:, :k] @ B[:, :k].T``: the product over the first ``k`` columns of
    C-contiguous A (m, >= k) and B (n, >= k), without copying them.

    Inlined: as a call of its own from :func:`mm_nt` it made the seed's
    compiled training loop 45% slower (1.40 -> 2.1 s per run)."""
    m = A.shape[0]
    if k < BLOCKED:
        if m * k * B.shape[0] <= SMALL:
            _nt_loops(A, B, C, k)
            return
    elif m * k * B.shape[0] <= LARGE:
        _nt_blocked(A, B, C, k)
        return
    if k == A.shape[1] and k == B.shape[1]:
        np.dot(A, B.T, C)
    else:
        np.dot(np.ascontiguousarray(A[:, :k]), np.ascontiguousarray(B[:, :k]).T, C)


@jit(inline="always")
def mm_nn_rows(A, B, C):
    """``C = A @ B[:, :n]`` (``n = C.shape[1]``) for ``A`` (m, k) of any layout
    and C-contiguous ``B`` (k, >= n), as row updates ``C[i] += A[i, q] B[q]`` vectorised along
    the rows of ``B``: two rows of ``C`` and four of ``B`` at a time, so each
    load and store of ``C`` carries eight multiply-adds.

    For short inner dimensions, where dot products spend most of their time in
    remainder loops and reductions: 10 x 27 x 26 (the seed's per-step products)
    in 0.33 us float32 / 0.43 float64, against 0.51 / 0.52 for :func:`_nt_loops`
    (which would also need ``B`` transposed). Also a head's few outputs, where
    copies or a BLAS call would cost more than the arithmetic. Inlined, like
    :func:`mm_nt_k` (as a call of its own, the earlier form of these row
    updates slowed the seed's compiled training loop 45%).
    """
    m, k = A.shape
    n = C.shape[1]
    k4 = k - k % 4
    for i in range(0, m - 1, 2):
        for j in range(n):
            C[i, j] = 0.0
            C[i + 1, j] = 0.0
        for q in range(0, k4, 4):
            a0, a1, a2, a3 = A[i, q], A[i, q + 1], A[i, q + 2], A[i, q + 3]
            e0, e1, e2, e3 = A[i + 1, q], A[i + 1, q + 1], A[i + 1, q + 2], A[i + 1, q + 3]
            for j in range(n):
                b0, b1, b2, b3 = B[q, j], B[q + 1, j], B[q + 2, j], B[q + 3, j]
                C[i, j] += a0 * b0 + a1 * b1 + a2 * b2 + a3 * b3
                C[i + 1, j] += e0 * b0 + e1 * b1 + e2 * b2 + e3 * b3
        for q in range(k4, k):
            a, e = A[i, q], A[i + 1, q]
            for j in range(n):
                C[i, j] += a * B[q, j]
                C[i + 1, j] += e * B[q, j]
    if m % 2:  # the last row
        i = m - 1
        for j in range(n):
            C[i, j] = 0.0
        for q in range(0, k4, 4):
            a0, a1, a2, a3 = A[i, q], A[i, q + 1], A[i, q + 2], A[i, q + 3]
            for j in range(n):
                C[i, j] += a0 * B[q, j] + a1 * B[q + 1, j] + a2 * B[q + 2, j] + a3 * B[q + 3, j]
        for q in range(k4, k):
            a = A[i, q]
            for j in range(n):
                C[i, j] += a * B[q, j]


@jit(inline="always")
def mm_nn(A, B, C):
    """C = A @ B for C-contiguous A (m, k), B (k, n), C (m, n)."""
    m, k = A.shape
    n = B.shape[1]
    if m * k * n > SMALL:
        np.dot(A, B, C)
    elif k < 8:  # a short inner dimension (a head's few outputs)
        mm_nn_rows(A, B, C)
    else:
        _nt_loops(A, np.ascontiguousarray(B.T), C, k)


@jit(inline="always")
def mm_tn(A, B, C):
    """C = A.T @ B for C-contiguous A (k, m), B (k, n), C (m, n).

    BLAS, except for fewer than four rows of ``C`` (a head's few outputs):
    row updates. Both operands are read along their short rows here, so the
    loops above would need a transposed copy of each; BLAS was faster at every
    size measured, down to the seed's (26 x 27 from 20 rows: 1.05 against
    1.21 us in float64, 0.70 against 1.41 in float32).
    """
    if A.shape[1] >= 4:
        np.dot(A.T, B, C)
    else:
        mm_nn_rows(A.T, B, C)
