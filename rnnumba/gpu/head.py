"""The linear head and the losses on the device.

Rows of the head: many-to-one, row ``n`` reads each direction's final state
(forward: step ``len-1``; reverse: step 0, PyTorch's ``h_n``); many-to-many,
row ``n*T + tau`` reads the top layer's output at every step, and rows in the
padding are masked (no loss, zero gradient, NaN predictions).

Per-row losses are written to an array and summed by one block in a fixed
order. CPU siblings: :mod:`rnnumba.losses` and ``rnnumba.engine._features``.
"""

import math

import numpy as np

from ..losses import MSE  # the CPU head's loss codes: one owner
from ._device import cuda
from ._registry import I64, IVEC, builder, compiled, vec
from .linalg import dtkey, grid1

# numba.cuda, bound when the first kernel is built; a module global (not a
# closure variable) so that the CUDA simulator can swap it for its fake module
cu = None


def _bind():
    """Bind the module global ``cu`` to ``numba.cuda`` (see the comment above)."""
    global cu
    cu = cuda()


@builder("gather_final")
def build_gather_final(dt):
    """Many-to-one head input ``F`` (N, H*D) from the top layer's outputs ``Out`` (N, T, H*D).

    ``F[n] = [h^{top,0}_{len_n - 1}; h^{top,1}_0]``, one thread per entry. CPU
    sibling: ``rnnumba.engine._features``.
    """
    _bind()

    def gather_final(Out, N, T, H, D, lengths, F):
        e = cu.grid(1)
        HD = H * D
        if e < N * HD:
            n = e // HD
            col = e - n * HD
            tau = lengths[n] - 1 if col < H else 0
            F[e] = Out[(n * T + tau) * HD + col]

    V = vec(dt)
    return gather_final, (V, I64, I64, I64, I64, IVEC, V)


@builder("scatter_final")
def build_scatter_final(dt):
    """Scatter ``dF`` (N, H*D) into the final steps' rows of ``dOut``: the transpose of ``gather_final``.

    ``dOut[n, len_n - 1, :H] = dF[n, :H]`` and ``dOut[n, 0, H:] = dF[n, H:]``;
    the rest of ``dOut`` (N, T, H*D) is zeroed by the caller. CPU sibling:
    the many-to-one ``dHs`` update in ``rnnumba.engine``'s
    ``chunk_loss_and_grad``.
    """
    _bind()

    def scatter_final(dF, N, T, H, D, lengths, dOut):
        e = cu.grid(1)
        HD = H * D
        if e < N * HD:
            n = e // HD
            col = e - n * HD
            tau = lengths[n] - 1 if col < H else 0
            dOut[(n * T + tau) * HD + col] = dF[e]

    V = vec(dt)
    return scatter_final, (V, I64, I64, I64, I64, IVEC, V)


@builder("loss_rows")
def build_loss_rows(dt):
    """Row losses (unscaled) and ``dY = scale * dloss/dyhat``, one thread per row.

    Per row ``m`` (class ``c`` for cross-entropy)::

        MSE:   rowloss = sum_o (yhat_o - y_o)^2               dY = 2 scale (yhat - y)
        XENT:  rowloss = log sum_o exp(yhat_o) - yhat_c       dY = scale (softmax(yhat) - onehot(c))

    Rows in the padding (many-to-many) get 0 for both. CPU sibling:
    ``rnnumba.losses.head``.
    """
    _bind()
    zero = np.dtype(dt).type(0.0)
    two = np.dtype(dt).type(2.0)

    def loss_rows(Yhat, O, Y, yw, M, T, lengths, many, loss, scale, dY, rowloss):
        m = cu.grid(1)
        if m >= M:
            return
        if many:
            n = m // T
            valid = m - n * T < lengths[n]
        else:
            valid = True
        b = m * O
        if not valid:
            for o in range(O):
                dY[b + o] = zero
            rowloss[m] = zero
            return
        if loss == MSE:
            total = zero
            for o in range(O):
                r = Yhat[b + o] - Y[m * yw + o]
                total += r * r
                dY[b + o] = two * r * scale
            rowloss[m] = total
        else:
            cls = int(Y[m * yw])
            top = Yhat[b]
            for o in range(1, O):
                top = max(top, Yhat[b + o])
            z = zero
            for o in range(O):
                z += math.exp(Yhat[b + o] - top)
            rowloss[m] = math.log(z) + top - Yhat[b + cls]
            for o in range(O):
                dY[b + o] = math.exp(Yhat[b + o] - top) / z * scale
            dY[b + cls] -= scale

    V = vec(dt)
    from ._registry import nbtype

    return loss_rows, (V, I64, V, I64, I64, I64, IVEC, I64, I64, nbtype(dt), V, V)


@builder("mask_rows")
def build_mask_rows(dt):
    """NaN in the predictions of padded steps (many-to-many).

    CPU sibling: ``rnnumba.network.RNN.predict`` fills ``out`` with NaN before
    the engine writes the valid steps.
    """
    _bind()
    nan = np.dtype(dt).type(np.nan)

    def mask_rows(out, O, M, T, lengths):
        e = cu.grid(1)
        if e < M * O:
            m = e // O
            n = m // T
            if m - n * T >= lengths[n]:
                out[e] = nan

    return mask_rows, (vec(dt), I64, I64, I64, IVEC)


def gather_final(Out, N, T, H, D, lengths, F):
    """Launch ``gather_final``: each direction's final state of the top layer into ``F`` (N, H*D)."""
    compiled("gather_final", dtkey(F.dtype))[grid1(N * H * D)](Out, N, T, H, D, lengths, F)


def scatter_final(dF, N, T, H, D, lengths, dOut):
    """Launch ``scatter_final``: ``dF`` (N, H*D) back to the final steps' rows of ``dOut``."""
    compiled("scatter_final", dtkey(dF.dtype))[grid1(N * H * D)](dF, N, T, H, D, lengths, dOut)


def loss_rows(Yhat, O, Y, yw, M, T, lengths, many, loss, scale, dY, rowloss):
    """Launch ``loss_rows``: ``M`` rows' losses into ``rowloss`` and ``dL/dyhat`` into ``dY``."""
    compiled("loss_rows", dtkey(Yhat.dtype))[grid1(M)](
        Yhat, O, Y, yw, M, T, lengths, int(many), int(loss), Yhat.dtype.type(scale), dY, rowloss
    )


def mask_rows(out, O, M, T, lengths):
    """Launch ``mask_rows``: NaN in the rows of ``out`` (M = N*T, O) past each sample's length."""
    compiled("mask_rows", dtkey(out.dtype))[grid1(M * O)](out, O, M, T, lengths)


def variants():
    """``[(name, key), ...]``: this module's kernels in both dtypes (see ``_registry.specs``)."""
    return [
        (name, (dt,))
        for dt in ("float32", "float64")
        for name in ("gather_final", "scatter_final", "loss_rows", "mask_rows")
    ]
