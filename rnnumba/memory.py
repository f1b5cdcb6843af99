"""What a training call needs in memory, what this machine has, and the error in between.

Training keeps every step's state for BPTT, so the engine's buffers grow as
N x T x H: :func:`training_bytes` estimates them from the shape alone, before
anything is allocated. :func:`available_bytes` (from :mod:`rnnumba._limits`)
reads what the process may still take (the machine's available memory, a
container's cgroup limit, an address-space limit set with ``resource.setrlimit``). The CPU backend checks one
against the other (:func:`check`) and cuts full-batch calls into blocks of rows
(:func:`block_rows`) so that their memory does not grow with N.
"""

from ._limits import available_bytes
from .cells import elman, gru, lstm
from .layout import GATES, LOCKSTEP
from .segments import n_segments, steps_per_segment

__all__ = [
    "BLOCK_BYTES",
    "CHECK_BYTES",
    "NotEnoughMemory",
    "available_bytes",
    "block_rows",
    "check",
    "row_bytes",
    "training_bytes",
]

# what each cell keeps per step for BPTT beyond [h; x] (owned by the cells), in units of H
_STATE = {"elman": elman.STATE_WIDTH, "lstm": lstm.STATE_WIDTH, "gru": gru.STATE_WIDTH}
# a cell's backward temporaries per step, in units of H (measured with peak RSS, N=64, T=2000,
# H=128: Elman 383 MB, LSTM 1476 MB, GRU 1353 MB against 263, 1050 and 787 MB of kept buffers)
_BACKWARD = {"elman": 1, "lstm": 4, "gru": 5}
# full-batch calls bigger than this run in blocks of rows (a shape rule: results never
# depend on the machine), summed in block order
BLOCK_BYTES = 512 * 2**20
# calls smaller than this skip the check (reading the limits costs ~30 us)
CHECK_BYTES = 64 * 2**20


class NotEnoughMemory(MemoryError):
    """A call would need more memory than this process can get; raised before allocating.

    Its message says how much is needed, how much is available and the ways
    out. A :class:`MemoryError`, so ``except MemoryError`` catches it.

    Examples
    --------
    >>> from rnnumba.memory import NotEnoughMemory
    >>> issubclass(NotEnoughMemory, MemoryError)
    True
    """


def training_bytes(layout, N, T, itemsize, many, checkpoint=False):
    """Estimate the engine's buffers for one ``loss_and_grad`` over N rows of T steps.

    The forward pass keeps ``[h; x]`` and the cell's state for every layer,
    direction and step (with ``checkpoint``, for each segment's first step
    and the final one, plus one segment's rows: :mod:`rnnumba.segments`), and
    the outputs of every layer that feeds another (or a many-to-many head):
    every step's, or one segment's in lockstep (:mod:`rnnumba.lockstep`; a
    bidirectional network with :data:`~rnnumba.layout.LOCKSTEP`,
    :mod:`rnnumba.bilockstep`); the backward pass adds, one layer
    at a time, the gradients of those and one segment's share of the cell's
    temporaries. A slight overestimate
    (within ~20 % of the measured peak), never an underestimate by design.

    Parameters
    ----------
    layout : Layout
    N, T : int
        Rows and padded steps.
    itemsize : int
        4 (float32) or 8 (float64).
    many : bool
        A many-to-many head (an output per step).
    checkpoint : {False, True, LOCKSTEP}, default False
        Checkpointed BPTT (:data:`rnnumba.layout.CHECKPOINTS`, or in lockstep
        through every layer: :data:`rnnumba.layout.LOCKSTEP`; the same for one
        direction).

    Returns
    -------
    int
        Bytes.

    Examples
    --------
    64 sequences of 100,000 steps, hidden 128, float32: every step kept, or checkpoints.

    >>> from rnnumba import Layout
    >>> from rnnumba.memory import training_bytes
    >>> layout = Layout("elman", 1, 128)
    >>> round(training_bytes(layout, 64, 100_000, 4, False) / 2**30, 1)  # GB
    3.3
    >>> need = training_bytes(layout, 64, 100_000, 4, False, checkpoint=True)
    >>> round(need / 2**20)  # MB
    41
    """
    H, L, D = layout.hidden, layout.num_layers, layout.directions
    cell = layout.cell
    state, temp = _STATE[cell], _BACKWARD[cell]
    k = steps_per_segment(T)
    rows = (n_segments(T) + 1 + k + 1) if checkpoint else T + 1  # rows of [h; x] and state kept
    bi = checkpoint == LOCKSTEP and D == 2  # rnnumba.bilockstep: a second segment buffer, adjoint checkpoints
    if bi:
        rows += k + 1
    # steps of what passes between layers (and to a many-to-many head) held at once:
    # one segment's in lockstep (rnnumba.lockstep, rnnumba.bilockstep), else all
    span = k if (checkpoint and D == 1) or bi else T
    kept = 0
    backward = 0
    for layer in range(L):
        inputs = layout.input_size if layer == 0 else H * D
        K = H + inputs + 8  # [h; x], padded to whole SIMD registers at most
        kept += D * rows * (K + state * H)
        if bi:  # dL/dh (dL/dc) entering each segment's BPTT; outputs in the forward pass and BPTT
            kept += D * n_segments(T) * (2 if cell == "lstm" else 1) * H + 2 * span * H * D
        elif layer < L - 1 or many:
            kept += span * H * D  # the layer's outputs
        below = inputs + (K - H) if layer > 0 else 0  # gradients into the layer below
        backward = max(backward, span * below + k * (H + temp * H))
    if many:
        backward += span * H * D  # dL/d(outputs) of the top layer
    return int(itemsize * N * (kept + backward))


