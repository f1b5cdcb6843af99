"""The CPU engine: layers, directions, chunks and the head around the cells.

A batch is cut into ``n_chunks`` contiguous blocks of samples (a number fixed
by the batch shape, never by the thread count). Each block runs forward and
BPTT on its own into its own partial gradient; the partials are then summed in
block order, so a result is bitwise the same on 1 or 64 threads.

Each cell has its own family of compiled kernels (:func:`kernels`), built by
one factory over the cell's ``forward``/``backward``: a network compiles the
kernels of its own cell, dtype and head, and nothing of the other cells.

How the pieces compose (notation of ``docs/cells.md``; sample ``n`` has
``L_n`` valid steps, ``h^{l,d}_t`` is layer ``l``, direction ``d`` at original
time ``t``)::

    input of layer 0:       x_t
    input of layer l > 0:   m_{l-1,t} * [h^{l-1,0}_t; h^{l-1,1}_t]     (m: dropout mask, else 1)
    direction 0 reads t = 0..L_n-1, direction 1 reads t = L_n-1..0, each from h_{-1} = h0 (or 0)
    head input F:           [h^{top,0}_{L_n-1}; h^{top,1}_0]          many-to-one
                            [h^{top,0}_t; h^{top,1}_t], t < L_n        many-to-many
    y_hat = F W_out^T + b_out;  loss and dL/dF in :mod:`rnnumba.losses`

BPTT runs the layers top down: each direction of a layer gets dL/dh_t from
above (the head's dF, or the layer above's dx through the dropout mask), runs
its cell's ``backward`` (the recursion in :mod:`rnnumba.cells`), and the
directions' dx_t, mapped back to original time, add up to the dL/d(input) of
the layer below.

With checkpoints, a network runs all its layers segment by segment instead
(:mod:`rnnumba.lockstep`, :mod:`rnnumba.bilockstep`), in memory as sqrt(T), or
a bidirectional one walks with checkpoints layer by layer (keeping its layers'
outputs); a many-to-many head runs segment by segment (``lockstep.many_head``).

Sibling implementations of the same computation: ``rnnumba.gpu.engine`` (GPU)
and ``rnnumba.distributed`` (Dask), over the same :class:`~rnnumba.layout.Layout`.
"""

import functools
from collections import namedtuple

import numpy as np
from numba import prange

from . import dropout
from ._borrow import borrow
from ._jit import jit
from ._linalg import empty_aligned
from ._rows import add_row, copy_row, drop_padding, padded_weights, padded_width, tensor
from .bilockstep import bilockstep
from .cells import elman, gru, lstm
from .chunks import chunk_bounds, sum_chunks
from .layout import (
    B_AT,
    CHECKPOINT,
    DIRECTIONS,
    EXTRA_AT,
    FULL,
    HIDDEN,
    LAYERS,
    LOCKSTEP,
    MANY,
    OUTPUTS,
    PEEPHOLE,
    W_AT,
)
from .layout import GATES as CELL_GATES
from .lockstep import lockstep, many_head
from .losses import head as head_loss
from .losses import readout
from .segments import read_step, segment_steps, walkers
from .validation import first_nonfinite


@jit(inline="always")
def _features(spec, HXs, top, lengths, s0, s1, many):
    """Head inputs ``F`` of samples ``s0:s1``.

    Many-to-one: (n, H*D) rows ``[h^{top,0}_{L-1}; h^{top,1}_0]``, each
    direction's final state (row T of its ``HX``: states freeze past a length).
    Many-to-many: (sum of lengths, H*D) rows ``top[t, i]`` for every valid step,
    sample by sample. GPU sibling: ``rnnumba.gpu.head.gather_final``.
    """
    H, L, D = spec[HIDDEN], spec[LAYERS], spec[DIRECTIONS]
    n = s1 - s0
    if many:
        M = 0
        for i in range(n):
            M += lengths[s0 + i]
        F = np.empty((M, H * D), dtype=top.dtype)
        m = 0
        for i in range(n):
            for t in range(lengths[s0 + i]):
                copy_row(F[m], top[t, i])
                m += 1
        return F
    F = np.empty((n, H * D), dtype=top.dtype)
    for d in range(D):
        HX = HXs[(L - 1) * D + d]
        T = HX.shape[0] - 1
        for i in range(n):
            copy_row(F[i, d * H : (d + 1) * H], HX[T, i, :H])  # states freeze: row T is final
    return F


