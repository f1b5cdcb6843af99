"""Lockstep for bidirectional networks: checkpointed BPTT in memory as sqrt(T) at any depth.

A bidirectional layer's input at original step ``u`` is ``[h^{l-1,0}_u;
h^{l-1,1}_u]``: the forward direction's state after steps ``0..u`` and the
reverse one's after ``u..L-1``. Both directions cut original time into the same
segments (:func:`rnnumba.segments.read_step`), so the outputs of every layer
below on segment ``s`` can be run again from the checkpoints of both of its
directions, whatever the lengths of the samples. That is what this module
does, in place of keeping them for every step:

* **forward**, layer by layer and direction by direction, each in its own
  order of segments: before each segment, the layers below run again over it
  from their checkpoints (:func:`layers_forward`), and the direction keeps
  only its checkpoint (the segment's first row of ``[h; x]`` and state, and
  the final row);
* **BPTT**, layer by layer from the top, each direction from its last segment
  to its first: the whole stack runs again over the segment, the head on its
  steps (many-to-many), and dL/d(this layer's outputs) comes down from the
  top through the layers above. Each of those runs its cell's ``backward``
  from its **adjoint checkpoint**, the dL/dh (and the LSTM's dL/dc) that
  entered that segment in its own BPTT, kept when it ran. The direction's
  ``backward`` then adds its share to the weight gradient and keeps its own
  adjoint checkpoint for the layers below.

Every (layer, direction, segment) whose result is kept gets the kernel calls
of full storage on the same numbers, and the gradients are added in the same
order (the direction's last segment first; the head's last segment first), so
the gradient is bitwise that of full storage. The runs that only rebuild an
adjoint write into scratch buffers.

Memory: O(N L (T/k + k) H) for any depth, direction and head, beside X and the
targets. Time: more forward and backward runs of each segment. With ``F`` and
``B`` a direction's forward and backward over the sequence, a network of L
layers takes ``2 L^2 F`` for its checkpoints and, per layer ``l`` and
direction, one run of the stack (``2L F``; the top layer under a many-to-one
head ``(2l + 1) F``) and of the layers above (``2(L-1-l) B``) besides its own
``B``: for two
layers and one output per sequence, ``22F + 8B`` against full storage's
``4F + 4B``. That is the price of memory that does not grow with T:
``memory="checkpoint"`` asks for it (:data:`rnnumba.layout.LOCKSTEP`), and
``"auto"`` takes it only where the checkpoints that keep every step's layer
outputs would not fit (:func:`rnnumba.backends.cpu.checkpointed`).
"""

import numpy as np

from . import dropout
from ._jit import jit
from ._linalg import empty_aligned
from ._rows import add_row, copy_row, drop_padding, tensor
from .layout import B_AT, HIDDEN, LAYERS, MANY, OUTPUTS, W_AT
from .lockstep import add_head_segment, head_segment, net_weights, readout_segment
from .losses import head as head_loss
from .losses import readout
from .segments import (
    add_shares,
    head_rows,
    keep_row,
    read_step,
    segment_lengths,
    segment_start,
    segment_steps,
    walk_segment,
    write_inputs,
    write_outputs,
)


