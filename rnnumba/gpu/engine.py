"""The GPU engine: layers, directions and the head around the recurrence kernels.

:class:`DeviceEngine` is the device twin of :func:`rnnumba.engine.loss_and_grad`
and the ``predict`` kernel of :func:`rnnumba.engine.kernels`: same :class:`~rnnumba.layout.Layout`, same
flat ``theta``/``grad`` (one device array each), same masking rules, same
losses. Per layer and direction:

1. one GEMM for the input projections of every step, ``Xp = x W_x^T + b``;
2. the recurrence: persistent (one launch for the whole sequence, weights in
   shared memory or streamed from L2) or stepwise (a GEMM and a pointwise
   kernel per step), chosen by :meth:`DeviceEngine.plan`;
3. in BPTT the recurrence backwards writes each step's gate gradients ``dA``;
   then ``dW = dA^T [h_prev | x]``, ``db = sum dA`` and ``dx = dA W_x`` are
   one GEMM or column sum each over all steps.

GEMM operands are ``(array, offset, row_stride, column_stride)`` views: the
weights are read inside ``theta`` and their gradients written inside ``grad``.

Everything is deterministic: no atomics; reductions run in a fixed order that
depends on the shapes only, so equal inputs give bitwise equal outputs.
"""

import warnings

import numpy as np

from ..losses import LOSSES
from . import head, linalg, persistent, stepwise
from ._device import DEFAULT_SMEM, cuda, properties, simulator
from .buffers import Batch, Workspace
from .cells import CHO, GATES, GRU, LSTM, kind
from .linalg import colsum, dtkey, fill, gemm, grid1

LOSS_CODES = {**LOSSES, **{code: code for code in LOSSES.values()}}  # names or codes -> codes
STRATEGIES = ("auto", "persistent", "persistent-global", "stepwise")
# "auto" streams the weights from L2 (persistent-global) rather than launching
# per step while one step's recurrent product N*G*H*H stays below this
GLOBAL_MAX_MACS = 1 << 26

__all__ = ["Batch", "DeviceEngine", "STRATEGIES", "GLOBAL_MAX_MACS"]


# errors of the code itself, never a reason to fall back to other kernels
_BUGS = (TypeError, ValueError, AttributeError, IndexError, KeyError, NameError)


def _wsrc(strategy):
    """Where a persistent strategy's kernels read the weights: ``"global"`` or ``"shared"``."""
    return "global" if strategy == "persistent-global" else "shared"