@jit(inline="always")
def _bias_and_extra(v, row, size, n_extra):
    """Return the views of a layer and direction's ``b`` (``size``) and extra tensor in ``v``.

    ``v``: ``theta``, or its gradient.
    """
    return v[row[B_AT] : row[B_AT] + size], v[row[EXTRA_AT] : row[EXTRA_AT] + n_extra]


# -- one family of kernels per cell -------------------------------------------------------------

# cell family -> (module, forward, backward); the GRU's two forms are two families
_CELLS = {
    "elman": (elman, elman.forward, elman.backward),
    "lstm": (lstm, lstm.forward, lstm.backward),
    "gru": (gru, gru.forward, gru.backward),
    "gru_cho": (gru, gru.forward_cho, gru.backward_cho),
}
FAMILIES = tuple(_CELLS)
# the first sample of a batch, for compiled callers: an int64, where a literal 0
# would compile a second signature (Literal[int](0)) of the kernel it is passed to
FIRST = np.int64(0)

Kernels = namedtuple(
    "Kernels", "family chunk_loss_and_grad loss_and_grad chunks_loss_and_grad chunk_predict predict"
)
Kernels.__doc__ = """The compiled kernels of one cell family (see :func:`kernels`).

``loss_and_grad`` runs the chunks one after the other, ``chunks_loss_and_grad``
on numba's threads (``parallel=True``, for Python callers only: a cached
function that calls a parallel one can crash a later process, numba issue
8578); both sum the partial gradients in chunk order, so they agree bitwise.
``chunk_predict`` is one chunk's prediction, ``predict`` every chunk on numba's
threads. ``chunk_loss_and_grad`` is what the solvers' compiled epoch calls."""


def kernels(family, checkpoint=False):
    """Return the compiled kernels of a cell family.

    Every kernel takes ``theta``, the padded batch, its ``lengths`` and the
    layout's named ``spec`` and ``offsets`` (:mod:`rnnumba.layout`). Made once
    per process; each kernel compiles on its first call (or loads from the
    disk cache) for the dtype it is given.

    Parameters
    ----------
    family : {"elman", "lstm", "gru", "gru_cho"}
        ``"gru"`` is PyTorch's form, ``"gru_cho"`` Cho et al.'s, as
        :attr:`rnnumba.layout.Layout.kernel_family` names them.
    checkpoint : {False, True, LOCKSTEP}, default False
        Checkpointed BPTT (``spec[CHECKPOINT]``, :mod:`rnnumba.layout`): each
        storage a family of its own, compiled only when used. ``LOCKSTEP`` is
        for bidirectional networks (:meth:`~rnnumba.layout.Layout.storage`).

    Returns
    -------
    Kernels
        The family's compiled functions (see :class:`Kernels`).
    """
    if family not in _CELLS:
        raise ValueError(f"unknown cell family {family!r}; expected one of {FAMILIES}")
    return _family(family, int(checkpoint))


