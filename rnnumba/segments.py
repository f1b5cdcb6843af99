"""Segments of steps: how BPTT walks a long sequence, in full storage or from checkpoints.

The engine runs each layer and direction over segments of ``k`` steps
(:func:`segment_steps`, a function of ``T`` alone): the forward pass segment
after segment, BPTT from the last segment to the first, the adjoint
``dL/dh`` (and the LSTM's ``dL/dc``) carried from one segment into the one
before it, and the segments' weight gradients added in that order. Both
directions cut original time at the same places: the reverse direction runs
the same segments from the last to the first, each from its last valid step
down (:func:`read_step`).

Two ways to keep the forward pass's states for BPTT, one arithmetic:

* **full storage** keeps every step's ``[h_{t-1}; x_t]`` and cell state
  (memory as T): the walks here, one layer and direction at a time;
* **checkpointed BPTT** keeps only each segment's first row (and the final
  one), and before a segment's BPTT runs its forward pass again from that row
  into a buffer of ``k + 1`` rows (memory as ``T/k + k``, least at
  ``k = sqrt(T)``). One direction walks all its layers at once
  (:mod:`rnnumba.lockstep`); two walk here, layer by layer, keeping what
  passes between layers for every step, or walk all their layers at once
  with more passes (:mod:`rnnumba.bilockstep`).

Both make the same kernel calls on the same numbers in the same order, and a
forward pass is deterministic, so the two gradients are bitwise equal. A
sequence of at most :data:`SEGMENT_MIN` steps is one segment: the engine as it
was before segments.
"""

import numpy as np

from ._borrow import borrow
from ._jit import jit
from ._linalg import empty_aligned, zeros_aligned3
from ._rows import PAD_WORK, add_row, copy_row

# no segments below this many steps: a short sequence is one segment, and a long
# one's weight-gradient products stay tall (k*n rows) whatever the checkpoints
SEGMENT_MIN = 256


def steps_per_segment(T):
    """Return the steps per segment for sequences padded to ``T``.

    ``T`` up to :data:`SEGMENT_MIN`, else max(256, ceil(sqrt(T))).
    """
    if T <= SEGMENT_MIN:
        return max(T, 1)
    k = int(np.sqrt(T))
    while k * k < T:
        k += 1
    return max(SEGMENT_MIN, k)


segment_steps = jit(inline="always")(steps_per_segment)  # the same rule, compiled


@jit
def _hx_buffer(rows, n, W):
    """Zeros for ``[h; x]`` of ``rows`` steps, (rows, n, K) with ``W`` (gates, K).

    On cache lines where a step's product repays it (``PAD_WORK``, as the
    weights' copy in ``_rows.padded_weights``): the 512-bit dot products read
    its rows.
    """
    K = W.shape[1]
    if n * W.shape[0] * K >= PAD_WORK:
        return zeros_aligned3(rows, n, K, W.dtype)
    return np.zeros((rows, n, K), dtype=W.dtype)


@jit(inline="always")
def segment_lengths(lengths, a, steps, out):
    """Write each sample's valid steps inside the segment ``a : a + steps`` into ``out``."""
    for i in range(lengths.shape[0]):
        out[i] = min(max(lengths[i] - a, 0), steps)


@jit(inline="always")
def keep_row(dst, src):
    """``dst[i] = src[i]`` for every sample (one row of ``[h; x]`` or of the cell state)."""
    for i in range(src.shape[0]):
        copy_row(dst[i], src[i])


@jit(inline="always")
def walk_segment(j, n_seg, d):
    """Return the segment direction ``d`` runs ``j``-th: ``j``, or ``n_seg - 1 - j`` in reverse."""
    return j if d == 0 else n_seg - 1 - j


@jit(inline="always")
def segment_start(s, T, d):
    """Return ``(a, steps, p)``: segment ``s``'s first original step, its steps, and its first walk row.

    Direction 0 walks the segments in order (``p = a``); direction 1 from the
    last to the first (``p = T - a - steps``).
    """
    k = segment_steps(T)
    a = s * k
    steps = min(k, T - a)
    return a, steps, a if d == 0 else T - a - steps


