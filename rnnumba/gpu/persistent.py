"""Persistent recurrence kernels: one launch runs a whole sequence.

Each block owns ``nb`` samples and every hidden unit (no grid-wide sync: the
blocks never talk to each other). It stages the recurrent weights ``W[:, :H]``
of one layer and direction into shared memory once, keeps the state (and the
LSTM cell) of its samples in shared memory, and loops over the time steps with
a block barrier per step (two for Cho's GRU). The input projections
``x_t W_x^T + b`` of all steps are one GEMM before the launch
(:func:`rnnumba.gpu.linalg.gemm`), the weight gradients one GEMM after it.
Used when the weights fit on chip: see :func:`smem_bytes` and ``docs/gpu.md``.

Arrays are flat, batch-major and in original time order: row ``n*T + tau``.
``Xp`` (N,T,G*H); ``Out`` (N,T,out_ld), this direction's ``h`` in columns
``out_col:out_col+H``; ``Hprev`` (N,T,H) the state each step read;
``Gst`` (N,T,gs_ld) what BPTT needs (see :func:`rnnumba.gpu.cells.store_width`).
Direction ``reverse`` reads a sample's valid steps ``len-1 .. 0``.

Stepwise sibling (large H): :mod:`rnnumba.gpu.stepwise`; CPU siblings: the
cells' ``forward``/``backward`` in :mod:`rnnumba.cells` (their equations are
the ones here, as ``rnnumba.gpu.cells`` writes them per unit).
"""

import math

import numpy as np

from . import persistent_backward  # noqa: F401  (registers the backward kernel's builder)
from ._device import allow_shared, cuda, max_threads
from ._registry import I64, IVEC, builder, compiled, nbtype, vec
from .cells import CELL_KINDS, CHO, ELMAN, GATES, GRU, LSTM, funcs, weight_readers
from .linalg import grid1

# numba.cuda, bound when the first kernel is built; a module global (not a
# closure variable) so that the CUDA simulator can swap it for its fake module
cu = None


def _bind():
    """Bind the module global ``cu`` to ``numba.cuda`` (see the comment above)."""
    global cu
    cu = cuda()


def smem_bytes(kind, H, nb, itemsize, backward, wsrc="shared"):
    """Dynamic shared memory, in bytes, of one block holding ``nb`` samples.

    Includes the recurrent weights with ``wsrc="shared"``.
    """
    G = GATES[kind]
    if backward:
        per_sample = G * H + 2 * H + (H if kind == LSTM else 0)
    else:
        per_sample = 2 * H + (H if kind in (LSTM, CHO) else 0)
    return ((G * H * H if wsrc == "shared" else 0) + nb * per_sample) * itemsize