@functools.cache
def _family(family, KEPT):
    """Build the kernels of :func:`kernels` (once per process, family and storage)."""
    module, FORWARD, BACKWARD = _CELLS[family]
    GATES = CELL_GATES[module.__name__.rsplit(".", 1)[1]]
    LSTM = module is lstm
    CARRIED = 2 if LSTM else 1  # [h; c] for the LSTM: the width of h0 and hn, in units of H
    WIDTH = module.STATE_WIDTH  # what the cell keeps in S for BPTT, in units of H
    EXTRA = 1 if module is gru else (3 if LSTM else 0)  # b_hn (H); peepholes (3H), if any

    CK = KEPT != FULL  # checkpoints (constants of the kernels: each storage compiles its own)
    BI = KEPT == LOCKSTEP  # a bidirectional network in lockstep
    forward_walk, backward_walk = walkers(family, FORWARD, BACKWARD, GATES, WIDTH, CARRIED, CK)
    stack_loss_and_grad, stack_predict = lockstep(family, FORWARD, BACKWARD, GATES, WIDTH, CARRIED)
    bi_loss_and_grad, bi_predict = bilockstep(family, FORWARD, BACKWARD, GATES, WIDTH, CARRIED)
    name = family + ("", "_ck", "_ls")[KEPT]

    @jit(inline="always", name=f"extra_size_{name}")
    def extra_size(spec):
        """Length of the cell's extra tensor: H (GRU ``b_hn``), 3H (LSTM peepholes) or 0."""
        return EXTRA * spec[HIDDEN] if not LSTM or spec[PEEPHOLE] else 0

    @jit(name=f"chunk_forward_{name}", driver=True)
    def chunk_forward(theta, spec, offsets, X, lengths, drop, h0, s0, s1, keep):
        """Forward through all layers for samples ``s0:s1``.

        For each layer ``l`` and direction ``d``, the cell's ``forward`` over
        ``[h_{t-1}; u_t]`` with ``u`` the layer's input read in the direction's
        order (:func:`rnnumba.segments.read_step`), ``u = x`` for ``l = 0`` and otherwise::

            u_t = m_{l-1,t} * [h^{l-1,0}_t; h^{l-1,1}_t]      (original time t)

        from ``h_{-1} = h0[l*D + d]`` (and ``c_{-1}``), or 0, one segment of
        steps after another (``forward_walk``, :mod:`rnnumba.segments`).
        Returns the per-(layer, direction) ``HX`` and ``S`` rows kept for BPTT
        (every step's, or with checkpoints each segment's first and the final
        one; unless ``keep``, a run-time ``np.bool_`` (a literal would compile
        the walks twice), ``S`` is prediction's ring of two rows), each layer's
        input (the layer below's outputs) where checkpoints need it (else empty
        arrays), and for a many-to-many head the top layer's outputs (T, n,
        H*D) in original time order, zero in the padding (else empty). ``drop``:
        the masks ``m`` (:func:`rnnumba.dropout.apply`) on every layer's outputs
        but the last. ``h0`` (L*D, N, carried width) holds the initial states,
        or is empty for zero states. GPU sibling: ``rnnumba.gpu.engine.DeviceEngine.forward``.
        """
        H, L, D, many = spec[HIDDEN], spec[LAYERS], spec[DIRECTIONS], spec[MANY]
        T, n = X.shape[1], s1 - s0
        lens = lengths[s0:s1]
        dtype = theta.dtype
        n_extra = extra_size(spec)
        inp = np.empty((0, 0, 0), dtype=dtype)  # the layer below's outputs; layer 0 reads X
        HXs, Ss, ins = [], [], [inp]
        for layer in range(L):
            I_l = X.shape[2] if layer == 0 else H * D
            Kp = padded_width(H + I_l, n * GATES * H * (H + I_l), theta.itemsize)
            # outputs in time order: for the next layer or a many-to-many head only
            out = np.zeros((T if layer < L - 1 or many else 0, n, H * D), dtype=dtype)
            for d in range(D):
                row = offsets[layer * D + d]
                W = padded_weights(theta, row[W_AT], GATES * H, H + I_l, Kp, n * GATES * H * (H + I_l))
                b, extra = _bias_and_extra(theta, row, GATES * H, n_extra)
                weights = (W, b, extra)
                hc0 = h0[layer * D + d, s0:s1] if h0.shape[0] > 0 else X[s0, :0]  # empty: zero states
                HX, S = forward_walk(weights, (X, inp, layer, s0, d), lens, hc0, out, keep)
                HXs.append(HX)
                Ss.append(S)
            if layer < L - 1:
                dropout.apply(out, drop, layer, s0, lens, np.int64(0))
                ins.append(out if CK else inp)  # checkpoints recompute from the layer's input
            inp = out
        return HXs, Ss, ins, inp

    @jit(name=f"chunk_loss_and_grad_{name}", driver=True)
    def chunk_loss_and_grad(theta, g, spec, offsets, X, lengths, Y, loss, scale, drop, h0, dh0, s0, s1):
        """Loss of samples ``s0:s1`` (times ``scale``) and its gradient, written into ``g``.

        Forward (``chunk_forward`` above), the head on the features ``F``
        (:func:`_features`; ``losses.head``: loss, ``dW_out``, ``db_out``,
        ``dF``), then BPTT from the top layer down::

            dL/dh^{top,d}_t   = dF's columns d*H:(d+1)*H (many-to-many: every valid
                                step; many-to-one: the direction's last step read)
            dL/dh^{l,d}_t     = dL/dout^l_t[d*H:(d+1)*H]        (l below the top)
            cell backward    -> dW, db, dextra of (l, d), dx^{l,d}_t, dL/dh0
            dL/dout^{l-1}_t   = m_{l-1,t} * sum_d dx^{l,d}_t     (original time order)

        ``g`` is written (every entry); ``dh0`` (if not empty) gets this
        chunk's rows of dL/dh0. Returns NaN, before any work, when the chunk's
        inputs or targets hold a NaN/inf. GPU sibling:
        ``rnnumba.gpu.engine.DeviceEngine.device_loss_and_grad``.
        """
        # the caller holds these for the whole call: views of them need no counting
        theta, g, spec, offsets = borrow(theta), borrow(g), borrow(spec), borrow(offsets)
        X, lengths, Y = borrow(X), borrow(lengths), borrow(Y)
        drop, h0, dh0 = borrow(drop), borrow(h0), borrow(dh0)
        H, L, D = spec[HIDDEN], spec[LAYERS], spec[DIRECTIONS]
        O, many = spec[OUTPUTS], spec[MANY]
        T, n = X.shape[1], s1 - s0
        lens = lengths[s0:s1]
        # NaN for a NaN/inf among the chunk's inputs or targets, so that a caller
        # may leave that check to the kernel (network.loss_and_grad's dense path)
        if first_nonfinite(X[s0:s1], lens) >= 0 or first_nonfinite(Y[s0:s1], lens) >= 0:
            return np.nan
        if BI:  # memory as sqrt(T) in every layer (a bidirectional network: the backend sees to it)
            n_extra = extra_size(spec)
            return bi_loss_and_grad(
                theta, g, spec, offsets, X, lengths, Y, loss, scale, drop, h0, dh0, s0, s1, n_extra
            )
        if CK and D == 1:  # lockstep: memory as sqrt(T) through every layer and the head
            n_extra = extra_size(spec)
            return stack_loss_and_grad(
                theta, g, spec, offsets, X, lengths, Y, loss, scale, drop, h0, dh0, s0, s1, n_extra
            )
        HXs, Ss, ins, top = chunk_forward(theta, spec, offsets, X, lengths, drop, h0, s0, s1, np.bool_(True))

        # the head, and dL/d(top layer outputs) in original time order (many-to-one:
        # only dF, below). Every buffer, even an unused (empty) one, is its own
        # allocation: LLVM vectorises worse when several empty buffers share one array.
        head = offsets[L * D]
        W_out, b_out = tensor(theta, head[W_AT], O, H * D), theta[head[B_AT] : head[B_AT] + O]
        head_grads = (tensor(g, head[W_AT], O, H * D), g[head[B_AT] : head[B_AT] + O])
        dOut = np.zeros((T if many else 0, n, H * D), dtype=theta.dtype)
        if many:  # segment by segment, in lockstep's order (lockstep.many_head)
            value = many_head(W_out, b_out, top, lens, Y, s0, loss, scale, dOut, head_grads)
            dF = np.empty((0, H * D), dtype=theta.dtype)
        else:
            F = _features(spec, HXs, top, lengths, s0, s1, many)
            Yc = np.empty((n, Y.shape[2]), dtype=theta.dtype)
            for i in range(n):
                copy_row(Yc[i], Y[s0 + i, 0])
            dF = np.empty_like(F)
            value = head_loss(W_out, b_out, F, Yc, loss, scale, dF, head_grads[0], head_grads[1])

        # BPTT, top layer first; each direction from its last segment to its first
        n_extra = extra_size(spec)
        carry = dh0.shape[0] > 0 or segment_steps(T) < T
        for layer in range(L - 1, -1, -1):
            I_l = X.shape[2] if layer == 0 else H * D
            K = H + I_l
            dInp = np.zeros((T if layer > 0 else 0, n, I_l), dtype=theta.dtype)
            for d in range(D):
                row = offsets[layer * D + d]
                HX, S = HXs[layer * D + d], Ss[layer * D + d]
                Kp = HX.shape[2]  # K, or padded (see padded_width)
                W = padded_weights(theta, row[W_AT], GATES * H, K, Kp, n * GATES * H * K)
                b, extra = _bias_and_extra(theta, row, GATES * H, n_extra)
                weights = (W, b, extra)
                dW = tensor(g, row[W_AT], GATES * H, K)
                dWp = dW if Kp == K else empty_aligned(GATES * H, Kp, theta.dtype)
                db, dextra = _bias_and_extra(g, row, GATES * H, n_extra)
                grads = (dWp, db, dextra)
                dTop = dF[:, d * H : (d + 1) * H] if layer == L - 1 and not many else dF[:0, :H]
                dX = np.zeros((T if layer > 0 else 0, n, Kp - H), dtype=theta.dtype)
                # the adjoint carried between segments, and out as dL/dh0 (one segment, no h0: none)
                dS = np.zeros((n if carry else 0, CARRIED * H), dtype=theta.dtype)
                src = (X, ins[layer], layer, s0, d)
                backward_walk(weights, grads, src, lens, (HX, S), (dOut, dTop), dX, dS, dh0.shape[0] > 0)
                drop_padding(dW, dWp)  # the padding's columns of dW are dropped
                if dh0.shape[0] > 0:  # this chunk's rows of dL/dh0: no sum needed
                    for i in range(n):
                        copy_row(dh0[layer * D + d, s0 + i], dS[i])
                if layer > 0:
                    for i in range(n):
                        for t in range(T):
                            u = read_step(t, lens[i], d, T)
                            if u >= 0:
                                add_row(dInp[u, i], dX[t, i, :I_l])
            if layer > 0:  # through the dropout on the layer below's outputs
                dropout.apply(dInp, drop, layer - 1, s0, lens, np.int64(0))
            dOut = dInp
        return value

    @jit(name=f"loss_and_grad_{name}", driver=True)
    def loss_and_grad(theta, grad, spec, offsets, X, lengths, Y, loss, scale, drop, h0, dh0, n_chunks):
        """Loss and gradient of a padded batch on one thread; fills ``grad``.

        ``grad = sum_c g_c`` and the loss ``sum_c L_c`` over the chunks
        ``c*N//n_chunks : (c+1)*N//n_chunks``, added in chunk order: the same
        chunks, arithmetic and order of summation as ``chunks_loss_and_grad``,
        so the results are bitwise equal.
        """
        N = X.shape[0]
        value = 0.0
        part = np.empty_like(grad) if n_chunks > 1 else grad  # every entry gets written
        for c in range(n_chunks):  # fixed order: thread-count independent
            s0, s1 = chunk_bounds(c, 0, N, n_chunks)
            out = grad if c == 0 else part
            value += chunk_loss_and_grad(
                theta, out, spec, offsets, X, lengths, Y, loss, scale, drop, h0, dh0, s0, s1
            )
            if c > 0:
                for k in range(grad.shape[0]):
                    grad[k] += part[k]
        return value

    @jit(parallel=True, name=f"chunks_loss_and_grad_{name}", driver=True)
    def chunks_loss_and_grad(theta, grad, spec, offsets, X, lengths, Y, loss, scale, drop, h0, dh0, n_chunks):
        """Every chunk on numba's threads, each into its own partial gradient.

        The partials are then summed in chunk order into ``grad``
        (:func:`sum_chunks`); returns the loss summed the same way.
        """
        N, P = X.shape[0], theta.shape[0]
        partial = np.empty((n_chunks, P), dtype=theta.dtype)  # every entry gets written
        values = np.empty(n_chunks, dtype=np.float64)
        for c in prange(n_chunks):
            s0, s1 = chunk_bounds(c, 0, N, n_chunks)
            values[c] = chunk_loss_and_grad(
                theta, partial[c], spec, offsets, X, lengths, Y, loss, scale, drop, h0, dh0, s0, s1
            )
        return sum_chunks(grad, partial, values, n_chunks)

    @jit(name=f"chunk_predict_{name}", driver=True)
    def chunk_predict(theta, spec, offsets, X, lengths, h0, s0, s1, out, hn):
        """Head outputs ``y_hat = F W_out^T + b_out`` of samples ``s0:s1`` into ``out``.

        No dropout; ``F`` as in :func:`_features`. The final states (``h``, and
        ``c`` for the LSTM, row T of each layer's and direction's buffers) go
        into ``hn`` if it is not empty.
        """
        theta, spec, offsets = borrow(theta), borrow(spec), borrow(offsets)
        X, lengths, h0, out, hn = borrow(X), borrow(lengths), borrow(h0), borrow(out), borrow(hn)
        H, L, D, O, many = spec[HIDDEN], spec[LAYERS], spec[DIRECTIONS], spec[OUTPUTS], spec[MANY]
        if BI:  # memory as sqrt(T) in every layer (a bidirectional network)
            bi_predict(theta, spec, offsets, X, lengths, h0, s0, s1, out, hn, extra_size(spec))
            return
        if CK and D == 1:  # lockstep: memory as sqrt(T) through every layer and the head
            stack_predict(theta, spec, offsets, X, lengths, h0, s0, s1, out, hn, extra_size(spec))
            return
        head = offsets[L * D]
        no_dropout, keep = np.zeros(2, dtype=np.int64), np.bool_(False)  # no drops, no past states
        HXs, Ss, _, top = chunk_forward(theta, spec, offsets, X, lengths, no_dropout, h0, s0, s1, keep)
        for k in range(hn.shape[0]):  # final states: the last rows (states freeze past a length)
            last, last_s = HXs[k].shape[0] - 1, Ss[k].shape[0] - 1
            for i in range(s1 - s0):
                copy_row(hn[k, s0 + i, :H], HXs[k][last, i, :H])
                if LSTM:
                    copy_row(hn[k, s0 + i, H:], Ss[k][last_s, i, :H])
        F = _features(spec, HXs, top, lengths, s0, s1, many)
        Yhat = np.empty((F.shape[0], O), dtype=theta.dtype)
        readout(tensor(theta, head[W_AT], O, H * D), theta[head[B_AT] : head[B_AT] + O], F, Yhat)
        m = 0
        for i in range(s1 - s0):
            if many:
                for t in range(lengths[s0 + i]):
                    copy_row(out[s0 + i, t], Yhat[m])
                    m += 1
            else:
                copy_row(out[s0 + i, 0], Yhat[i])

    @jit(parallel=True, name=f"predict_{name}", driver=True)
    def predict(theta, spec, offsets, X, lengths, h0, n_chunks, out, hn):
        """Raw head outputs into ``out``, every chunk on numba's threads.

        ``out`` is (N, 1, O), or (N, T, O) whose padding the caller filled with
        NaN (it is left as it is); if ``hn`` (L*D, N, carried width) is not
        empty, the final states go into it. GPU sibling:
        ``rnnumba.gpu.engine.DeviceEngine.predict``.
        """
        N = X.shape[0]
        for c in prange(n_chunks):
            s0, s1 = chunk_bounds(c, 0, N, n_chunks)
            chunk_predict(theta, spec, offsets, X, lengths, h0, s0, s1, out, hn)

    return Kernels(family, chunk_loss_and_grad, loss_and_grad, chunks_loss_and_grad, chunk_predict, predict)


