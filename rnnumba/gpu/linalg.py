"""Dense building blocks on the device.

A tiled GEMM over strided views of flat arrays, deterministic column sums and
full sums, fills.

Determinism: every output element is summed by one thread in a fixed ``k``
order; split-K partial products and column-sum partials are written to
scratch and added in split order by a second kernel. No atomics anywhere, so
a result depends only on the shapes, never on scheduling.

CPU siblings: :mod:`rnnumba._linalg` (small products: ``mm_nt``, ``mm_nn``,
``mm_tn_blocked``, ...) and NumPy/BLAS.
"""

import numpy as np

from ._device import cuda, simulator
from ._registry import I64, builder, compiled, nbtype, vec

# numba.cuda, bound when the first kernel is built; a module global (not a
# closure variable) so that the CUDA simulator can swap it for its fake module
cu = None


def _bind():
    """Bind the module global ``cu`` to ``numba.cuda`` (see the comment above)."""
    global cu
    cu = cuda()


# production tiles: 64x64 outputs per block, k-steps of 16, 4x4 per thread
TILE = (64, 64, 16, 4)
# small tiles for the simulator (the same code, 4 threads a block; each block
# barrier costs the simulator milliseconds, so k-steps stay long)
SIM_TILE = (8, 8, 8, 4)
BLOCK = 256  # threads of the 1-D kernels
SIM_BLOCK = 8


def tile():
    """``(TM, TN, TK, R)`` of the GEMM: :data:`TILE`, or :data:`SIM_TILE` in the simulator."""
    return SIM_TILE if simulator() else TILE


def block():
    """Threads per block of the 1-D kernels: :data:`BLOCK`, or :data:`SIM_BLOCK` in the simulator."""
    return SIM_BLOCK if simulator() else BLOCK


def dtkey(dtype):
    """``dtype``'s name (``"float32"``, ``"float64"``), the dtype part of a kernel's key."""
    return np.dtype(dtype).name