def bilockstep(family, FORWARD, BACKWARD, gates, width, carried):
    """Build a cell family's bidirectional lockstep kernels: a chunk's training call and its prediction.

    ``FORWARD``/``BACKWARD`` are the cell's kernels, ``gates``, ``width`` and
    ``carried`` as for :func:`rnnumba.segments.walkers`. Both kernels take the
    arguments of the engine's ``chunk_loss_and_grad`` / ``chunk_predict``
    (plus ``n_extra``, the length of the cell's extra tensor) for a
    bidirectional network.
    """

    @jit(inline="always")
    def segment_buffers(weights, n, k, like):
        """Return a segment's rows of ``[h; x]`` and state per layer and direction, and layer outputs."""
        H = weights[0][1].shape[0] // gates
        HXw = []  # (one list per statement: numba types each from its appends)
        Sw = []
        outs = []
        for ld in range(len(weights)):
            HXw.append(np.zeros((k + 1, n, weights[ld][0].shape[1]), dtype=like.dtype))
            Sw.append(np.zeros((k + 1, n, width * H), dtype=like.dtype))
        for _ in range(len(weights) // 2):
            outs.append(np.zeros((k, n, 2 * H), dtype=like.dtype))
        return HXw, Sw, outs

    @jit(name=f"bi_segment_{family}", driver=True)
    def run_segment(weights, X, below, s, layer, d, s0, lens, lens_s, HX, S):
        """Run direction ``d`` of a layer over segment ``s`` from row 0 of ``HX``, ``S``.

        Its inputs (``X``, or the layer below's outputs ``below``, original
        step ``u`` in row ``u - a``) into ``HX``, then the cell's forward;
        ``lens_s`` gets the segment's valid steps.
        """
        T, H = X.shape[1], weights[1].shape[0] // gates
        a, steps, p = segment_start(s, T, d)
        segment_lengths(lens, a, steps, lens_s)
        write_inputs(HX, 0, p, steps, X, below, a, layer, s0, lens, d, H)
        S[1 : steps + 1] = 0.0  # as a fresh buffer: a frozen step writes part of it
        FORWARD(weights[0], weights[1], weights[2], HX[: steps + 1], S[: steps + 1], lens_s)

    @jit(name=f"bi_layers_{family}", driver=True)
    def layers_forward(weights, X, kept, s, upto, s0, lens, lens_s, drop, HXw, Sw, outs):
        """Run layers ``0 .. upto - 1``, both directions, over segment ``s`` from their checkpoints.

        ``kept = (HXc, Sc)``, the checkpoints; each direction runs in its
        ``HXw``/``Sw``, and each layer's outputs go into ``outs[layer]``
        (original step ``u`` in row ``u - a``), through its dropout mask below
        the top layer.
        """
        HXc, Sc = kept
        T, L, H = X.shape[1], len(weights) // 2, weights[0][1].shape[0] // gates
        n_seg = HXc[0].shape[0] - 1
        for layer in range(upto):
            for d in range(2):
                ld = 2 * layer + d
                j = walk_segment(s, n_seg, d)  # (its own inverse)
                keep_row(HXw[ld][0], HXc[ld][j])
                keep_row(Sw[ld][0], Sc[ld][j])
                below = outs[layer - 1] if layer > 0 else outs[0]
                run_segment(weights[ld], X, below, s, layer, d, s0, lens, lens_s, HXw[ld], Sw[ld])
                a, steps, p = segment_start(s, T, d)
                write_outputs(outs[layer], a, HXw[ld], p, steps, lens, d, H, T)
            if layer < L - 1:
                dropout.apply(outs[layer], drop, layer, s0, lens, s * segment_steps(T))

    @jit(name=f"bi_forward_{family}", driver=True)
    def bi_forward(weights, X, lens, drop, h0, s0):
        """Run every layer and direction over the sequence; return their checkpoints ``(HXc, Sc)``.

        ``HXc[2 * layer + d]`` holds the first row of each segment in the
        direction's order, then the final row; ``h0`` (2L, n, carried width)
        or empty.
        """
        L, H = len(weights) // 2, weights[0][1].shape[0] // gates
        n, T = lens.shape[0], X.shape[1]
        k = segment_steps(T)
        n_seg = (T + k - 1) // k
        HXc = []  # (one list per statement: numba types each from its appends)
        Sc = []
        for ld in range(2 * L):
            HXc.append(np.zeros((n_seg + 1, n, weights[ld][0].shape[1]), dtype=X.dtype))
            Sc.append(np.zeros((n_seg + 1, n, width * H), dtype=X.dtype))
        HXw, Sw, outs = segment_buffers(weights, n, k, X)
        lens_s = np.empty(n, dtype=np.int64)
        for layer in range(L):
            below = outs[layer - 1] if layer > 0 else outs[0]
            for d in range(2):
                ld = 2 * layer + d
                for i in range(h0.shape[1]):  # h_{-1} (and the LSTM's c_{-1}) in row 0
                    copy_row(HXw[ld][0, i, :H], h0[ld, i, :H])
                    if carried == 2:
                        copy_row(Sw[ld][0, i, :H], h0[ld, i, H:])
                prev = k
                for j in range(n_seg):
                    s = walk_segment(j, n_seg, d)
                    if j > 0:  # the previous segment's last row starts this one
                        keep_row(HXw[ld][0], HXw[ld][prev])
                        keep_row(Sw[ld][0], Sw[ld][prev])
                    layers_forward(weights, X, (HXc, Sc), s, layer, s0, lens, lens_s, drop, HXw, Sw, outs)
                    keep_row(HXc[ld][j], HXw[ld][0])  # the checkpoint
                    keep_row(Sc[ld][j], Sw[ld][0])
                    run_segment(weights[ld], X, below, s, layer, d, s0, lens, lens_s, HXw[ld], Sw[ld])
                    prev = segment_start(s, T, d)[1]
                keep_row(HXc[ld][n_seg], HXw[ld][prev])  # the final row
                keep_row(Sc[ld][n_seg], Sw[ld][prev])
        return HXc, Sc

    @jit(name=f"bi_adjoint_{family}", driver=True)
    def adjoint(weights, scratch, X, run, s, layer, s0, lens, lens_s, drop, dTop, dOut, dck):
        """Return dL/d(outputs of ``layer``) on segment ``s``, from ``dOut``, those of the top layer.

        Down through each layer above: both directions' ``backward`` from
        their adjoint checkpoints ``dck``, into ``scratch`` gradients, their
        dL/dx added in original time (forward direction first) and through the
        dropout mask of the layer below. ``run = (HXw, Sw)``: the stack's
        segment, run (:func:`layers_forward`); ``dTop`` (n, 2H) or empty: a
        many-to-one head's dL/d(final states).
        """
        HXw, Sw = run
        T, L, H = X.shape[1], len(weights) // 2, weights[0][1].shape[0] // gates
        n = lens.shape[0]
        n_seg = dck[0].shape[0]
        a, steps, _ = segment_start(s, T, 0)
        for m in range(L - 1, layer, -1):
            dBelow = np.zeros((steps, n, 2 * H), dtype=X.dtype)
            for e in range(2):
                me = 2 * m + e
                _, _, p = segment_start(s, T, e)
                dHs = np.zeros((steps, n, H), dtype=X.dtype)
                top = dTop[:, e * H : (e + 1) * H] if m == L - 1 else dTop[:0, :H]
                head_rows(dHs, dOut, a, top, p, lens, e, T)
                dS = dck[me][walk_segment(s, n_seg, e)].copy()
                W, b, extra = weights[me]
                dX = np.zeros((steps, n, W.shape[1] - H), dtype=X.dtype)
                gW, gb, ge = scratch[me]
                segment_lengths(lens, a, steps, lens_s)
                hx, st = HXw[me][: steps + 1], Sw[me][: steps + 1]
                BACKWARD(W, b, extra, hx, st, lens_s, dHs, dS, gW, gb, ge, dX, dS[:0])
                for i in range(n):
                    for t in range(p, p + steps):
                        u = read_step(t, lens[i], e, T)
                        if u >= 0:
                            add_row(dBelow[u - a, i], dX[t - p, i, : 2 * H])
            dropout.apply(dBelow, drop, m - 1, s0, lens, a)
            dOut = dBelow
        return dOut

    @jit(name=f"bi_loss_and_grad_{family}", driver=True)
    def bi_loss_and_grad(theta, g, spec, offsets, X, lengths, Y, loss, scale, drop, h0, dh0, s0, s1, n_extra):
        """Return a chunk's loss, its gradient written into ``g``, by bidirectional lockstep.

        The engine's ``chunk_loss_and_grad`` for a bidirectional network with
        checkpoints (it has checked ``X`` and ``Y``); module docstring.
        """
        H, L, O, many = spec[HIDDEN], spec[LAYERS], spec[OUTPUTS], spec[MANY]
        n, T = s1 - s0, X.shape[1]
        lens = lengths[s0:s1]
        dtype = theta.dtype
        weights = net_weights(theta, spec, offsets, X.shape[2], n, n_extra, True, gates)
        grads = net_weights(g, spec, offsets, X.shape[2], n, n_extra, False, gates)
        hc0 = h0[:, s0:s1] if h0.shape[0] > 0 else h0
        head = offsets[2 * L]
        W_out = tensor(theta, head[W_AT], O, 2 * H)
        b_out = theta[head[B_AT] : head[B_AT] + O]
        head_grads = (tensor(g, head[W_AT], O, 2 * H), g[head[B_AT] : head[B_AT] + O])
        HXc, Sc = bi_forward(weights, X, lens, drop, hc0, s0)
        k = segment_steps(T)
        n_seg = (T + k - 1) // k

        # many-to-one: the head on each direction's final state, before BPTT
        dTop = np.empty((0, 2 * H), dtype=dtype)
        value = 0.0
        if not many:
            F = np.empty((n, 2 * H), dtype=dtype)
            Yc = np.empty((n, Y.shape[2]), dtype=dtype)
            for i in range(n):
                for d in range(2):  # states freeze: the final row
                    copy_row(F[i, d * H : (d + 1) * H], HXc[2 * (L - 1) + d][n_seg, i, :H])
                copy_row(Yc[i], Y[s0 + i, 0])
            dTop = np.empty_like(F)
            value = head_loss(W_out, b_out, F, Yc, loss, scale, dTop, head_grads[0], head_grads[1])

        carry = dh0.shape[0] > 0 or n_seg > 1
        HXw, Sw, outs = segment_buffers(weights, n, k, theta)
        dck = []  # adjoint checkpoints: the dL/dh (and dL/dc) entering each segment's BPTT
        dWp = []
        parts = []
        for ld in range(2 * L):
            Kp = weights[ld][0].shape[1]
            dck.append(np.zeros((n_seg, n if carry else 0, carried * H), dtype=dtype))
            dW = grads[ld][0]
            dWp.append(dW if Kp == dW.shape[1] else empty_aligned(gates * H, Kp, dtype))
            pb, pe = np.empty(gates * H, dtype=dtype), np.empty(n_extra, dtype=dtype)
            parts.append((empty_aligned(gates * H, Kp, dtype), pb, pe))
        head_part = (np.empty_like(head_grads[0]), np.empty_like(head_grads[1]))
        head_scratch = (np.empty_like(head_grads[0]), np.empty_like(head_grads[1]))
        lens_s = np.empty(n, dtype=np.int64)
        nothing = np.empty((0, n, 2 * H), dtype=dtype)
        for layer in range(L - 1, -1, -1):
            for d in range(2):
                ld = 2 * layer + d
                W, b, extra = weights[ld]
                dS = np.zeros((n if carry else 0, carried * H), dtype=dtype)
                for j in range(n_seg - 1, -1, -1):  # the direction's segments from its last
                    s = walk_segment(j, n_seg, d)
                    a, steps, p = segment_start(s, T, d)
                    if layer == L - 1 and not many:  # the layers below, then this direction alone
                        layers_forward(weights, X, (HXc, Sc), s, layer, s0, lens, lens_s, drop, HXw, Sw, outs)
                        keep_row(HXw[ld][0], HXc[ld][j])
                        keep_row(Sw[ld][0], Sc[ld][j])
                        below = outs[layer - 1] if layer > 0 else outs[0]
                        run_segment(weights[ld], X, below, s, layer, d, s0, lens, lens_s, HXw[ld], Sw[ld])
                        dOut = nothing
                    else:  # the whole stack, the head, and the adjoint down to this layer
                        layers_forward(weights, X, (HXc, Sc), s, L, s0, lens, lens_s, drop, HXw, Sw, outs)
                        dOut = nothing
                        if many:
                            dOut = np.zeros((steps, n, 2 * H), dtype=dtype)
                            if layer == L - 1 and d == 0:  # the head's own pass: last segment first
                                value += add_head_segment(
                                    W_out, b_out, outs[L - 1], a, a, steps, lens, Y, s0, loss, scale, dOut,
                                    head_grads, head_part, s == n_seg - 1,
                                )  # fmt: skip
                            else:
                                head_segment(
                                    W_out, b_out, outs[L - 1], a, a, steps, lens, Y, s0, loss, scale, dOut,
                                    head_scratch[0], head_scratch[1],
                                )  # fmt: skip
                        dOut = adjoint(
                            weights, parts, X, (HXw, Sw), s, layer, s0, lens, lens_s, drop, dTop, dOut, dck
                        )
                        segment_lengths(lens, a, steps, lens_s)
                    dHs = np.zeros((steps, n, H), dtype=dtype)
                    top = dTop[:, d * H : (d + 1) * H] if layer == L - 1 else dTop[:0, :H]
                    head_rows(dHs, dOut, a, top, p, lens, d, T)
                    if carry:
                        keep_row(dck[ld][j], dS)
                    dX = np.zeros((steps if layer > 0 else 0, n, W.shape[1] - H), dtype=dtype)
                    dh_out = dS if j > 0 or dh0.shape[0] > 0 else dS[:0]
                    hx, st = HXw[ld][: steps + 1], Sw[ld][: steps + 1]
                    if j == n_seg - 1:
                        gW, gb, ge = dWp[ld], grads[ld][1], grads[ld][2]
                        BACKWARD(W, b, extra, hx, st, lens_s, dHs, dS, gW, gb, ge, dX, dh_out)
                    else:
                        pW, pb, pe = parts[ld]
                        BACKWARD(W, b, extra, hx, st, lens_s, dHs, dS, pW, pb, pe, dX, dh_out)
                        add_shares((dWp[ld], grads[ld][1], grads[ld][2]), parts[ld])
                drop_padding(grads[ld][0], dWp[ld])
                if dh0.shape[0] > 0:  # this chunk's rows of dL/dh0
                    for i in range(n):
                        copy_row(dh0[ld, s0 + i], dS[i])
        return value

    @jit(name=f"bi_predict_{family}", driver=True)
    def bi_predict(theta, spec, offsets, X, lengths, h0, s0, s1, out, hn, n_extra):
        """Write a chunk's head outputs (final states into ``hn``, if not empty) by bidirectional lockstep.

        The engine's ``chunk_predict`` for a bidirectional network with
        checkpoints: memory as sqrt(T) whatever the depth, many-to-many
        outputs written segment by segment.
        """
        H, L, O, many = spec[HIDDEN], spec[LAYERS], spec[OUTPUTS], spec[MANY]
        n, T = s1 - s0, X.shape[1]
        lens = lengths[s0:s1]
        weights = net_weights(theta, spec, offsets, X.shape[2], n, n_extra, True, gates)
        no_dropout = np.zeros(2, dtype=np.int64)
        head = offsets[2 * L]
        W_out = tensor(theta, head[W_AT], O, 2 * H)
        b_out = theta[head[B_AT] : head[B_AT] + O]
        hc0 = h0[:, s0:s1] if h0.shape[0] > 0 else h0
        HXc, Sc = bi_forward(weights, X, lens, no_dropout, hc0, s0)
        final = HXc[0].shape[0] - 1
        for ld in range(hn.shape[0]):
            for i in range(n):
                copy_row(hn[ld, s0 + i, :H], HXc[ld][final, i, :H])
                if carried == 2:
                    copy_row(hn[ld, s0 + i, H:], Sc[ld][final, i, :H])
        if many:  # the stack again, segment by segment, and the head on each
            HXw, Sw, outs = segment_buffers(weights, n, segment_steps(T), theta)
            lens_s = np.empty(n, dtype=np.int64)
            for s in range(final):
                layers_forward(weights, X, (HXc, Sc), s, L, s0, lens, lens_s, no_dropout, HXw, Sw, outs)
                a, steps, _ = segment_start(s, T, 0)
                readout_segment((W_out, b_out), outs[L - 1], a, steps, lens, s0, out)
            return
        F = np.empty((n, 2 * H), dtype=theta.dtype)
        for i in range(n):
            for d in range(2):
                copy_row(F[i, d * H : (d + 1) * H], HXc[2 * (L - 1) + d][final, i, :H])
        Yhat = np.empty((n, O), dtype=theta.dtype)
        readout(W_out, b_out, F, Yhat)
        for i in range(n):
            copy_row(out[s0 + i, 0], Yhat[i])

    return bi_loss_and_grad, bi_predict
