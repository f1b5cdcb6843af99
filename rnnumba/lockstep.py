"""Lockstep: checkpointed BPTT through a stack of unidirectional layers, segment by segment.

The walks of :mod:`rnnumba.segments` take one layer and direction at a time
over the whole sequence, so what passes between layers (each layer's outputs,
and in BPTT their gradients) and a many-to-many head's features are kept for
every step: memory as T. A stack of unidirectional layers walks in lockstep
instead, one segment of ``k`` steps at a time:

* forward: the segment through layer 0, then layer 1, ..., each layer reading
  the segment's outputs of the layer below (through the dropout mask) and
  keeping only its checkpoint (the segment's first row of ``[h; x]`` and
  state; and the final row);
* BPTT, from the last segment to the first: the segment's forward pass again
  through every layer from the checkpoints, the head on the segment's steps
  (many-to-many: :func:`head_segment`), then every layer's cell ``backward``
  top down, ``dL/dx`` of a layer (through the mask) being ``dL/dh`` of the
  layer below on the same steps, and each layer's adjoint carried into the
  segment before.

Every (layer, segment) gets the walks' kernel calls on the same numbers, and
each layer's and the head's weight gradients are added in the same order
(the last segment's first), so the gradient is bitwise that of full storage.
The functions here that call the head are drivers (``rnnumba._jit``): the head
runs the same machine code from either path, never one inlined and optimised
again in a caller's context (with ``reassoc``, another vectorisation could
round differently).
Memory: O(N L (T/k + k) H) for any depth and head, beside X and the targets.

A bidirectional network walks in lockstep too, with adjoint checkpoints:
:mod:`rnnumba.bilockstep`.
"""

import numpy as np

from . import dropout
from ._jit import jit
from ._linalg import empty_aligned
from ._rows import add_row, copy_row, drop_padding, padded_weights, padded_width, tensor
from .layout import B_AT, DIRECTIONS, EXTRA_AT, HIDDEN, LAYERS, MANY, OUTPUTS, W_AT
from .losses import head as head_loss
from .losses import readout
from .segments import add_shares, keep_row, segment_lengths, segment_steps, write_inputs, write_outputs


@jit(inline="always")
def net_weights(v, spec, offsets, I0, n, n_extra, padded, gates):
    """Return ``(W, b, extra)`` of each layer and direction (``layer * D + d``) in ``v``.

    ``v``: ``theta`` (``W`` padded to whole SIMD registers, :func:`padded_width`,
    or copied to a cache line: read-only) or its gradient (``padded`` False: views).
    """
    H, L, D = spec[HIDDEN], spec[LAYERS], spec[DIRECTIONS]
    out = []
    for ld in range(L * D):
        K = H + (I0 if ld < D else D * H)
        work = n * gates * H * K  # multiply-adds of a step's product
        Kp = padded_width(K, work, v.itemsize) if padded else K
        row = offsets[ld]
        if padded:
            W = padded_weights(v, row[W_AT], gates * H, K, Kp, work)
        else:  # the gradient: views, written in place
            W = tensor(v, row[W_AT], gates * H, K)
        b = v[row[B_AT] : row[B_AT] + gates * H]
        out.append((W, b, v[row[EXTRA_AT] : row[EXTRA_AT] + n_extra]))
    return out


@jit(driver=True)
def head_segment(W_out, b_out, top, off, a, steps, lens, Y, s0, loss, scale, dOut, dW_out, db_out):
    """Run the many-to-many head on the valid steps ``a : a + steps`` of samples ``s0 + i``.

    Features ``top[t - off, i]``, targets ``Y[s0 + i, t]`` (rows sample by
    sample, :func:`rnnumba.losses.head`); dL/d(features) into ``dOut[t - off, i]``;
    ``dW_out``, ``db_out`` written. Returns the loss of those steps.
    """
    n = lens.shape[0]
    M = 0
    for i in range(n):
        M += max(0, min(a + steps, lens[i]) - a)
    F = np.empty((M, top.shape[2]), dtype=top.dtype)
    Yc = np.empty((M, Y.shape[2]), dtype=top.dtype)
    m = 0
    for i in range(n):
        for t in range(a, min(a + steps, lens[i])):
            copy_row(F[m], top[t - off, i])
            copy_row(Yc[m], Y[s0 + i, t])
            m += 1
    dF = np.empty_like(F)
    value = head_loss(W_out, b_out, F, Yc, loss, scale, dF, dW_out, db_out)
    m = 0
    for i in range(n):
        for t in range(a, min(a + steps, lens[i])):
            copy_row(dOut[t - off, i], dF[m])
            m += 1
    return value


