"""How a batch is cut into blocks of samples for the parallel kernels, and summed back.

Both the CPU backend's calls (:mod:`rnnumba.backends.cpu`) and the compiled
epoch (:class:`rnnumba.solvers.FirstOrder`) cut by these rules, which depend
on the batch's shape only, so results are the same on any thread count.
"""

from ._jit import jit
from .layout import GATES

MAX_CHUNKS = 64

# OpenBLAS runs a product of fewer multiply-adds than this on the calling
# thread (SMP_THRESHOLD_MIN * GEMM_MULTITHREAD_THRESHOLD in its interface/gemm.c)
OPENBLAS_ONE_THREAD = 65536 * 4


def blas_may_thread(layout, N, T, chunks):
    """Tell whether a pass over (N, T) batches in ``chunks`` blocks may start OpenBLAS's threads.

    True when any of its products is big enough for OpenBLAS to start its own
    threads; if none is, pinning BLAS to one thread (~1 us of ctypes calls) is
    skipped.
    """
    L = layout
    HD = L.hidden * L.directions
    G = GATES[L.cell]
    rows = -(-N // chunks) * T  # every step of one block, as in the weight gradients
    widest = max(G * L.hidden * (L.hidden + max(L.input_size, HD)), HD * L.output_size)
    return rows * widest >= OPENBLAS_ONE_THREAD


# a block's work buffer above this is mapped afresh on every call (glibc's largest mmap
# threshold, set by rnnumba._heap) and faulted in page by page
BLOCK_BUFFER_BYTES = 32 << 20


def n_chunks(N, hidden, row_bytes=()):
    """How many blocks of samples a batch is cut into.

    A function of the batch shape only, never of the thread count, so results
    are bitwise the same on any number of threads. Blocks hold at least 16
    samples (a parallel region costs more than a smaller block's work) and
    more for wide layers, so that the per-step products stay big enough to
    run near the machine's peak; except that a batch of 16 to 31 is halved
    (two blocks of the seed's batch of 20 beat one on two threads).

    ``row_bytes``: one sample's bytes in each of a block's big work buffers
    (:func:`rnnumba.memory.row_bytes`). A block whose buffers do not all stay
    under :data:`BLOCK_BUFFER_BYTES` (mapped afresh, and faulted in page by
    page, on every call) is halved, down to 16 samples, if that makes them all
    fit; where 16 samples would not fit either, it keeps its size (smaller
    products would then cost more than the faults they save).
    """
    rows = min(64, max(16, hidden // 4))
    r = rows
    while r > 16 and not _fits(r, row_bytes):
        r = max(16, r // 2)
    if _fits(r, row_bytes):
        rows = r
    return int(min(MAX_CHUNKS, max(N // rows, min(2, N // 8), 1)))


def _fits(rows, row_bytes):
    """Return whether a block of ``rows`` samples keeps every big buffer under :data:`BLOCK_BUFFER_BYTES`."""
    return all(rows * b <= BLOCK_BUFFER_BYTES for b in row_bytes)


@jit(inline="always")
def chunk_bounds(c, s0, s1, n_chunks):
    """Rows of chunk ``c`` when rows ``s0:s1`` are cut into ``n_chunks`` contiguous blocks.

    ``s0 + c*n // n_chunks`` to ``s0 + (c+1)*n // n_chunks`` with ``n = s1 - s0``: every
    chunk loop (the engine's and the solvers' epoch) cuts this way, then adds the
    partial gradients in chunk order (:func:`sum_chunks`).
    """
    n = s1 - s0
    return s0 + c * n // n_chunks, s0 + (c + 1) * n // n_chunks


@jit
def sum_chunks(grad, partial, values, n_chunks):
    """``grad = sum_{c < n_chunks} partial[c]``, summed in row order.

    Returns ``sum_c values[c]`` summed the same way: a fixed order, so the
    result does not depend on the thread count.
    """
    total = values[0]
    for k in range(grad.shape[0]):
        grad[k] = partial[0, k]
    for c in range(1, n_chunks):
        total += values[c]
        for k in range(grad.shape[0]):
            grad[k] += partial[c, k]
    return total
