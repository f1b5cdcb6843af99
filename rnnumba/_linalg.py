"""Dense products for the kernels, and their work buffers.

Two forms vectorise well here:

* row updates, ``C[i] += A[i, q] B[q]``, vectorised along the rows of ``B``
  and ``C`` (:func:`mm_nn_blocked`, :func:`mm_tn_blocked`, :func:`mm_nn_rows`):
  no reductions, and four rows of ``C`` updated by four rows of ``B`` at a
  time give each load and store of ``C`` sixteen multiply-adds;
* dot products, ``C = A @ B.T`` with both operands streamed along their rows
  (:func:`mm_nt`, over the loops of :mod:`rnnumba._dots`): four at a time
  sharing each row of ``A`` for short inner dimensions, 4x4 blocks sharing
  four rows of each operand from ``BLOCKED`` on; each element of ``C`` ends
  in a horizontal sum of a vector register (eight instructions, against
  nine vector multiply-adds per element at an inner dimension of 144,
  float32).

On the development machine (AVX-512) both forms beat SciPy's OpenBLAS (with
the AVX2 ``Haswell`` kernels that machine's environment pins; see
``docs/engine.md``) at the cells' per-step and weight-gradient sizes, and the
row updates beat the dot products; the measurements are in
``benchmarks/RESULTS.md`` ("Measurements formerly in docstrings").

The cells use the row updates: per step through :func:`step_weights` and
:func:`mm_step` and :func:`mm_nn_blocked`, over all steps
:func:`mm_tn_blocked` (the weight gradients, in blocks of ``TN_BLOCK``
rows). Two per-step exceptions use dot products over ``W``'s rows: the
seed's small products, which would not repay a transposed copy, and outputs
of ``WIDE`` bytes a row or more (a large LSTM's four gates), where the row
updates' rows of ``C`` and ``B`` crowd L1 (see :func:`step_weights`). BPTT's
per-step product takes dot products over ``W^T`` where the gates outnumber
``[h; x]``'s columns (:func:`back_weights`), and the weight gradient runs along
the gates there (:func:`mm_tn_blocked`): row updates along a narrow ``[h; x]``
are slow. A per-step product above ``LARGE`` multiply-adds goes to BLAS, whose
cache blocking wins there.

On a CPU with AVX-512, dot products whose rows are four or more whole
512-bit registers (``rnnumba._dots.wide_rows``) run on those registers
(LLVM's tuning for these cores keeps numba's loops at 256 bits), 1.2-1.4x
faster than the row updates and than the 256-bit dot products, so the
per-step and BPTT products of such shapes take them (:func:`step_weights`,
:func:`back_weights`). Their operands start on cache lines (the engine
copies weights that do not, ``_rows.padded_weights``): a 512-bit load from
anywhere else straddles two, and the gain is gone.

The row updates' operands should start on a 64-byte boundary
(:func:`empty_aligned`): numba's own arrays are aligned to 32 bytes, and a
64-byte load or store that straddles two cache lines costs these loops a
large share of their speed.

GPU sibling: ``rnnumba.gpu.linalg`` (a tiled GEMM over strided views, column sums).
"""

import numpy as np

from ._dots import STRIP, STRIP_FROM, nt_blocked, nt_loops, wide_rows
from ._jit import jit

SMALL = 32_768
ALIGN = 64  # bytes: a cache line, one AVX-512 register
PAGE_FROM = 512  # elements of an empty_aligned array from which it starts on a 4 KiB boundary
TN_BLOCK = 128  # rows of the operands of mm_tn_blocked per pass over C
BLOCKED = 32  # inner dimension from which the 4x4-blocked loops win
LARGE = 1 << 27  # multiply-adds above which BLAS takes over (its cache blocking)
WIDE = 4096  # bytes of a per-step output row from which dot products beat row updates


@jit(inline="always")
def mm_nt(A, B, C):
    """``C = A @ B.T`` for C-contiguous A (m, k), B (n, k), C (m, n).

    ``_dots.nt_loops`` for short inner dimensions, ``_dots.nt_blocked`` up to
    ``LARGE`` multiply-adds, BLAS above. Inlined: as a call of its own (then a
    two-level dispatch) it made the seed's compiled training loop much slower.
    """
    m, k = A.shape
    if k < BLOCKED:
        if m * k * B.shape[0] <= SMALL:
            nt_loops(A, B, C, k)
            return
    elif m * k * B.shape[0] <= LARGE:
        nt_blocked(A, B, C, k)
        return
    np.dot(A, B.T, C)