@jit(inline="always")
def read_step(p, length, d, T):
    """Original time index read at walk row ``p`` of direction ``d`` (-1: a frozen row).

    Segments cut original time in both directions (:func:`segment_start`). The
    forward direction reads ``p``; the reverse one reads segment ``a : a +
    steps`` from its last valid step down, ``a + v - 1 - r`` at row ``r`` of
    the segment with ``v`` its valid steps, and frozen rows after them (one
    segment: ``length - 1 - p``). So a segment holds the same original steps in
    either direction, and a stack walks both in lockstep.
    """
    if d == 0:
        return p if p < length else -1
    k = segment_steps(T)
    a = (T - 1 - p) // k * k
    steps = min(k, T - a)
    v = min(max(length - a, 0), steps)
    r = p - (T - a - steps)
    return a + v - 1 - r if r < v else -1


@jit(inline="always")
def last_step(length, d, T):
    """Return the walk row of direction ``d``'s final step (original step ``length - 1``, or 0)."""
    if d == 0:
        return length - 1
    steps = min(segment_steps(T), T)
    return T - steps + min(length, steps) - 1


@jit(inline="always")
def write_inputs(HX, r0, a, steps, X, inp, off, layer, s0, lens, d, H):
    """Write ``x`` of walk rows ``a : a + steps`` into the input columns of rows ``r0 + t - a`` of ``HX``.

    ``x`` is the sample's input ``X[s0 + i]`` in layer 0, else the layer
    below's outputs ``inp`` (original time ``t`` in its row ``t - off``),
    read in direction ``d``'s order; 0 past a length.
    """
    n, I_l = HX.shape[1], X.shape[2] if layer == 0 else inp.shape[2]
    for i in range(n):
        for t in range(a, a + steps):
            dst = HX[r0 + t - a, i, H : H + I_l]
            src = read_step(t, lens[i], d, X.shape[1])
            if src < 0:
                for j in range(I_l):
                    dst[j] = 0.0
            elif layer == 0:
                copy_row(dst, X[s0 + i, src])
            else:
                copy_row(dst, inp[src - off, i])


@jit(inline="always")
def write_outputs(out, off, HX, a, steps, lens, d, H, T):
    """Copy ``h`` of walk rows ``a : a + steps`` into direction ``d``'s columns of ``out``.

    ``h`` of walk row ``t`` from row ``t - a + 1`` of ``HX``; ``out`` in
    original time order, time ``u`` in its row ``u - off``.
    """
    for i in range(out.shape[1]):
        for t in range(a, a + steps):
            u = read_step(t, lens[i], d, T)
            if u >= 0:
                copy_row(out[u - off, i, d * H : (d + 1) * H], HX[t - a + 1, i, :H])


@jit(inline="always")
def head_rows(dHs, dOut, off, dTop, p, lens, d, T):
    """Write dL/dh from above into ``dHs`` (zeros) for walk rows ``p : p + len(dHs)`` of direction ``d``.

    ``dOut`` (empty, or dL/d(outputs) with original time ``u`` in its row
    ``u - off``): the direction's columns at every valid row; ``dTop`` (empty,
    or (n, H)): dL/d(final state) of a many-to-one head, added at the
    direction's final step (:func:`last_step`).
    """
    steps, n, H = dHs.shape[0], dHs.shape[1], dHs.shape[2]
    for i in range(n):
        if dOut.shape[0] > 0:
            for t in range(p, p + steps):
                u = read_step(t, lens[i], d, T)
                if u >= 0:
                    copy_row(dHs[t - p, i], dOut[u - off, i, d * H : (d + 1) * H])
        end = last_step(lens[i], d, T)  # the final state feeds a many-to-one head
        if dTop.shape[0] > 0 and p <= end < p + steps:
            add_row(dHs[end - p, i], dTop[i])


@jit(inline="always")
def add_shares(grads, shares):
    """Add an earlier segment's ``shares = (dW, db, dextra)`` to ``grads``, in that order."""
    for r in range(shares[0].shape[0]):
        add_row(grads[0][r], shares[0][r])
    add_row(grads[1], shares[1])
    add_row(grads[2], shares[2])