def check(need, what, ways):
    """Raise :class:`NotEnoughMemory` if ``need`` bytes are more than this process can get.

    Parameters
    ----------
    need : int
        Bytes the call would allocate.
    what : str
        The call, for the message.
    ways : str
        What would make it fit.

    Raises
    ------
    NotEnoughMemory
        When ``need`` exceeds :func:`available_bytes`.

    Examples
    --------
    >>> from rnnumba.memory import NotEnoughMemory, check
    >>> check(1, "A tiny call", "None needed.")             # fits: nothing happens
    >>> try:
    ...     check(2**62, "A huge call", "Ways out: none.")
    ... except NotEnoughMemory as exc:
    ...     print(str(exc)[:40])
    A huge call needs about 4294967296.00 GB
    """
    have = available_bytes()
    if have is not None and need > have:
        raise NotEnoughMemory(
            f"{what} needs about {_gb(need)} of memory, but about {_gb(have)} is available "
            f"(nothing was allocated). {ways}"
        )


def row_bytes(layout, T, itemsize):
    """One sample's bytes in each of a parallel block's big work buffers over ``T`` steps.

    In full storage: the kept rows ``[h; x]`` of the widest layer, the cell's
    kept state and BPTT's gate gradients. They decide how many samples a
    block holds (:func:`rnnumba.chunks.n_chunks`).

    Parameters
    ----------
    layout : Layout
    T : int
        Padded steps.
    itemsize : int
        4 (float32) or 8 (float64).

    Returns
    -------
    tuple of int
        Bytes of ``[h; x]``, of the state, and of the gate gradients, for one sample.

    Examples
    --------
    >>> from rnnumba import Layout
    >>> from rnnumba.memory import row_bytes
    >>> [round(b / 2**20, 2) for b in row_bytes(Layout("lstm", 64, 512), 100, 4)]  # MiB
    [0.23, 1.18, 0.79]
    """
    H, D = layout.hidden, layout.directions
    K = H + max(layout.input_size, H * D if layout.num_layers > 1 else 0) + 8  # padded at most
    return tuple((T + 1) * w * itemsize for w in (K, _STATE[layout.cell] * H, GATES[layout.cell] * H))


def block_rows(layout, N, T, itemsize, many, checkpoint=False):
    """Rows per block for a full-batch call: all N, or fewer so that a block stays under ``BLOCK_BYTES``.

    A function of the shape only, so that the blocks, and the summation order
    of their losses and gradients, are the same on every machine.

    Parameters
    ----------
    layout : Layout
    N, T : int
        Rows and padded steps of the whole call.
    itemsize : int
        4 (float32) or 8 (float64).
    many : bool
        A many-to-many head.
    checkpoint : {False, True, LOCKSTEP}, default False
        As for :func:`training_bytes`.

    Returns
    -------
    int
        Rows per block (at least 1).

    Examples
    --------
    >>> from rnnumba import Layout
    >>> from rnnumba.memory import block_rows
    >>> layout = Layout("elman", 1, 128)
    >>> block_rows(layout, 64, 1_000, 8, False), block_rows(layout, 64, 100_000, 8, False)
    (64, 4)
    """
    per_row = training_bytes(layout, 1, T, itemsize, many, checkpoint)
    return max(1, min(N, BLOCK_BYTES // max(per_row, 1)))


def _gb(n):
    return f"{n / 2**30:.2f} GB" if n >= 2**27 else f"{n / 2**20:.0f} MB"