@jit(inline="always")
def mm_nn_rows(A, B, C):
    """``C = A @ B[:, :n]`` (``n = C.shape[1]``) as row updates ``C[i] += A[i, q] B[q]``.

    ``A`` (m, k) may have any layout, ``B`` (k, >= n) is C-contiguous. The
    updates are vectorised along the rows of ``B``: two rows of ``C`` and four
    of ``B`` at a time, so each load and store of ``C`` carries eight
    multiply-adds.

    For short inner dimensions, where dot products spend most of their time in
    remainder loops and reductions: faster than ``_dots.nt_loops`` on the seed's
    per-step products (which would also need ``B`` transposed). Also a head's
    few outputs, where copies or a BLAS call would cost more than the
    arithmetic. Inlined, like :func:`mm_nt` (as a call of its own, the earlier
    form of these row updates slowed the seed's compiled training loop).
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
    """``C = A @ B`` for C-contiguous A (m, k), B (k, n), C (m, n).

    BLAS above ``SMALL`` multiply-adds; below it :func:`mm_nn_rows` for an inner
    dimension under 8, else ``_dots.nt_loops`` over a transposed copy of ``B``.
    """
    m, k = A.shape
    n = B.shape[1]
    if m * k * n > SMALL:
        np.dot(A, B, C)
    elif k < 8:  # a short inner dimension (a head's few outputs)
        mm_nn_rows(A, B, C)
    else:
        nt_loops(A, np.ascontiguousarray(B.T), C, k)


@jit(inline="always")
def mm_tn(A, B, C):
    """``C = A.T @ B`` for C-contiguous A (k, m), B (k, n), C (m, n).

    BLAS, except for fewer than four rows of ``C`` (a head's few outputs):
    row updates. For the heads; the cells' weight gradients use
    :func:`mm_tn_blocked`, which is faster than BLAS's AVX2 kernels at every
    size measured.
    """
    if A.shape[1] >= 4:
        np.dot(A.T, B, C)
    else:
        mm_nn_rows(A.T, B, C)


@jit
def empty_aligned(rows, cols, dtype):
    """Return an uninitialised (rows, cols) array whose data start on an ``ALIGN``-byte boundary.

    numba aligns its arrays to 32 bytes, so half of them start in the middle
    of a cache line and every 64-byte load or store from them straddles two,
    which slows the row updates of :func:`mm_nn_blocked` markedly on a
    misaligned ``C`` or ``B``. Arrays of ``PAGE_FROM`` elements or more start
    on a 4 KiB boundary: the row updates also run ~1.3x slower where ``B``
    starts one cache line before ``C`` modulo 4 KiB (its loads then alias
    ``C``'s stores), and buffers placed by the allocator met that by chance.
    """
    size = rows * cols
    page = size >= PAGE_FROM
    buf = np.empty(size + (1024 if page else ALIGN), dtype=dtype)  # room for the skip
    align = 4096 if page else ALIGN
    skip = (align - buf.ctypes.data % align) % align // buf.itemsize
    return buf[skip : skip + size].reshape(rows, cols)


@jit
def empty_aligned3(d0, d1, d2, dtype):
    """Return an uninitialised (d0, d1, d2) array placed as :func:`empty_aligned` places its own."""
    return empty_aligned(d0 * d1, d2, dtype).reshape(d0, d1, d2)


@jit
def zeros_aligned3(d0, d1, d2, dtype):
    """Return a (d0, d1, d2) array of zeros placed as :func:`empty_aligned` places its own."""
    Z = empty_aligned(d0 * d1, d2, dtype)
    for i in range(d0 * d1):
        for j in range(d2):
            Z[i, j] = 0.0
    return Z.reshape(d0, d1, d2)


@jit(inline="always")
def transposed(W):
    """``W.T`` as a new C-contiguous, aligned array (see :func:`empty_aligned`)."""
    WT = empty_aligned(W.shape[1], W.shape[0], W.dtype)
    for i in range(W.shape[0]):
        for j in range(W.shape[1]):
            WT[j, i] = W[i, j]
    return WT


@jit
def _nn_blocked(A, B, C, accumulate):
    """``C = A @ B[:, :n]``, or ``C += A @ B[:, :n]`` if ``accumulate``, as row updates.

    Four rows of ``C`` by four rows of ``B`` at a time, so each load and store
    of ``C`` carries sixteen multiply-adds, vectorised along the rows of ``B``
    and ``C`` (no reductions). ``A`` may have any layout: its entries are read
    one at a time. A ``B`` of more than ``STRIP_FROM`` bytes is taken in
    strips of its rows (``STRIP`` bytes), each used by every block of four
    rows of ``A`` while it is in L2; each entry of ``C`` adds its terms in the
    same order either way (:func:`_nn_range`).
    """
    k, n = A.shape[1], C.shape[1]
    strip = k if k * n * B.itemsize <= STRIP_FROM else max(4, STRIP // (n * B.itemsize) // 4 * 4)
    for q0 in range(0, max(k, 1), max(strip, 1)):  # (k = 0: zeros, unless accumulating)
        _nn_range(A, B, C, accumulate or q0 > 0, q0, min(k, q0 + strip))


@jit(inline="always")
def _nn_range(A, B, C, accumulate, q0, q1):
    """``C = A[:, q0:q1] @ B[q0:q1, :n]``, or ``C +=`` that if ``accumulate`` (see :func:`_nn_blocked`).

    Each entry of ``C`` adds its terms in the order of ``q``, so consecutive
    ranges ``q0:q1`` add up to the bits of one range.
    """
    m = A.shape[0]
    n = C.shape[1]
    q4 = q1 - (q1 - q0) % 4
    for i in range(0, m, 4):
        rows = min(4, m - i)
        if not accumulate:
            for r in range(i, i + rows):
                for j in range(n):
                    C[r, j] = 0.0
        if rows < 4:  # the rows left over, one at a time
            for r in range(i, m):
                for q in range(q0, q1):
                    a = A[r, q]
                    for j in range(n):
                        C[r, j] += a * B[q, j]
            break
        for q in range(q0, q4, 4):
            a0, a1, a2, a3 = A[i, q], A[i, q + 1], A[i, q + 2], A[i, q + 3]
            e0, e1, e2, e3 = A[i + 1, q], A[i + 1, q + 1], A[i + 1, q + 2], A[i + 1, q + 3]
            f0, f1, f2, f3 = A[i + 2, q], A[i + 2, q + 1], A[i + 2, q + 2], A[i + 2, q + 3]
            g0, g1, g2, g3 = A[i + 3, q], A[i + 3, q + 1], A[i + 3, q + 2], A[i + 3, q + 3]
            for j in range(n):
                b0, b1, b2, b3 = B[q, j], B[q + 1, j], B[q + 2, j], B[q + 3, j]
                C[i, j] += a0 * b0 + a1 * b1 + a2 * b2 + a3 * b3
                C[i + 1, j] += e0 * b0 + e1 * b1 + e2 * b2 + e3 * b3
                C[i + 2, j] += f0 * b0 + f1 * b1 + f2 * b2 + f3 * b3
                C[i + 3, j] += g0 * b0 + g1 * b1 + g2 * b2 + g3 * b3
        for q in range(q4, q1):
            a, e, f, g = A[i, q], A[i + 1, q], A[i + 2, q], A[i + 3, q]
            for j in range(n):
                C[i, j] += a * B[q, j]
                C[i + 1, j] += e * B[q, j]
                C[i + 2, j] += f * B[q, j]
                C[i + 3, j] += g * B[q, j]


@jit(inline="always")
def mm_nn_blocked(A, B, C):
    """``C = A @ B[:, :n]`` (``n = C.shape[1]``), by size.

    ``A`` (m, k) of any layout, C-contiguous ``B`` (k, >= n) and ``C``:
    :func:`mm_nn_rows` up to ``SMALL`` multiply-adds (a call of its own costs
    more than the seed's products gain), :func:`_nn_blocked` up to ``LARGE``,
    BLAS above.
    """
    n = C.shape[1]
    work = A.shape[0] * A.shape[1] * n
    if work <= SMALL:
        mm_nn_rows(A, B, C)
    elif work <= LARGE:
        _nn_blocked(A, B, C, False)
    else:
        np.dot(A, np.ascontiguousarray(B[:, :n]), C)


@jit(inline="always")
def step_weights(W, n):
    """Return what :func:`mm_step` multiplies ``n`` rows by ``W^T`` with, made once per chunk.

    ``W^T``, C-contiguous and aligned, for row updates; or an empty array,
    for dot products over the rows of ``W``, where the product is at most
    ``SMALL`` multiply-adds (the seed's: too small to repay the copy) or its
    output rows (``W``'s rows) take ``WIDE`` bytes or more: the row updates'
    four rows of the output and four of ``W^T`` then fill L1 (and at
    multiples of 4 KiB map to the same cache sets), while the dot products
    walk both operands along the shorter inner dimension; or where they run
    on 512-bit registers (``_dots.wide_rows``: ``K`` fills four or more).
    """
    G, K = W.shape
    if n * G * K <= SMALL or G * W.itemsize >= WIDE or wide_rows(K, W.itemsize):
        return W[:0]
    return transposed(W)


@jit
def mm_step(A, W, WT, C):
    """``C = A @ W.T`` for a cell's per-step product, ``WT`` from :func:`step_weights`.

    A function of its own, not inlined: compiled once per array type instead
    of once per call site (the GRU has two per step), and no slower.
    """
    if WT.shape[0] == 0:
        mm_nt(A, W, C)
    else:
        mm_nn_blocked(A, WT, C)


@jit(inline="always")
def back_weights(W, n):
    """Return what :func:`mm_back` multiplies ``n`` rows by ``W`` with, made once per chunk.

    ``W^T``, for dot products along its rows, where the inner dimension
    (``W``'s rows, the gates) is ``BLOCKED`` or more and either the product
    is at most ``SMALL`` multiply-adds (the seed-sized LSTM's training step
    was slower with row updates) or it exceeds the outputs (``W``'s columns)
    and ``W`` fits in L2 (``STRIP_FROM``): row updates along a narrow output
    (an LSTM's or a GRU's ``[h; x]``, 33 wide at hidden 32 with one input)
    spend much of their time on loop overhead and the ragged end, and the dot
    products run 1.3-2.2x faster; larger weights keep the row updates, in
    strips (the large LSTM's training step was 3-5 % slower with the dot
    products, 512-bit ones included: a transposed copy of 4.7 MB per block of
    rows). Also where the gates fill four or more 512-bit registers
    (``_dots.wide_rows``) and ``W`` fits in L2. Else an empty array (row
    updates over ``W``'s rows).
    """
    G, K = W.shape
    in_l2 = G * K * W.itemsize <= STRIP_FROM
    if G >= BLOCKED and (n * G * K <= SMALL or ((G > K or wide_rows(G, W.itemsize)) and in_l2)):
        return transposed(W)
    return W[:0]


@jit
def mm_back(A, W, WT, C):
    """``C = A @ W[:, :n]`` (``n = C.shape[1]``) for a cell's per-step BPTT product.

    ``WT`` comes from :func:`back_weights`. Not inlined, as :func:`mm_step`.
    """
    if WT.shape[0] == 0:
        mm_nn_blocked(A, W, C)
    else:
        mm_nt(A, WT[: C.shape[1]], C)


@jit
def mm_tn_blocked(A, B, C):
    """``C = A.T @ B`` for C-contiguous ``A`` (k, m), ``B`` (k, n), ``C`` (m, n); ``k`` may be 0.

    :func:`_nn_blocked` row updates from ``TN_BLOCK`` rows of ``A`` and ``B``
    at a time, which stay in cache while every row of ``C`` is updated from
    them (72 KiB at the medium size, float32). Block sizes from 32 to 256 rows
    differed little; 128 was the best or near it in every case measured.

    Where ``C`` has more rows than columns and a row of ``C^T`` takes under
    ``WIDE`` bytes (an LSTM's or a GRU's gates by ``[h; x]``), the updates
    run along the longer side: ``C^T = B^T A``, then copied out; up to 1.8x
    faster than row updates along a narrow ``[h; x]``. Wider rows crowd L1,
    as in :func:`step_weights`.
    """
    m, n = C.shape
    if m > n and m * C.itemsize < WIDE:  # narrow rows: C^T = B^T A, whose rows are longer
        CT = empty_aligned(n, m, C.dtype)
        _tn_blocked(B, A, CT)
        for i in range(m):
            for j in range(n):
                C[i, j] = CT[j, i]
    else:
        _tn_blocked(A, B, C)


@jit(inline="always")
def _tn_blocked(A, B, C):
    """``C = A.T @ B`` in blocks of ``TN_BLOCK`` rows (see :func:`mm_tn_blocked`)."""
    if A.shape[0] == 0:
        for i in range(C.shape[0]):
            for j in range(C.shape[1]):
                C[i, j] = 0.0
    # ``q > 0`` is a run-time flag: literal True/False would compile two versions
    for q in range(0, A.shape[0], TN_BLOCK):
        _nn_blocked(A[q : q + TN_BLOCK].T, B[q : q + TN_BLOCK], C, q > 0)