@jit(inline="always")
def add_head_segment(W_out, b_out, top, off, a, steps, lens, Y, s0, loss, scale, dOut, grads, part, last):
    """Run :func:`head_segment`: the last segment into ``grads = (dW_out, db_out)``, another added to them."""
    if last:
        return head_segment(
            W_out, b_out, top, off, a, steps, lens, Y, s0, loss, scale, dOut, grads[0], grads[1]
        )
    value = head_segment(W_out, b_out, top, off, a, steps, lens, Y, s0, loss, scale, dOut, part[0], part[1])
    for j in range(grads[0].shape[0]):
        add_row(grads[0][j], part[0][j])
    add_row(grads[1], part[1])
    return value


@jit(driver=True)
def many_head(W_out, b_out, top, lens, Y, s0, loss, scale, dOut, grads):
    """Run the many-to-many head over a whole ``top`` (T, n, H), segment by segment, as lockstep does.

    The last segment first, each segment's loss and gradients added in that
    order (:func:`add_head_segment`), so that full storage and lockstep agree
    bitwise. Returns the loss.
    """
    T = top.shape[0]
    k = segment_steps(T)
    n_seg = (T + k - 1) // k
    part = (np.empty_like(grads[0]), np.empty_like(grads[1]))
    value = 0.0
    for s in range(n_seg - 1, -1, -1):
        a = s * k
        last = s == n_seg - 1
        value += add_head_segment(
            W_out,
            b_out,
            top,
            np.int64(0),
            a,
            min(k, T - a),
            lens,
            Y,
            s0,
            loss,
            scale,
            dOut,
            grads,
            part,
            last,
        )
    return value


