"""Dot products ``C = A @ B.T`` for the kernels, on 256- or 512-bit registers.

Both operands are streamed along their rows: four dot products at a time
share each row of ``A`` for short inner dimensions (:func:`nt_loops`), 4x4
blocks share four rows of each operand from ``_linalg.BLOCKED`` on
(:func:`nt_blocked`); each element of ``C`` ends in a horizontal sum of a
vector register. :mod:`rnnumba._linalg` chooses between these, its row
updates and BLAS (``mm_nt``, ``step_weights``, ``back_weights``).

LLVM tunes for Intel's AVX-512 cores with 256-bit vectors (older ones lower
their clock for 512-bit code), and numba has no per-function setting, so
every compiled loop runs at half the register width. On a CPU with AVX-512
(``VECTORS_512``), the 4x4 blocks whose rows are four or more whole 512-bit
registers (:func:`wide_rows`) run from a copy compiled with 512-bit vectors
(:func:`_nt_blocked_wide`, :func:`wide_vectors`): 1.2-1.4x the
multiply-adds per second of the 256-bit loops, if their operands start on
cache lines (a 512-bit load from anywhere else straddles two). A ragged
inner dimension leaves up to 15 float32 columns a row to a scalar loop of
sixteen sums, which made some products 2x slower: those keep 256 bits.
"""

import llvmlite.binding as llvm
from numba.core import config, types
from numba.extending import intrinsic, overload

from ._jit import jit

REGISTER = 64  # bytes: one 512-bit register
# weights of more than STRIP_FROM bytes (an L2 cache: 2 MiB a core on the development
# machine) are walked in strips of STRIP bytes, which stay in L2 while every block of rows
# uses them, instead of coming from L3 once per block of rows; weights that fit in L2 go
# whole (strips would then only read and write the result once per strip)
STRIP_FROM = 1 << 21
STRIP = 1 << 18
# does numba compile for AVX-512 (its CPU features: the host's, or NUMBA_CPU_FEATURES)?
VECTORS_512 = "+avx512f" in (config.CPU_FEATURES or llvm.get_host_cpu_features().flatten()).split(",")


@jit(inline="always")
def _nt_row(A, B, C, i, j0, k):
    """``C[i, j0:] = A[i, :k] @ B[j0:, :k].T``: one row of ``C``.

    Four dot products at a time share each load of ``A[i]``, vectorised along
    the inner dimension.
    """
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
def nt_loops(A, B, C, k):
    """``C = A[:, :k] @ B[:, :k].T`` one row of ``C`` at a time (short inner dimensions)."""
    for i in range(A.shape[0]):
        _nt_row(A, B, C, i, 0, k)


def wide_vectors():
    """Let LLVM vectorise the calling function with 512-bit registers, where the CPU has them.

    LLVM tunes for Intel's AVX-512 cores with 256-bit vectors (older ones
    lower their clock for 512-bit code), and numba has no per-function
    setting; the two function attributes that :func:`_mark_wide` sets are one
    (clang's ``-mprefer-vector-width=512`` for one function; the second keeps
    the registers wide where LLVM inlines the function into a caller). On a
    CPU without AVX-512 they change nothing. (Called from compiled code; as
    plain Python it does nothing.)
    """


@overload(wide_vectors, inline="always")
def _wide_vectors():
    """Compiled :func:`wide_vectors`: inlined, so that the intrinsic marks its caller."""
    return lambda: _mark_wide()


@intrinsic
def _mark_wide(typingctx):
    """Set the attributes of :func:`wide_vectors` on the function being compiled."""

    def codegen(context, builder, signature, args):
        for attribute in ('"prefer-vector-width"="512"', '"min-legal-vector-width"="512"'):
            set.add(builder.function.attributes, attribute)  # llvmlite's add() knows no string attributes
        return context.get_dummy_value()

    return types.none(), codegen


@jit(inline="always")
def wide_rows(k, itemsize):
    """Whether dot products of ``k`` terms take :func:`_nt_blocked_wide`.

    On a CPU with AVX-512, for rows of whole 64-byte registers, four or more
    (two float32 registers a row ran slower than the row updates); chosen by
    shape only, so a product's bits never depend on where its operands lie.
    """
    return VECTORS_512 and k * itemsize >= 4 * REGISTER and k * itemsize % REGISTER == 0


@jit
def _nt_blocked(A, B, C, k):
    """``C = A[:, :k] @ B[:, :k].T`` (:func:`_nt_blocks`), vectorised as LLVM tunes for the CPU."""
    _nt_blocks(A, B, C, k)


@jit
def _nt_blocked_wide(A, B, C, k):
    """:func:`_nt_blocked` with 512-bit vectors (:func:`wide_vectors`).

    For rows of whole 64-byte registers (``k`` float32 a multiple of 16):
    1.2-1.3x the multiply-adds per second of :func:`_nt_blocked` on an
    AVX-512 core. A ragged ``k`` leaves up to 15 float32 columns to a scalar
    loop of sixteen sums, which made some products 2x slower.
    """
    wide_vectors()
    _nt_blocks(A, B, C, k)


@jit(inline="always")
def _nt_blocks(A, B, C, k):
    """``C = A[:, :k] @ B[:, :k].T`` in 4x4 blocks of ``C``.

    Sixteen dot products share each load of four rows of ``A`` and four of
    ``B``, vectorised along the inner dimension. A ``B`` of more than
    ``STRIP_FROM`` bytes is taken in strips of its rows (``STRIP`` bytes),
    each used by every block of ``A``'s rows while it is in L2; the order of
    the strips changes no sum.
    """
    m = A.shape[0]
    n = B.shape[0]
    m4, n4 = m - m % 4, n - n % 4
    zero = C.dtype.type(0)
    strip = max(4, n4 if n * k * B.itemsize <= STRIP_FROM else STRIP // (k * B.itemsize) // 4 * 4)
    for j0 in range(0, n4, strip):
        for i in range(0, m4, 4):
            for j in range(j0, min(n4, j0 + strip), 4):
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
    for r in range(m4):  # the columns left over
        _nt_row(A, B, C, r, n4, k)
    for i in range(m4, m):  # the rows left over
        _nt_row(A, B, C, i, 0, k)


@jit(inline="always")
def nt_blocked(A, B, C, k):
    """``C = A[:, :k] @ B[:, :k].T`` in 4x4 blocks, 512-bit or 256-bit.

    :func:`_nt_blocked_wide` where :func:`wide_rows`, else
    :func:`_nt_blocked`: by shape alone, so the same bits on every call.
    """
    if wide_rows(k, B.itemsize):
        _nt_blocked_wide(A, B, C, k)
    else:
        _nt_blocked(A, B, C, k)