def training_kernel(family, n_chunks, checkpoint=False):
    """Return the compiled function behind :func:`loss_and_grad` for a cell family and chunk count.

    No parallel region for one chunk. For callers that keep it per batch
    shape, to skip the wrapper's cost on every step.

    Parameters
    ----------
    family : str
        A cell family (:func:`kernels`).
    n_chunks : int
        The number of chunks the batch is cut into.
    checkpoint : bool, default False
        The kernels of checkpointed BPTT (:func:`kernels`).

    Returns
    -------
    callable
        ``Kernels.loss_and_grad`` or ``Kernels.chunks_loss_and_grad``: takes
        the arguments of :func:`loss_and_grad` after ``family``.
    """
    k = kernels(family, checkpoint)
    return k.loss_and_grad if n_chunks == 1 else k.chunks_loss_and_grad


def loss_and_grad(family, theta, grad, spec, offsets, X, lengths, Y, loss, scale, drop, h0, dh0, n_chunks):
    """Loss and gradient of a padded batch; fills ``grad``, returns the loss.

    With several chunks they run on numba's threads and their partial
    gradients are summed in chunk order.

    Parameters
    ----------
    family : str
        The cell's kernels (:func:`kernels`).
    theta, grad : ndarray (P,)
        The parameters, and the gradient's buffer (every entry is written).
    spec, offsets : ndarray of int64
        From :meth:`Layout.spec <rnnumba.layout.Layout.spec>` and
        :meth:`Layout.offsets <rnnumba.layout.Layout.offsets>`.
    X : ndarray (N, T, I)
        The padded inputs.
    lengths : ndarray of int64 (N,)
        Valid steps per sample.
    Y : ndarray (N, 1 or T, O)
        Targets (class index in column 0 for cross-entropy).
    loss : int
        :data:`rnnumba.losses.MSE` or :data:`rnnumba.losses.XENT`.
    scale : float
        1 / the number of loss terms.
    drop : ndarray of int64 (2,)
        The dropout key and threshold (:func:`dropout_plan`; zeros for none).
    h0, dh0 : ndarray (L*D, N, carried width)
        Initial states, and the buffer that receives dL/dh0; either may be
        empty (zero states; no state gradient).
    n_chunks : int
        The number of chunks the batch is cut into.

    Returns
    -------
    float
        The loss, times ``scale``.
    """
    run = training_kernel(family, n_chunks, spec[CHECKPOINT])
    return run(theta, grad, spec, offsets, X, lengths, Y, loss, scale, drop, h0, dh0, n_chunks)