def lockstep(family, FORWARD, BACKWARD, gates, width, carried):
    """Build a cell family's lockstep kernels: a chunk's training call and its prediction.

    ``FORWARD``/``BACKWARD`` are the cell's kernels, ``gates``, ``width`` and
    ``carried`` as for :func:`rnnumba.segments.walkers`. Both kernels take the
    arguments of the engine's ``chunk_loss_and_grad`` / ``chunk_predict``
    (plus ``n_extra``, the length of the cell's extra tensor) for a
    unidirectional network.
    """

    @jit(name=f"stack_segment_{family}", driver=True)
    def run_segment(weights, X, below, a, steps, layer, s0, lens, lens_s, HX, S):
        """Run steps ``a : a + steps`` of a layer from row 0 of ``HX``, ``S``: inputs, then the forward."""
        H = weights[1].shape[0] // gates
        write_inputs(HX, 0, a, steps, X, below, a, layer, s0, lens, 0, H)
        S[1 : steps + 1] = 0.0  # as a fresh buffer: a frozen step writes part of it
        FORWARD(weights[0], weights[1], weights[2], HX[: steps + 1], S[: steps + 1], lens_s)

    @jit(name=f"stack_forward_{family}", driver=True)
    def stack_forward(weights, X, lens, drop, h0, s0, head, out):
        """Forward through every layer, segment after segment; return each layer's checkpoints.

        ``HXc[l]``/``Sc[l]`` hold each segment's first row and the final one.
        ``h0`` (L, n, carried width) or empty; with ``out`` (N, T, O) not
        empty, the head's outputs ``F W_out^T + b_out`` of every valid step
        (``head = (W_out, b_out)``) go into ``out[s0 + i, t]``, segment by segment.
        """
        L, H = len(weights), weights[0][1].shape[0] // gates
        n, T = lens.shape[0], X.shape[1]
        k = segment_steps(T)
        n_seg = (T + k - 1) // k
        HXc = []  # (one list per statement: numba types each from its appends)
        Sc = []
        HXw = []
        Sw = []
        outs = []
        for layer in range(L):
            Kp = weights[layer][0].shape[1]
            HXc.append(np.zeros((n_seg + 1, n, Kp), dtype=X.dtype))
            Sc.append(np.zeros((n_seg + 1, n, width * H), dtype=X.dtype))
            HXw.append(np.zeros((k + 1, n, Kp), dtype=X.dtype))
            Sw.append(np.zeros((k + 1, n, width * H), dtype=X.dtype))
            outs.append(np.zeros((k, n, H), dtype=X.dtype))
            for i in range(h0.shape[1]):  # h_{-1} (and the LSTM's c_{-1}) in row 0
                copy_row(HXw[layer][0, i, :H], h0[layer, i, :H])
                if carried == 2:
                    copy_row(Sw[layer][0, i, :H], h0[layer, i, H:])
        lens_s = np.empty(n, dtype=np.int64)
        for s in range(n_seg):
            a = s * k
            steps = min(k, T - a)
            segment_lengths(lens, a, steps, lens_s)
            for layer in range(L):
                if s > 0:  # the previous segment's last row starts this one
                    keep_row(HXw[layer][0], HXw[layer][k])
                    keep_row(Sw[layer][0], Sw[layer][k])
                below = outs[layer - 1] if layer > 0 else outs[0]
                write_inputs(HXw[layer], 0, a, steps, X, below, a, layer, s0, lens, 0, H)
                keep_row(HXc[layer][s], HXw[layer][0])  # the checkpoint
                keep_row(Sc[layer][s], Sw[layer][0])
                run_segment(
                    weights[layer], X, below, a, steps, layer, s0, lens, lens_s, HXw[layer], Sw[layer]
                )
                if layer < L - 1 or out.shape[0] > 0:
                    write_outputs(outs[layer], a, HXw[layer], a, steps, lens, 0, H, T)
                if layer < L - 1:
                    dropout.apply(outs[layer], drop, layer, s0, lens, a)
            if out.shape[0] > 0:
                readout_segment(head, outs[L - 1], a, steps, lens, s0, out)
        last = T - (n_seg - 1) * k
        for layer in range(L):  # the final rows
            keep_row(HXc[layer][n_seg], HXw[layer][last])
            keep_row(Sc[layer][n_seg], Sw[layer][last])
        return HXc, Sc

    @jit(name=f"stack_loss_and_grad_{family}", driver=True)
    def stack_loss_and_grad(
        theta, g, spec, offsets, X, lengths, Y, loss, scale, drop, h0, dh0, s0, s1, n_extra
    ):
        """Return a chunk's loss, its gradient written into ``g``, by lockstep (module docstring).

        The engine's ``chunk_loss_and_grad`` for a unidirectional network with
        checkpoints (it has checked ``X`` and ``Y``).
        """
        H, L, O, many = spec[HIDDEN], spec[LAYERS], spec[OUTPUTS], spec[MANY]
        n, T = s1 - s0, X.shape[1]
        lens = lengths[s0:s1]
        weights = net_weights(theta, spec, offsets, X.shape[2], n, n_extra, True, gates)
        grads = net_weights(g, spec, offsets, X.shape[2], n, n_extra, False, gates)
        hc0 = h0[:, s0:s1] if h0.shape[0] > 0 else h0
        nothing = np.empty((0, 1, O), dtype=theta.dtype)
        head = offsets[L]
        W_out = tensor(theta, head[W_AT], O, H)
        b_out = theta[head[B_AT] : head[B_AT] + O]
        head_grads = (tensor(g, head[W_AT], O, H), g[head[B_AT] : head[B_AT] + O])
        HXc, Sc = stack_forward(weights, X, lens, drop, hc0, s0, (W_out, b_out), nothing)

        # many-to-one: the head on each sample's final state, before BPTT
        dTop = np.empty((0, H), dtype=theta.dtype)
        value = 0.0
        if not many:
            F = np.empty((n, H), dtype=theta.dtype)
            Yc = np.empty((n, Y.shape[2]), dtype=theta.dtype)
            for i in range(n):
                copy_row(F[i], HXc[L - 1][HXc[L - 1].shape[0] - 1, i, :H])  # states freeze: the final row
                copy_row(Yc[i], Y[s0 + i, 0])
            dTop = np.empty_like(F)
            value = head_loss(W_out, b_out, F, Yc, loss, scale, dTop, head_grads[0], head_grads[1])

        k = segment_steps(T)
        n_seg = (T + k - 1) // k
        carry = dh0.shape[0] > 0 or n_seg > 1
        HXw = []
        Sw = []
        outs = []
        dS = []
        parts = []
        dWp = []
        for layer in range(L):
            Kp = weights[layer][0].shape[1]
            HXw.append(np.zeros((k + 1, n, Kp), dtype=theta.dtype))
            Sw.append(np.zeros((k + 1, n, width * H), dtype=theta.dtype))
            outs.append(np.zeros((k, n, H), dtype=theta.dtype))
            dS.append(np.zeros((n if carry else 0, carried * H), dtype=theta.dtype))
            dW = grads[layer][0]
            dWp.append(dW if Kp == dW.shape[1] else empty_aligned(gates * H, Kp, theta.dtype))
            pb, pe = np.empty(gates * H, dtype=theta.dtype), np.empty(n_extra, dtype=theta.dtype)
            parts.append((empty_aligned(gates * H, Kp, theta.dtype), pb, pe))
        head_part = (np.empty_like(head_grads[0]), np.empty_like(head_grads[1]))
        lens_s = np.empty(n, dtype=np.int64)
        for s in range(n_seg - 1, -1, -1):
            a = s * k
            steps = min(k, T - a)
            segment_lengths(lens, a, steps, lens_s)
            for layer in range(L):  # the segment's forward pass again, from the checkpoints
                keep_row(HXw[layer][0], HXc[layer][s])
                keep_row(Sw[layer][0], Sc[layer][s])
                below = outs[layer - 1] if layer > 0 else outs[0]
                run_segment(
                    weights[layer], X, below, a, steps, layer, s0, lens, lens_s, HXw[layer], Sw[layer]
                )
                if layer < L - 1 or many:
                    write_outputs(outs[layer], a, HXw[layer], a, steps, lens, 0, H, T)
                if layer < L - 1:
                    dropout.apply(outs[layer], drop, layer, s0, lens, a)
            dOut = np.zeros((steps, n, H), dtype=theta.dtype)  # dL/dh of the layer BPTT is in
            if many:
                value += add_head_segment(
                    W_out, b_out, outs[L - 1], a, a, steps, lens, Y, s0, loss, scale, dOut,
                    head_grads, head_part, s == n_seg - 1,
                )  # fmt: skip
            for layer in range(L - 1, -1, -1):
                dHs = np.zeros((steps, n, H), dtype=theta.dtype)
                for i in range(n):
                    for t in range(a, min(a + steps, lens[i])):
                        copy_row(dHs[t - a, i], dOut[t - a, i])
                    end = lens[i] - 1  # the final state feeds a many-to-one head
                    if layer == L - 1 and not many and a <= end < a + steps:
                        add_row(dHs[end - a, i], dTop[i])
                Kp = weights[layer][0].shape[1]
                dX = np.zeros((steps if layer > 0 else 0, n, Kp - H), dtype=theta.dtype)
                dh_out = dS[layer] if s > 0 or dh0.shape[0] > 0 else dS[layer][:0]
                W, b, extra = weights[layer]
                hx, st = HXw[layer][: steps + 1], Sw[layer][: steps + 1]
                if s == n_seg - 1:
                    gW, gb, ge = dWp[layer], grads[layer][1], grads[layer][2]
                    BACKWARD(W, b, extra, hx, st, lens_s, dHs, dS[layer], gW, gb, ge, dX, dh_out)
                else:
                    pW, pb, pe = parts[layer]
                    BACKWARD(W, b, extra, hx, st, lens_s, dHs, dS[layer], pW, pb, pe, dX, dh_out)
                    add_shares((dWp[layer], grads[layer][1], grads[layer][2]), parts[layer])
                if layer > 0:  # dL/dh of the layer below, through its dropout mask
                    dOut = np.zeros((steps, n, H), dtype=theta.dtype)
                    for i in range(n):
                        for t in range(a, min(a + steps, lens[i])):
                            add_row(dOut[t - a, i], dX[t - a, i, :H])
                    dropout.apply(dOut, drop, layer - 1, s0, lens, a)
        for layer in range(L):
            drop_padding(grads[layer][0], dWp[layer])
            if dh0.shape[0] > 0:  # this chunk's rows of dL/dh0
                for i in range(n):
                    copy_row(dh0[layer, s0 + i], dS[layer][i])
        return value

    @jit(name=f"stack_predict_{family}", driver=True)
    def stack_predict(theta, spec, offsets, X, lengths, h0, s0, s1, out, hn, n_extra):
        """Write a chunk's head outputs (and final states into ``hn``, if not empty) by lockstep.

        The engine's ``chunk_predict`` for a unidirectional network with
        checkpoints: memory as sqrt(T) whatever the depth, many-to-many
        outputs written segment by segment.
        """
        H, L, O, many = spec[HIDDEN], spec[LAYERS], spec[OUTPUTS], spec[MANY]
        n = s1 - s0
        lens = lengths[s0:s1]
        weights = net_weights(theta, spec, offsets, X.shape[2], n, n_extra, True, gates)
        no_dropout = np.zeros(2, dtype=np.int64)
        head = offsets[L]
        W_out = tensor(theta, head[W_AT], O, H)
        b_out = theta[head[B_AT] : head[B_AT] + O]
        hc0 = h0[:, s0:s1] if h0.shape[0] > 0 else h0
        nothing = np.empty((0, 1, O), dtype=theta.dtype)
        HXc, Sc = stack_forward(
            weights, X, lens, no_dropout, hc0, s0, (W_out, b_out), out if many else nothing
        )
        final = HXc[0].shape[0] - 1
        for layer in range(hn.shape[0]):
            for i in range(n):
                copy_row(hn[layer, s0 + i, :H], HXc[layer][final, i, :H])
                if carried == 2:
                    copy_row(hn[layer, s0 + i, H:], Sc[layer][final, i, :H])
        if not many:
            F = np.empty((n, H), dtype=theta.dtype)
            for i in range(n):
                copy_row(F[i], HXc[L - 1][final, i, :H])
            Yhat = np.empty((n, O), dtype=theta.dtype)
            readout(W_out, b_out, F, Yhat)
            for i in range(n):
                copy_row(out[s0 + i, 0], Yhat[i])

    return stack_loss_and_grad, stack_predict


@jit(driver=True)
def readout_segment(head, top, a, steps, lens, s0, out):
    """``out[s0 + i, t] = top[t - a, i] W_out^T + b_out`` for the valid steps ``a : a + steps``."""
    n = lens.shape[0]
    M = 0
    for i in range(n):
        M += max(0, min(a + steps, lens[i]) - a)
    F = np.empty((M, top.shape[2]), dtype=top.dtype)
    m = 0
    for i in range(n):
        for t in range(a, min(a + steps, lens[i])):
            copy_row(F[m], top[t - a, i])
            m += 1
    Yhat = np.empty((M, out.shape[2]), dtype=top.dtype)
    readout(head[0], head[1], F, Yhat)
    m = 0
    for i in range(n):
        for t in range(a, min(a + steps, lens[i])):
            copy_row(out[s0 + i, t], Yhat[m])
            m += 1