def _cdiv(a, b):
    """``ceil(a / b)`` for integers."""
    return -(-a // b)


def grid1(n):
    """(blocks, threads) covering ``n`` items with the 1-D block size."""
    nb = block()
    return max(1, _cdiv(n, nb)), nb


# --------------------------------------------------------------------------- GEMM
@builder("gemm")
def build_gemm(dt, TM, TN, TK, R):
    """``C[z] (+)= A[:, chunk z] @ B[chunk z, :] (+ bias)`` on strided views.

    ``A[i, k] = A[a_off + i*a_si + k*a_sk]``, ``B[k, j] = B[b_off + k*b_sk + j*b_sj]``,
    ``C[i, j] = C[c_off + z*c_sz + i*c_si + j*c_sj]``; ``bias[bias_off + j]``
    is added when ``bias_off >= 0``; ``accumulate`` adds to C instead of
    overwriting it. Grid: (ceil(N/TN), ceil(M/TM), splits), (TM/R)*(TN/R) threads.

    CPU siblings: ``rnnumba._linalg.mm_nt`` / ``mm_nn`` / ``mm_tn_blocked``
    (and BLAS), which take contiguous operands instead of strided views.
    """
    _bind()
    T = nbtype(dt)
    TY, TX = TM // R, TN // R
    NT = TY * TX
    LA = _cdiv(TM * TK, NT)
    LB = _cdiv(TK * TN, NT)
    zero = np.dtype(dt).type(0.0)
    SHAPE_A = (TK, TM + 1)  # +1: no bank conflicts on transposing stores
    SHAPE_B = (TK, TN + 1)

    def gemm(
        A,
        a_off,
        a_si,
        a_sk,
        B,
        b_off,
        b_sk,
        b_sj,
        C,
        c_off,
        c_si,
        c_sj,
        c_sz,
        M,
        N,
        K,
        k_chunk,
        accumulate,
        bias,
        bias_off,
    ):
        sA = cu.shared.array(SHAPE_A, T)
        sB = cu.shared.array(SHAPE_B, T)
        acc = cu.local.array((R, R), T)
        tid = cu.threadIdx.x
        ty = tid // TX
        tx = tid - ty * TX
        i0 = cu.blockIdx.y * TM
        j0 = cu.blockIdx.x * TN
        z = cu.blockIdx.z
        k_lo = z * k_chunk
        k_hi = min(K, k_lo + k_chunk)
        for a in range(R):
            for b in range(R):
                acc[a, b] = zero
        for kt in range(k_lo, k_hi, TK):
            for p in range(LA):
                e = tid + p * NT
                if e < TM * TK:
                    if a_sk == 1:  # k contiguous: consecutive threads walk along k
                        ii = e // TK
                        kk = e - ii * TK
                    else:
                        kk = e // TM
                        ii = e - kk * TM
                    v = zero
                    if i0 + ii < M and kt + kk < k_hi:
                        v = A[a_off + (i0 + ii) * a_si + (kt + kk) * a_sk]
                    sA[kk, ii] = v
            for p in range(LB):
                e = tid + p * NT
                if e < TK * TN:
                    if b_sj == 1:  # j contiguous: consecutive threads walk along j
                        kk = e // TN
                        jj = e - kk * TN
                    else:
                        jj = e // TK
                        kk = e - jj * TK
                    v = zero
                    if j0 + jj < N and kt + kk < k_hi:
                        v = B[b_off + (kt + kk) * b_sk + (j0 + jj) * b_sj]
                    sB[kk, jj] = v
            cu.syncthreads()
            for kk in range(TK):
                for a in range(R):
                    av = sA[kk, ty + TY * a]
                    for b in range(R):
                        acc[a, b] += av * sB[kk, tx + TX * b]
            cu.syncthreads()
        for a in range(R):
            i = i0 + ty + TY * a
            if i < M:
                for b in range(R):
                    j = j0 + tx + TX * b
                    if j < N:
                        idx = c_off + z * c_sz + i * c_si + j * c_sj
                        v = acc[a, b]
                        if bias_off >= 0:
                            v += bias[bias_off + j]
                        if accumulate:
                            v = C[idx] + v
                        C[idx] = v

    V = vec(dt)
    sig = (V, I64, I64, I64, V, I64, I64, I64, V, I64, I64, I64, I64, I64, I64, I64, I64, I64, V, I64)
    return gemm, sig


@builder("sum_splits")
def build_sum_splits(dt):
    """``C[i, j] (+)= sum_z S[z, i, j]`` in split order."""
    _bind()

    def sum_splits(S, nsplit, M, N, C, c_off, c_si, c_sj, accumulate):
        e = cu.grid(1)
        if e < M * N:
            i = e // N
            j = e - i * N
            s = S[e]
            for z in range(1, nsplit):
                s += S[z * M * N + e]
            idx = c_off + i * c_si + j * c_sj
            if accumulate:
                s = C[idx] + s
            C[idx] = s

    V = vec(dt)
    return sum_splits, (V, I64, I64, I64, V, I64, I64, I64, I64)


def splits(M, N, K):
    """``(n, k_chunk)``: how a product's K is cut (a function of shapes only).

    Enough chunks that about two blocks per multiprocessor work, never a chunk
    under 512 (the simulator: 8).
    """
    TM, TN, TK, _ = tile()
    tiles = _cdiv(M, TM) * _cdiv(N, TN)
    min_k, target = (8, 4) if simulator() else (512, 264)
    n = max(1, min(64, K // min_k, _cdiv(target, tiles)))
    k_chunk = _cdiv(_cdiv(K, n), TK) * TK
    return _cdiv(K, k_chunk), k_chunk


def gemm(A, B, C, M, N, K, accumulate=False, bias=None, scratch=None):
    """Launch ``C (+)= A @ B (+ bias)`` for M x K by K x N on strided views.

    ``A``, ``B``, ``C`` are ``(array, offset, row_stride, column_stride)``:
    ``A[i, k] = A[0][A[1] + i*A[2] + k*A[3]]`` and so on; ``bias`` is
    ``(array, offset)``, added to every row. ``scratch(n)`` returns a device
    array of at least ``n`` elements; given it (and no bias), long reductions
    are split over K into partials that :func:`build_sum_splits` adds in a
    fixed order.
    """
    if M <= 0 or N <= 0:
        return
    dt = C[0].dtype
    TM, TN, TK, R = tile()
    kern = compiled("gemm", dtkey(dt), TM, TN, TK, R)
    nthreads = (TM // R) * (TN // R)
    if scratch is None or bias is not None:
        nsplit, k_chunk = 1, max(K, 1)
    else:
        nsplit, k_chunk = splits(M, N, K)
    grid = (_cdiv(N, TN), _cdiv(M, TM), nsplit)
    if nsplit == 1:
        bias_arr, bias_off = (C[0], -1) if bias is None else bias
        kern[grid, nthreads](*A, *B, *C, 0, M, N, K, k_chunk, int(accumulate), bias_arr, bias_off)
        return
    S = scratch(nsplit * M * N)
    kern[grid, nthreads](*A, *B, S, 0, N, 1, M * N, M, N, K, k_chunk, 0, S, -1)
    compiled("sum_splits", dtkey(dt))[grid1(M * N)](S, nsplit, M, N, *C, int(accumulate))


# --------------------------------------------------------------------------- column sums
@builder("colsum_partial")
def build_colsum_partial(dt):
    """``P[c, j] = sum_{k in chunk c} A[k, j] (* B[k, j])`` (k in order).

    CPU sibling: the bias (and peephole) gradient loops of the cells'
    ``backward``, ``db = sum_t da_t``.
    """
    _bind()
    zero = np.dtype(dt).type(0.0)

    def colsum_partial(A, a_off, a_ld, B, b_off, b_ld, use_b, K, M, k_chunk, P):
        j = cu.blockIdx.x * cu.blockDim.x + cu.threadIdx.x
        ch = cu.blockIdx.y
        if j < M:
            s = zero
            for k in range(ch * k_chunk, min(K, (ch + 1) * k_chunk)):
                v = A[a_off + k * a_ld + j]
                if use_b:
                    v *= B[b_off + k * b_ld + j]
                s += v
            P[ch * M + j] = s

    V = vec(dt)
    return colsum_partial, (V, I64, I64, V, I64, I64, I64, I64, I64, I64, V)


@builder("colsum_final")
def build_colsum_final(dt):
    """``out[out_off + j] (+)= sum_c P[c, j]``, the chunks' partials added in chunk order."""
    _bind()

    def colsum_final(P, nchunk, M, out, out_off, accumulate):
        j = cu.grid(1)
        if j < M:
            s = P[j]
            for ch in range(1, nchunk):
                s += P[ch * M + j]
            if accumulate:
                s = out[out_off + j] + s
            out[out_off + j] = s

    V = vec(dt)
    return colsum_final, (V, I64, I64, V, I64, I64)


def colsum(A, a_off, a_ld, K, M, out, out_off, B=None, b_off=0, b_ld=0, accumulate=False, scratch=None):
    """``out[out_off + j] (+)= sum_k A[k, j] * (B[k, j] if B else 1)``, k < K, j < M.

    ``A[k, j] = A[a_off + k*a_ld + j]``; summed in chunks of K added in order.
    """
    dt = out.dtype
    nb = block()
    chunk_len = 8 if simulator() else 256
    nchunk = max(1, min(256, _cdiv(K, chunk_len)))
    k_chunk = max(1, _cdiv(K, nchunk))
    P = scratch(nchunk * M)
    compiled("colsum_partial", dtkey(dt))[(_cdiv(M, nb), nchunk), nb](
        A, a_off, a_ld, A if B is None else B, b_off, b_ld, int(B is not None), K, M, k_chunk, P
    )
    compiled("colsum_final", dtkey(dt))[grid1(M)](P, nchunk, M, out, out_off, int(accumulate))


# --------------------------------------------------------------------------- full sums, fills
@builder("sum_all")
def build_sum_all(dt, NB):
    """One block of NB threads: ``out[idx] = scale * sum(x[off:off+n] (**2))``.

    Strided per thread, then a fixed tree in shared memory.
    """
    _bind()
    T = nbtype(dt)
    zero = np.dtype(dt).type(0.0)

    def sum_all(x, off, n, squares, scale, out, idx):
        sh = cu.shared.array(NB, T)
        t = cu.threadIdx.x
        s = zero
        for k in range(t, n, NB):
            v = x[off + k]
            if squares:
                v *= v
            s += v
        sh[t] = s
        cu.syncthreads()
        step = NB // 2
        while step > 0:
            if t < step:
                sh[t] += sh[t + step]
            cu.syncthreads()
            step //= 2
        if t == 0:
            out[idx] = sh[0] * scale

    V = vec(dt)
    return sum_all, (V, I64, I64, I64, nbtype(dt), V, I64)


def sum_all(x, off, n, out, idx, scale=1.0, squares=False):
    """Launch ``sum_all``: ``out[idx] = scale * sum(x[off:off+n])`` (of squares if ``squares``), one block."""
    nb = block()
    compiled("sum_all", dtkey(x.dtype), nb)[1, nb](x, off, n, int(squares), x.dtype.type(scale), out, idx)


@builder("fill")
def build_fill(dt):
    """``x[off + k] = value`` for ``k < n``, one thread per entry."""
    _bind()

    def fill(x, off, n, value):
        k = cu.grid(1)
        if k < n:
            x[off + k] = value

    return fill, (vec(dt), I64, I64, nbtype(dt))


def fill(x, off, n, value=0.0):
    """Launch ``fill``: ``x[off:off+n] = value`` (nothing for ``n <= 0``)."""
    if n <= 0:
        return
    compiled("fill", dtkey(x.dtype))[grid1(n)](x, off, n, x.dtype.type(value))


def variants():
    """``[(name, key), ...]``: this module's kernels in both dtypes, production tiles."""
    out = []
    for dt in ("float32", "float64"):
        out.append(("gemm", (dt,) + TILE))
        out += [(name, (dt,)) for name in ("sum_splits", "colsum_partial", "colsum_final", "fill")]
        out.append(("sum_all", (dt, BLOCK)))
    return out