class DeviceEngine:
    """Forward, BPTT and prediction of one network on the GPU.

    Parameters
    ----------
    layout : rnnumba.layout.Layout
    dtype : numpy.float32 or numpy.float64
    strategy : {"auto", "persistent", "persistent-global", "stepwise"}
        How the recurrence runs; see :meth:`plan`.

    The host-array methods :meth:`loss_and_grad` and :meth:`predict` copy in
    and out on every call; :meth:`device_loss_and_grad` works on device
    arrays (used by :class:`rnnumba.gpu.DeviceTrainer`).
    """

    def __init__(self, layout, dtype=np.float64, strategy="auto"):
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        self.layout = layout
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {self.dtype}")
        self.kind = kind(layout)
        self.strategy = strategy
        self.offsets = layout.offsets()
        self._ws = {}
        self._plans = {}

    # -- planning ---------------------------------------------------------------
    def plan(self, N):
        """``(strategy, nb, threads)`` for a batch of ``N`` samples.

        * "persistent" when ``W[:, :H]`` plus the state of one sample fits in
          the shared memory a block may use (227 KiB on H100/H200 after the
          opt-in, 48 KiB without);
        * else "persistent-global" (the same kernels reading the weights from
          global memory, i.e. L2) while one step's product ``N*G*H*H`` is
          under :data:`GLOBAL_MAX_MACS`, where per-step launches would cost
          more than the arithmetic;
        * else "stepwise".

        A persistent block takes ``nb = ceil(N / multiprocessors)`` samples
        (at most 1024/H, fewer if shared memory runs out) so that the blocks
        spread over the chip. If the driver refuses the shared-memory opt-in,
        the plan is redone within 48 KiB.
        """
        if N not in self._plans:
            sms, limit = properties()
            plan = self._plan(N, sms, limit, 1024)
            for _ in range(2):
                if plan[0] == "stepwise":
                    break
                lay, wsrc = self.layout, _wsrc(plan[0])
                ok, most = persistent.prepare(
                    dtkey(self.dtype), self.kind, lay.peephole, lay.hidden, plan[1], self.dtype.itemsize, wsrc
                )
                limit = limit if ok else DEFAULT_SMEM
                again = self._plan(N, sms, limit, most)
                same, plan = again[0] == plan[0], again
                if same:
                    break
            self._plans[N] = plan
        return self._plans[N]

    def _plan(self, N, sms, limit, most):
        """Plan as :meth:`plan` does, for given device limits.

        ``sms`` multiprocessors, ``limit`` bytes of shared memory a block and at
        most ``most`` threads a block.
        """
        H, G, isz = self.layout.hidden, GATES[self.kind], self.dtype.itemsize

        def need(nb, wsrc):
            return max(persistent.smem_bytes(self.kind, H, nb, isz, b, wsrc) for b in (False, True))

        strategy = self.strategy
        if strategy == "auto":
            if need(1, "shared") <= limit:
                strategy = "persistent"
            elif N * G * H * H < GLOBAL_MAX_MACS and need(1, "global") <= limit:
                strategy = "persistent-global"
            else:
                strategy = "stepwise"
        if strategy == "stepwise":
            return "stepwise", 0, 0
        wsrc = _wsrc(strategy)
        if need(1, wsrc) > limit:
            raise ValueError(
                f"strategy={strategy!r} needs {need(1, wsrc)} bytes of shared memory per block; "
                f"this device allows {limit}"
            )
        nb = max(1, min(-(-N // sms), max(1, 1024 // H)))
        while nb > 1 and need(nb, wsrc) > limit:
            nb -= 1
        items = nb * H
        threads = min(items, 64) if simulator() else min(most // 32 * 32, -(-items // 32) * 32)
        return strategy, nb, threads

    def _degrade(self, N, exc):
        """Plan again after a refused persistent launch: within 48 KiB of shared memory, then stepwise.

        Configuration errors are reported at launch, so this runs then.
        """
        if self.strategy != "auto":
            raise exc
        sms, _ = properties()
        name, nb, _ = self._plans[N]
        isz = self.dtype.itemsize
        need = persistent.smem_bytes(self.kind, self.layout.hidden, nb, isz, True, _wsrc(name))
        small = self._plan(N, sms, DEFAULT_SMEM, 256) if need > DEFAULT_SMEM else ("stepwise", 0, 0)
        self._plans[N] = small
        warnings.warn(
            f"rnnumba.gpu: a persistent kernel launch failed ({type(exc).__name__}: {exc}); "
            f"using {small[0]} kernels with {small[1]} samples a block instead",
            RuntimeWarning,
            stacklevel=4,
        )

    def workspace(self, N, T):
        """Return the device buffers for batches of shape (N, T), made once and kept.

        Parameters
        ----------
        N, T : int
            Samples and (padded) steps of the batch.

        Returns
        -------
        Workspace
            At most four shapes are kept; a fifth clears them.
        """
        key = (N, T)
        if key not in self._ws:
            if len(self._ws) >= 4:  # a fit meets at most two shapes (the last batch)
                self._ws.clear()
            self._ws[key] = Workspace(self.layout, self.kind, N, T, self.dtype)
        return self._ws[key]

    # -- host-array API ---------------------------------------------------------
    def loss_and_grad(self, theta, grad, X, lengths, Y, loss, scale, many):
        """Loss and gradient of a padded batch, host arrays in and out.

        ``theta`` (P,), ``grad`` (P,) filled in place, ``X`` (N, T, I),
        ``lengths`` (N,), ``Y`` (N, 1 or T, O or 1) as from
        :func:`rnnumba.validation.check_targets`, ``loss`` "mse"/"xent" (or
        0/1), ``scale`` = 1/count, ``many`` = many-to-many. Returns the loss.
        """
        c = cuda()
        d_theta = c.to_device(np.ascontiguousarray(theta, dtype=self.dtype))
        d_grad = c.device_array(self.layout.n_params, dtype=self.dtype)
        batch = Batch.upload(X, lengths, Y, self.dtype)
        d_loss = self.device_loss_and_grad(d_theta, d_grad, batch, loss, scale, many)
        d_grad.copy_to_host(grad)
        return float(d_loss.copy_to_host()[0])

    def predict(self, theta, X, lengths, many=False):
        """Head outputs: (N, O), or (N, T, O) with NaN in the padding."""
        d_theta = cuda().to_device(np.ascontiguousarray(theta, dtype=self.dtype))
        batch = Batch.upload(X, lengths, None, self.dtype)
        ws = self.workspace(batch.N, batch.T)
        self.forward(d_theta, batch, ws)
        F, M = self._features(batch, ws, many)
        self._readout(d_theta, F, M, ws)
        O = self.layout.output_size
        if many:
            head.mask_rows(ws.yhat, O, M, batch.T, batch.lengths)
        out = ws.yhat[: M * O].copy_to_host()
        return out.reshape(batch.N, batch.T, O) if many else out.reshape(batch.N, O)

    # -- device API ---------------------------------------------------------------
    def device_loss_and_grad(self, theta, grad, batch, loss, scale, many, loss_out=None, loss_idx=0):
        """Fill the device vector ``grad``; the loss goes to ``loss_out[loss_idx]``.

        ``loss_out`` is a device array (the workspace's own one by default),
        which is returned.
        """
        H, D, O = self.layout.hidden, self.layout.directions, self.layout.output_size
        HD = H * D
        ws = self.workspace(batch.N, batch.T)
        self.forward(theta, batch, ws)
        F, M = self._features(batch, ws, many)
        self._readout(theta, F, M, ws)
        out = ws.loss if loss_out is None else loss_out
        head.loss_rows(
            ws.yhat,
            O,
            batch.Y,
            batch.yw,
            M,
            batch.T,
            batch.lengths,
            many,
            LOSS_CODES[loss],
            scale,
            ws.dY,
            ws.rowloss,
        )
        linalg.sum_all(ws.rowloss, 0, M, out, loss_idx, scale)
        w_out, b_out = int(self.offsets[-1, 0]), int(self.offsets[-1, 1])
        dY = (ws.dY, 0, O, 1)
        # dW_out = dY^T F, db_out = sum dY, dF = dY W_out
        gemm((ws.dY, 0, 1, O), (F, 0, HD, 1), (grad, w_out, HD, 1), O, HD, M, scratch=ws.scratch)
        colsum(ws.dY, 0, O, M, O, grad, b_out, scratch=ws.scratch)
        dtop = ws.dout[0]
        if many:  # every step's dF is dL/d(top outputs) as is
            gemm(dY, (theta, w_out, HD, 1), (dtop, 0, HD, 1), M, HD, O)
        else:
            gemm(dY, (theta, w_out, HD, 1), (ws.dF, 0, HD, 1), M, HD, O)
            fill(dtop, 0, batch.N * batch.T * HD)
            head.scatter_final(ws.dF, batch.N, batch.T, H, D, batch.lengths, dtop)
        self.backward(theta, grad, batch, ws)
        return out

    def _features(self, batch, ws, many):
        """Return the head's input and its row count.

        The top layer's outputs (N*T rows, many-to-many) or the final states
        gathered into ``ws.F`` (N rows); CPU sibling ``rnnumba.engine._features``.
        """
        top = ws.out[self.layout.num_layers - 1]
        if many:
            return top, batch.N * batch.T
        H, D = self.layout.hidden, self.layout.directions
        head.gather_final(top, batch.N, batch.T, H, D, batch.lengths, ws.F)
        return ws.F, batch.N

    def _readout(self, theta, F, M, ws):
        """``yhat = F W_out^T + b_out`` for ``M`` rows into ``ws.yhat``.

        CPU sibling: ``rnnumba.losses.readout``.
        """
        HD, O = self.layout.hidden * self.layout.directions, self.layout.output_size
        w_out, b_out = int(self.offsets[-1, 0]), int(self.offsets[-1, 1])
        gemm((F, 0, HD, 1), (theta, w_out, 1, HD), (ws.yhat, 0, O, 1), M, O, HD, bias=(theta, b_out))

    # -- forward ------------------------------------------------------------------
    def _layer(self, batch, ws, layer, d):
        """Offsets and operands of one layer and direction."""
        H, D = self.layout.hidden, self.layout.directions
        x_in, ld_in = (batch.X, batch.I) if layer == 0 else (ws.out[layer - 1], H * D)
        w_off, b_off, x_off = (int(v) for v in self.offsets[layer * D + d])
        return x_in, ld_in, w_off, b_off, x_off, H + ld_in

    def forward(self, theta, batch, ws):
        """Forward through every layer and direction into the workspace.

        Per layer ``l`` and direction ``d``::

            Xp   = u W_x^T + b           one GEMM over all steps (u = x, or layer l-1's outputs)
            h_t  = cell(Xp_t + W_h h_{t-1}, ...)   the recurrence, persistent or stepwise

        writing ``h`` into ``ws.out[l]`` (columns ``d*H:(d+1)*H``), the state each
        step read into ``ws.hprev`` and what BPTT needs into ``ws.gst``. No
        dropout. CPU sibling: ``chunk_forward`` in :func:`rnnumba.engine.kernels`.

        Parameters
        ----------
        theta : device array (P,)
        batch : Batch
        ws : Workspace
            From :meth:`workspace` for the batch's shape.
        """
        H = self.layout.hidden
        GH = GATES[self.kind] * H
        NT = batch.N * batch.T
        for layer in range(self.layout.num_layers):
            for d in range(self.layout.directions):
                x_in, ld_in, w_off, b_off, x_off, w_ld = self._layer(batch, ws, layer, d)
                # Xp = x W_x^T + b for every step
                gemm(
                    (x_in, 0, ld_in, 1),
                    (theta, w_off + H, 1, w_ld),
                    (ws.xp, 0, GH, 1),
                    NT,
                    GH,
                    ld_in,
                    bias=(theta, b_off),
                )
                self._recurrence(theta, batch, ws, layer, d, w_off, w_ld, x_off)

    def _recurrence(self, theta, batch, ws, layer, d, w_off, w_ld, x_off):
        """Run the forward recurrence of one layer and direction, given ``ws.xp``.

        Persistent: one launch (:func:`rnnumba.gpu.persistent.launch_forward`).
        Stepwise, per step ``t``: ``Z = h_{t-1} W_h^T`` (one GEMM; Cho: the r and
        z rows, then a second GEMM ``Z[:, 2H:] = (r * h_{t-1}) W_nh^T``) and the
        pointwise kernel (:func:`rnnumba.gpu.stepwise.forward_kernel`).
        """
        H, D, G = self.layout.hidden, self.layout.directions, GATES[self.kind]
        N, T, GH = batch.N, batch.T, G * H
        k = layer * D + d
        state = (ws.out[layer], H * D, d * H, ws.hprev[k], ws.gst[k], ws.gs)
        strategy, nb, threads = self.plan(N)
        dt, peep = dtkey(self.dtype), self.layout.peephole
        if strategy != "stepwise":
            args = (theta, ws.wt, w_off, w_ld, x_off, ws.xp, *state, batch.lengths, N, T, H, d, nb)
            try:
                persistent.launch_forward(dt, self.kind, peep, _wsrc(strategy), nb, threads, args)
            except _BUGS:
                raise
            except Exception as exc:  # the driver refused the launch
                self._degrade(N, exc)
                self._recurrence(theta, batch, ws, layer, d, w_off, w_ld, x_off)
            return
        fill(ws.Hc, 0, N * H)
        fill(ws.Cc, 0, N * H)
        rows = 2 * H if self.kind == CHO else GH
        tail = (theta, x_off, ws.xp, ws.Z, ws.Hc, ws.Cc, *state, batch.lengths, N, T, H)
        for t in range(batch.maxlen):
            # Z = h_{t-1} W_h^T (Cho: the r and z rows only)
            gemm((ws.Hc, 0, H, 1), (theta, w_off, 1, w_ld), (ws.Z, 0, GH, 1), N, rows, H)
            stepwise.forward_kernel(dt, self.kind, peep, 1)[grid1(N * H)](*tail, t, d)
            if self.kind == CHO:  # Z[:, 2H:] = (r*h_{t-1}) W_nh^T
                gemm((ws.Cc, 0, H, 1), (theta, w_off + 2 * H * w_ld, 1, w_ld), (ws.Z, 2 * H, GH, 1), N, H, H)
                stepwise.forward_kernel(dt, self.kind, peep, 2)[grid1(N * H)](*tail, t, d)

    # -- BPTT ---------------------------------------------------------------------
    def backward(self, theta, grad, batch, ws):
        """BPTT from ``ws.dout[0]`` (dL/d top-layer outputs), top layer first.

        Per layer and direction, the recurrence backwards writes every step's
        gate gradients ``dA`` (``dAh``: their h-side form, the reset-after GRU's
        n rows differ), then over all steps at once::

            dW[:, :H] = dAh^T h_prev      (Cho's n rows: da_n^T (r * h_prev))
            dW[:, H:] = dA^T u            db = sum dA       (+ b_hn / peephole gradients)
            du        = sum_d dA W_x      dL/d(layer below's outputs), directions in order

        No dropout. CPU sibling: the BPTT half of ``chunk_loss_and_grad`` in
        :func:`rnnumba.engine.kernels`.
        """
        H, D, L, G = self.layout.hidden, self.layout.directions, self.layout.num_layers, GATES[self.kind]
        HD, GH, NT = H * D, G * H, batch.N * batch.T
        sc = ws.scratch
        cur = 0
        for layer in range(L - 1, -1, -1):
            d_out = ws.dout[cur]
            d_in = ws.dout[1 - cur] if layer > 0 else None
            for d in range(D):
                x_in, ld_in, w_off, b_off, x_off, w_ld = self._layer(batch, ws, layer, d)
                self._recurrence_back(theta, batch, ws, layer, d, w_off, w_ld, x_off, d_out)
                hprev, gst, gs = ws.hprev[layer * D + d], ws.gst[layer * D + d], ws.gs
                dAT = (ws.dA, 0, 1, GH)  # dA^T: (G*H) x (N*T)
                # dW[:, :H] = dAh^T h_prev (Cho: the n rows pair with r*h_prev)
                if self.kind == CHO:
                    gemm(dAT, (hprev, 0, H, 1), (grad, w_off, w_ld, 1), 2 * H, H, NT, scratch=sc)
                    w_n = (grad, w_off + 2 * H * w_ld, w_ld, 1)
                    gemm((ws.dA, 2 * H, 1, GH), (gst, 3 * H, gs, 1), w_n, H, H, NT, scratch=sc)
                else:
                    gemm((ws.dAh, 0, 1, GH), (hprev, 0, H, 1), (grad, w_off, w_ld, 1), GH, H, NT, scratch=sc)
                # dW[:, H:] = dA^T x, db = sum dA
                gemm(dAT, (x_in, 0, ld_in, 1), (grad, w_off + H, w_ld, 1), GH, ld_in, NT, scratch=sc)
                colsum(ws.dA, 0, GH, NT, GH, grad, b_off, scratch=sc)
                self._extras_grad(grad, ws, gst, NT, x_off, sc)
                if d_in is not None:  # dx = dA W_x, summed over the directions in order
                    gemm(
                        (ws.dA, 0, GH, 1),
                        (theta, w_off + H, w_ld, 1),
                        (d_in, 0, HD, 1),
                        NT,
                        HD,
                        GH,
                        accumulate=d > 0,
                    )
            cur = 1 - cur

    def _extras_grad(self, grad, ws, gst, NT, x_off, sc):
        """GRU ``b_hn`` (zero for Cho's, which has no use for it), LSTM peepholes."""
        H, GH, gs = self.layout.hidden, GATES[self.kind] * self.layout.hidden, ws.gs
        if self.kind == GRU:
            colsum(ws.dAh, 2 * H, GH, NT, H, grad, x_off, scratch=sc)
        elif self.kind == CHO:
            fill(grad, x_off, H)
        elif self.kind == LSTM and self.layout.peephole:  # dp = sum da_{i,f} c_prev, sum da_o c
            for gate, col, p in ((0, 5, 0), (1, 5, 1), (3, 4, 2)):
                colsum(
                    ws.dA, gate * H, GH, NT, H, grad, x_off + p * H, B=gst, b_off=col * H, b_ld=gs, scratch=sc
                )

    def _recurrence_back(self, theta, batch, ws, layer, d, w_off, w_ld, x_off, d_out):
        """Run the backward recurrence of one layer and direction: ``dA`` (and ``dAh``) of every step.

        Persistent: one launch (:func:`rnnumba.gpu.persistent.launch_backward`).
        Stepwise, per step from the last: the pointwise kernel
        (:func:`rnnumba.gpu.stepwise.backward_kernel`), for Cho's GRU
        ``DRH = da_n W_nh`` and its second phase, then ``dh_{t-1} += da W_h``
        (one GEMM).
        """
        H, D, G = self.layout.hidden, self.layout.directions, GATES[self.kind]
        N, T, HD, GH = batch.N, batch.T, H * D, G * H
        k = layer * D + d
        state = (d_out, HD, d * H, ws.out[layer], HD, d * H, ws.hprev[k], ws.gst[k], ws.gs, ws.dA, ws.dAh)
        strategy, nb, threads = self.plan(N)
        dt, peep = dtkey(self.dtype), self.layout.peephole
        if strategy != "stepwise":
            args = (theta, w_off, w_ld, x_off, *state, batch.lengths, N, T, H, d, nb)
            try:
                persistent.launch_backward(dt, self.kind, peep, _wsrc(strategy), nb, threads, args)
            except _BUGS:
                raise
            except Exception as exc:  # the driver refused the launch
                self._degrade(N, exc)
                self._recurrence_back(theta, batch, ws, layer, d, w_off, w_ld, x_off, d_out)
            return
        fill(ws.DH, 0, N * H)
        fill(ws.DC, 0, N * H)
        rows = 2 * H if self.kind == CHO else GH
        tail = (theta, x_off, *state, ws.DAs, ws.DH, ws.DC, ws.DRH, batch.lengths, N, T, H)
        for t in range(T - 1, -1, -1):
            stepwise.backward_kernel(dt, self.kind, peep, 1)[grid1(N * H)](*tail, t, d)
            if t >= batch.maxlen:
                continue  # only padding at this step: dA zeroed, nothing carried
            if self.kind == CHO:  # DRH = da_n W_nh, then da_r
                w_n = (theta, w_off + 2 * H * w_ld, w_ld, 1)
                gemm((ws.DAs, 2 * H, GH, 1), w_n, (ws.DRH, 0, H, 1), N, H, H)
                stepwise.backward_kernel(dt, self.kind, peep, 2)[grid1(N * H)](*tail, t, d)
            # dh_{t-1} += da W_h
            gemm((ws.DAs, 0, GH, 1), (theta, w_off, w_ld, 1), (ws.DH, 0, H, 1), N, H, rows, accumulate=True)