@builder("persistent_forward")
def build_forward(dt, kind, peephole, wsrc):
    """Build the forward recurrence of one layer and direction, a whole sequence per launch.

    Thread ``e`` of a block handles unit ``j`` of sample ``s`` (looping over
    ``nb * H`` items); at every step ``t`` (original time ``tau``) it forms::

        a = Xp[tau] + W_h h_{t-1}                        (Xp = x W_x^T + b, from a GEMM)
        Elman:  h_t = tanh(a)
        LSTM:   lstm_forward(a_i, a_f, a_g, a_o, c_{t-1}, p)  -> i, f, g, o, c_t, h_t
        GRU:    hn = W_nh h_{t-1} + b_hn;  gru_forward(a_r, a_z, Xp_n, hn, h_{t-1})
        Cho:    r, z; then, after a barrier, n = tanh(Xp_n + W_nh (r * h_{t-1}))

    and writes ``h_t`` to ``Out``, ``h_{t-1}`` to ``Hprev`` and the cell's
    stored values to ``Gst``; past a sample's length its state freezes.
    ``wsrc``: the weights ``W_h^T`` in shared memory or read from ``WT`` in
    global memory. CPU siblings: the cells' ``forward`` (:mod:`rnnumba.cells`).
    """
    _bind()
    SHARED = wsrc == "shared"
    wt, _ = weight_readers(wsrc)
    T_ = nbtype(dt)
    F = funcs(dt)
    sigmoid, lstm_forward, gru_forward = F.sigmoid, F.lstm_forward, F.gru_forward
    G = GATES[kind]
    IS_LSTM, IS_GRU, IS_CHO, IS_ELMAN = kind == LSTM, kind == GRU, kind == CHO, kind == ELMAN
    PEEP = bool(peephole)
    zero = np.dtype(dt).type(0.0)
    one = np.dtype(dt).type(1.0)

    def persistent_forward(
        theta,
        WT,
        w_off,
        w_ld,
        x_off,
        Xp,
        Out,
        out_ld,
        out_col,
        Hprev,
        Gst,
        gs_ld,
        lengths,
        N,
        T,
        H,
        reverse,
        nb,
    ):
        sm = cu.shared.array(0, T_)
        tid = cu.threadIdx.x
        nt = cu.blockDim.x
        n0 = cu.blockIdx.x * nb
        GH = G * H
        # W_h^T[k, r] = W[r, k], unit-contiguous: staged in shared memory, or read
        # from the transposed copy WT in global memory (L1/L2-cached)
        if SHARED:
            for e in range(tid, GH * H, nt):
                r = e // H
                k = e - r * H
                sm[k * GH + r] = theta[w_off + r * w_ld + k]
        h_a = GH * H if SHARED else 0
        h_b = h_a + nb * H
        aux = h_b + nb * H  # LSTM: cell states; Cho: r*h_prev
        for e in range(tid, nb * H, nt):
            sm[h_a + e] = zero
            if IS_LSTM:
                sm[aux + e] = zero
        tmax = 0
        for s in range(nb):
            if n0 + s < N:
                tmax = max(tmax, lengths[n0 + s])
        cu.syncthreads()
        cur = h_a
        nxt = h_b
        for t in range(tmax):
            for e in range(tid, nb * H, nt):
                s = e // H
                j = e - s * H
                n = n0 + s
                if n < N and t < lengths[n]:
                    tau = lengths[n] - 1 - t if reverse else t
                    row = n * T + tau
                    hp = sm[cur + e]
                    Hprev[row * H + j] = hp
                    xb = row * GH
                    gb = row * gs_ld
                    hb = cur + s * H
                    if IS_ELMAN:
                        a = Xp[xb + j]
                        for k in range(H):
                            a += wt(sm, WT, k * GH + j) * sm[hb + k]
                        h = math.tanh(a)
                    elif IS_LSTM:
                        a_i = Xp[xb + j]
                        a_f = Xp[xb + H + j]
                        a_g = Xp[xb + 2 * H + j]
                        a_o = Xp[xb + 3 * H + j]
                        for k in range(H):
                            hk = sm[hb + k]
                            w = k * GH + j
                            a_i += wt(sm, WT, w) * hk
                            a_f += wt(sm, WT, w + H) * hk
                            a_g += wt(sm, WT, w + 2 * H) * hk
                            a_o += wt(sm, WT, w + 3 * H) * hk
                        cp = sm[aux + e]
                        p_i = zero
                        p_f = zero
                        p_o = zero
                        if PEEP:
                            p_i = theta[x_off + j]
                            p_f = theta[x_off + H + j]
                            p_o = theta[x_off + 2 * H + j]
                        i, f, g, o, cn, h = lstm_forward(a_i, a_f, a_g, a_o, cp, p_i, p_f, p_o)
                        sm[aux + e] = cn
                        Gst[gb + j] = i
                        Gst[gb + H + j] = f
                        Gst[gb + 2 * H + j] = g
                        Gst[gb + 3 * H + j] = o
                        Gst[gb + 4 * H + j] = cn
                        Gst[gb + 5 * H + j] = cp
                    elif IS_GRU:
                        a_r = Xp[xb + j]
                        a_z = Xp[xb + H + j]
                        hn = theta[x_off + j]
                        for k in range(H):
                            hk = sm[hb + k]
                            w = k * GH + j
                            a_r += wt(sm, WT, w) * hk
                            a_z += wt(sm, WT, w + H) * hk
                            hn += wt(sm, WT, w + 2 * H) * hk
                        r, z, nn, h = gru_forward(a_r, a_z, Xp[xb + 2 * H + j], hn, hp)
                        Gst[gb + j] = r
                        Gst[gb + H + j] = z
                        Gst[gb + 2 * H + j] = nn
                        Gst[gb + 3 * H + j] = hn
                    else:  # Cho, first half: the gates r and z
                        a_r = Xp[xb + j]
                        a_z = Xp[xb + H + j]
                        for k in range(H):
                            hk = sm[hb + k]
                            w = k * GH + j
                            a_r += wt(sm, WT, w) * hk
                            a_z += wt(sm, WT, w + H) * hk
                        r = sigmoid(a_r)
                        Gst[gb + j] = r
                        Gst[gb + H + j] = sigmoid(a_z)
                        Gst[gb + 3 * H + j] = r * hp
                        sm[aux + e] = r * hp
                        h = hp
                    if not IS_CHO:
                        Out[row * out_ld + out_col + j] = h
                    sm[nxt + e] = h
                else:
                    sm[nxt + e] = sm[cur + e]  # past the end: the state freezes
            if IS_CHO:
                cu.syncthreads()
                for e in range(tid, nb * H, nt):
                    s = e // H
                    j = e - s * H
                    n = n0 + s
                    if n < N and t < lengths[n]:
                        tau = lengths[n] - 1 - t if reverse else t
                        row = n * T + tau
                        gb = row * gs_ld
                        a_n = Xp[row * GH + 2 * H + j]
                        rb = aux + s * H
                        for k in range(H):
                            a_n += wt(sm, WT, k * GH + 2 * H + j) * sm[rb + k]
                        nn = math.tanh(a_n)
                        z = Gst[gb + H + j]
                        h = (one - z) * nn + z * sm[cur + e]
                        Gst[gb + 2 * H + j] = nn
                        Out[row * out_ld + out_col + j] = h
                        sm[nxt + e] = h
            cu.syncthreads()
            tmp = cur
            cur = nxt
            nxt = tmp

    V = vec(dt)
    sig = (V, V, I64, I64, I64, V, V, I64, I64, V, V, I64, IVEC, I64, I64, I64, I64, I64)
    return persistent_forward, sig