def n_segments(T):
    """How many segments a sequence padded to ``T`` is cut into."""
    return -(-T // steps_per_segment(T))


def walkers(family, FORWARD, BACKWARD, gates, width, carried, ck):
    """Build a cell family's two walks over one layer's direction: forward, and BPTT.

    ``FORWARD``/``BACKWARD`` are the cell's kernels (:mod:`rnnumba.cells`);
    ``gates`` the row blocks of ``W``; ``width`` what the cell keeps in ``S``
    and ``carried`` the state carried from step to step (``h``, or ``[h; c]``
    for the LSTM), both in units of H. Both walks take ``weights = (W, b,
    extra)`` (``W`` padded to the width of ``[h; x]``), ``src = (X, below,
    layer, s0, d)`` (where the direction reads its inputs: :func:`write_inputs`),
    and the chunk's ``lens``. ``ck`` (checkpoints, or every row) is a
    constant of the walks: each storage compiles its own, only when used.
    Checkpointed walks serve bidirectional networks whose layer outputs may be
    kept for every step (:data:`rnnumba.layout.CHECKPOINTS`); otherwise
    checkpoints walk all the layers at once (:mod:`rnnumba.lockstep`,
    :mod:`rnnumba.bilockstep`).
    """
    name = family + ("_ck" if ck else "")

    @jit(name=f"forward_walk_{name}", driver=True)
    def forward_walk(weights, src, lens, hc0, out, keep):
        """Run a direction's forward pass, segment after segment; return the rows kept for BPTT.

        ``HX`` and ``S`` (rows of ``[h_{t-1}; x_t]`` and of the cell state, in
        the direction's walk order): every row ``0..T``, or with ``ck`` each
        segment's first row and the final one. Without ``ck`` and ``keep``
        (prediction: nothing reads a past state), ``S`` is a ring of two rows
        (see ``lstm.forward``) whose last row ends with the final state. ``hc0``
        (n, carried width) holds ``h_{-1}`` (and the LSTM's ``c_{-1}``), or is
        empty for zero states; ``out`` (T, n, H*D), if not empty, receives
        ``h`` in the direction's columns, in original time.
        """
        # the caller holds the arguments for the whole call: views of them need no counting
        # (never borrow an array made here: numba frees it after its last counted use)
        W, b, extra = borrow(weights[0]), borrow(weights[1]), borrow(weights[2])
        X, below, layer, s0, d = borrow(src[0]), borrow(src[1]), src[2], src[3], src[4]
        lens, hc0, out = borrow(lens), borrow(hc0), borrow(out)
        H, n, T = b.shape[0] // gates, lens.shape[0], X.shape[1]
        k = segment_steps(T)
        n_seg = (T + k - 1) // k
        kept = n_seg + 1 if ck else T + 1
        HX = _hx_buffer(kept, n, W)
        ring = not (ck or keep)  # 6H of an LSTM's state a row and step (fresh memory) not written
        S = np.zeros((2 if ring else kept, n, width * H), dtype=W.dtype)
        # where a segment runs: a buffer of its own, or the kept rows (no allocation)
        HXw = _hx_buffer(k + 1, n, W) if ck else HX
        Sw = np.zeros((k + 1, n, width * H), dtype=W.dtype) if ck else S
        if not ck:
            write_inputs(HX, 0, 0, T, X, below, 0, layer, s0, lens, d, H)
        for i in range(hc0.shape[0]):  # h_{-1} in row 0 of HX; the LSTM's c_{-1} in row 0 of S
            copy_row(HXw[0, i, :H], hc0[i, :H])
            if carried == 2:
                copy_row(Sw[0, i, :H], hc0[i, H:])
        lens_s = np.empty(n, dtype=np.int64) if n_seg > 1 else lens  # one segment: the lengths
        prev = k  # the rows of the segment run before
        for j in range(n_seg):  # in the direction's order (walk_segment)
            a, steps, p = segment_start(walk_segment(j, n_seg, d), T, d)
            if n_seg > 1:
                segment_lengths(lens, a, steps, lens_s)
            if ck:
                if j > 0:  # the previous segment's last row starts this one
                    keep_row(HXw[0], HXw[prev])
                    keep_row(Sw[0], Sw[prev])
                write_inputs(HXw, 0, p, steps, X, below, 0, layer, s0, lens, d, H)
                keep_row(HX[j], HXw[0])  # the checkpoint
                keep_row(S[j], Sw[0])
                Sw[1 : steps + 1] = 0.0  # as a fresh buffer: a frozen step writes part of it
                FORWARD(W, b, extra, HXw[: steps + 1], Sw[: steps + 1], lens_s)
                if out.shape[0] > 0:
                    write_outputs(out, 0, HXw, p, steps, lens, d, H, T)
            elif ring:
                FORWARD(W, b, extra, HX[p : p + steps + 1], S, lens_s)
                if steps % 2:  # the next segment starts from row 0
                    keep_row(S[0], S[1])
            else:
                FORWARD(W, b, extra, HX[p : p + steps + 1], S[p : p + steps + 1], lens_s)
            prev = steps
        if ck:  # the final row
            keep_row(HX[n_seg], HXw[prev])
            keep_row(S[n_seg], Sw[prev])
        elif out.shape[0] > 0:
            write_outputs(out, 0, HX, 0, T, lens, d, H, T)
        if ring:  # the final state in the last row, as with every row kept
            keep_row(S[1], S[0])
        return HX, S

    @jit(name=f"backward_walk_{name}", driver=True)
    def backward_walk(weights, grads, src, lens, kept, dhead, dX, dS, want_dh0):
        """Run a direction's BPTT from its last segment to its first.

        Per segment (its forward pass first run again from its checkpoint,
        with ``ck``), dL/dh from above (``dhead = (dOut, dTop)``: the
        direction's columns of dL/d(outputs) (T, n, H*D) in original time, or
        empty; dL/d(final state) (n, H) for a many-to-one head, or empty),
        then the cell's ``backward`` from the adjoint ``dS`` the later segment
        left. ``grads = (dW, db, dextra)`` are written: the last segment's
        share, then each earlier one's added in turn. ``dX`` (T, n, I), if not
        empty, receives dL/dx in walk order; ``dS`` (n, carried width, zeros
        on entry) ends as dL/dh_{-1} if ``want_dh0``.
        """
        # the caller holds every argument for the whole call: views of them need no counting
        # (never borrow an array made here: numba frees it after its last counted use)
        W, b, extra = borrow(weights[0]), borrow(weights[1]), borrow(weights[2])
        dW, db, dextra = borrow(grads[0]), borrow(grads[1]), borrow(grads[2])
        X, below, layer, s0, d = borrow(src[0]), borrow(src[1]), src[2], src[3], src[4]
        HX, S, dOut, dTop = borrow(kept[0]), borrow(kept[1]), borrow(dhead[0]), borrow(dhead[1])
        lens, dX, dS = borrow(lens), borrow(dX), borrow(dS)
        H, n, T, Kp = b.shape[0] // gates, lens.shape[0], X.shape[1], W.shape[1]
        k = segment_steps(T)
        n_seg = (T + k - 1) // k
        # a segment run again, and an earlier segment's shares (unused views where not needed)
        HXw = _hx_buffer(k + 1, n, W) if ck else kept[0][:0]
        Sw = np.zeros((k + 1, n, width * H), dtype=W.dtype) if ck else kept[1][:0]
        pW = empty_aligned(dW.shape[0], Kp, W.dtype) if n_seg > 1 else grads[0][:0]
        pb = np.empty_like(db) if n_seg > 1 else db[:0]
        pe = np.empty_like(dextra) if n_seg > 1 else dextra[:0]
        lens_s = np.empty(n, dtype=np.int64) if n_seg > 1 else lens
        for j in range(n_seg - 1, -1, -1):  # the direction's segments from its last
            a, steps, p = segment_start(walk_segment(j, n_seg, d), T, d)
            if n_seg > 1:
                segment_lengths(lens, a, steps, lens_s)
            if ck:  # the segment's forward pass again, from its checkpoint
                keep_row(HXw[0], HX[j])
                keep_row(Sw[0], S[j])
                write_inputs(HXw, 0, p, steps, X, below, 0, layer, s0, lens, d, H)
                Sw[1 : steps + 1] = 0.0
                FORWARD(W, b, extra, HXw[: steps + 1], Sw[: steps + 1], lens_s)
                hx, st = HXw[: steps + 1], Sw[: steps + 1]
            else:
                hx, st = HX[p : p + steps + 1], S[p : p + steps + 1]
            dHs = np.zeros((steps, n, H), dtype=W.dtype)
            head_rows(dHs, dOut, 0, dTop, p, lens, d, T)
            dh_out = dS if j > 0 or want_dh0 else dS[:0]
            if j == n_seg - 1:
                BACKWARD(W, b, extra, hx, st, lens_s, dHs, dS, dW, db, dextra, dX[p : p + steps], dh_out)
            else:
                BACKWARD(W, b, extra, hx, st, lens_s, dHs, dS, pW, pb, pe, dX[p : p + steps], dh_out)
                add_shares((dW, db, dextra), (pW, pb, pe))

    return forward_walk, backward_walk