@builder("transpose_w")
def build_transpose_w(dt):
    """``WT[k*GH + r] = W[r, k]`` for the global-memory persistent forward."""
    _bind()

    def transpose_w(theta, w_off, w_ld, GH, H, WT):
        e = cu.grid(1)
        if e < GH * H:
            r = e // H
            k = e - r * H
            WT[k * GH + r] = theta[w_off + r * w_ld + k]

    V = vec(dt)
    return transpose_w, (V, I64, I64, I64, I64, V)


def prepare(dt, kind, peephole, H, nb, itemsize, wsrc):
    """Compile the pair of kernels and let them use the shared memory a block of ``nb`` samples needs.

    Returns ``(ok, max_threads)``: ok is False if the driver refuses;
    max_threads is the largest block both kernels can launch with (their
    register use limits it).
    """
    ok, most = True, 1024
    for name, backward in (("persistent_forward", False), ("persistent_backward", True)):
        kern = compiled(name, dt, kind, bool(peephole), wsrc)
        ok = ok and allow_shared(kern, smem_bytes(kind, H, nb, itemsize, backward, wsrc))
        most = min(most, max_threads(kern))
    return ok, most


def launch_forward(dt, kind, peephole, wsrc, nb, nthreads, args):
    """One launch of the forward recurrence over the whole sequence.

    Blocks of ``nb`` samples, ``nthreads`` threads each. With
    ``wsrc="global"`` the transposed weights ``args[1]`` are written first.
    """
    theta, WT, w_off, w_ld = args[:4]
    N, H = args[13], args[15]
    G = GATES[kind]
    if wsrc == "global":
        compiled("transpose_w", dt)[grid1(G * H * H)](theta, w_off, w_ld, G * H, H, WT)
    smem = smem_bytes(kind, H, nb, np.dtype(dt).itemsize, False, wsrc)
    compiled("persistent_forward", dt, kind, bool(peephole), wsrc)[-(-N // nb), nthreads, 0, smem](*args)


def launch_backward(dt, kind, peephole, wsrc, nb, nthreads, args):
    """One launch of the backward recurrence over the whole sequence.

    Blocks of ``nb`` samples, ``nthreads`` threads each; ``args`` are the
    kernel's (see :func:`build_backward`).
    """
    N, H = args[16], args[18]
    smem = smem_bytes(kind, H, nb, np.dtype(dt).itemsize, True, wsrc)
    compiled("persistent_backward", dt, kind, bool(peephole), wsrc)[-(-N // nb), nthreads, 0, smem](*args)


def variants():
    """``[(name, key), ...]``: every persistent kernel (cells, peepholes, weight sources) in both dtypes."""
    out = []
    for dt in ("float32", "float64"):
        out.append(("transpose_w", (dt,)))
        for kind in CELL_KINDS:
            for peep in (False, True) if kind == LSTM else (False,):
                for wsrc in ("shared", "global"):
                    out.append(("persistent_forward", (dt, kind, peep, wsrc)))
                    out.append(("persistent_backward", (dt, kind, peep, wsrc)))
    return out
