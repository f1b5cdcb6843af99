"""Device buffers: a padded batch, and the per-shape workspace of the engine.

All are flat 1-D device arrays; sequences are batch-major in original time
order (row ``n*T + t``), so each buffer is also a GEMM operand over all steps.
"""

import numpy as np

from ._device import cuda, simulator
from .cells import GATES, GRU, store_width
from .linalg import fill


class Batch:
    """A padded batch on the device.

    ``X`` (N*T*I), ``lengths`` (N,), ``Y`` (N*(1 or T)*yw) or None, and their
    shapes.
    """

    def __init__(self, X, lengths, Y, N, T, I, yw, maxlen):
        self.X, self.lengths, self.Y = X, lengths, Y
        self.N, self.T, self.I, self.yw, self.maxlen = N, T, I, yw, maxlen

    @classmethod
    def upload(cls, X, lengths, Y=None, dtype=np.float64):
        """Host arrays -> device.

        Padded entries of ``X`` are zeroed first (they may hold anything, NaN
        included, and must not reach a GEMM).
        """
        c = cuda()
        X = np.asarray(X, dtype=dtype)
        N, T, I = X.shape
        lengths = np.ascontiguousarray(lengths, dtype=np.int64)
        if lengths.shape != (N,) or lengths.min() < 1 or lengths.max() > T:
            raise ValueError(f"lengths must be (N,) with values in [1, {T}]")
        valid = np.arange(T)[None, :] < lengths[:, None]
        X = np.ascontiguousarray(np.where(valid[:, :, None], X, 0), dtype=dtype)
        d_Y, yw = None, 0
        if Y is not None:
            Y = np.asarray(Y, dtype=dtype)
            if Y.ndim == 2:
                Y = Y[:, None, :]
            yw = Y.shape[2]
            rows = valid[:, :, None] if Y.shape[1] == T else np.ones((N, 1, 1), bool)
            d_Y = c.to_device(np.ascontiguousarray(np.where(rows, Y, 0), dtype=dtype).ravel())
        return cls(c.to_device(X.ravel()), c.to_device(lengths), d_Y, N, T, I, yw, int(lengths.max()))


def _zeros(n, dtype):
    n = max(int(n), 1)
    if simulator():  # a host copy is free there; a kernel launch is not
        return cuda().to_device(np.zeros(n, dtype))
    arr = cuda().device_array(n, dtype=dtype)
    fill(arr, 0, n, 0.0)
    return arr


class Workspace:
    """Device buffers for one batch shape (N, T), allocated once and zeroed.

    Per layer: ``out`` (N,T,H*D) its outputs. Per layer and direction:
    ``hprev`` (N,T,H) the state each step read, ``gst`` (N,T,gs) what BPTT
    needs (see :func:`rnnumba.gpu.cells.store_width`). Shared: ``xp``
    (N,T,G*H) input projections, ``dA``/``dAh`` (N,T,G*H) gate gradients
    (x side / h side; one buffer except for the reset-after GRU), ``dout``
    two (N,T,H*D) buffers for dL/d(layer outputs), the head's ``F``, ``dF``,
    ``yhat``, ``dY``, ``rowloss``, ``loss``; and the stepwise kernels' per-step
    buffers (kept for every plan: a refused persistent launch falls back).
    """

    def __init__(self, layout, kind_, N, T, dtype):
        H, D, L, G = layout.hidden, layout.directions, layout.num_layers, GATES[kind_]
        HD, NT = H * D, N * T
        self.gs = store_width(kind_, H)
        self.out = [_zeros(NT * HD, dtype) for _ in range(L)]
        self.hprev = [_zeros(NT * H, dtype) for _ in range(L * D)]
        self.gst = [_zeros(NT * self.gs, dtype) for _ in range(L * D)]
        self.xp = _zeros(NT * G * H, dtype)
        self.wt = _zeros(G * H * H, dtype)  # W_h^T for the persistent-global kernels
        self.dA = _zeros(NT * G * H, dtype)
        self.dAh = _zeros(NT * G * H, dtype) if kind_ == GRU else self.dA
        self.dout = [_zeros(NT * HD, dtype) for _ in range(2 if L > 1 else 1)]
        self.F = _zeros(N * HD, dtype)
        self.dF = _zeros(N * HD, dtype)
        O = layout.output_size
        self.yhat = _zeros(NT * O, dtype)
        self.dY = _zeros(NT * O, dtype)
        self.rowloss = _zeros(NT, dtype)
        self.loss = _zeros(1, dtype)
        self.Z = _zeros(N * G * H, dtype)
        self.DAs = _zeros(N * G * H, dtype)
        self.Hc, self.Cc, self.DH, self.DC, self.DRH = (_zeros(N * H, dtype) for _ in range(5))
        self._scratch = None
        self.dtype = dtype

    def scratch(self, n):
        """Return a device array of at least ``n`` elements, reused (and grown) across calls.

        Parameters
        ----------
        n : int
            The number of elements needed.

        Returns
        -------
        DeviceNDArray
            Uninitialised scratch for split-K partials and column-sum partials
            (:func:`rnnumba.gpu.linalg.gemm`, :func:`rnnumba.gpu.linalg.colsum`).
        """
        if self._scratch is None or self._scratch.shape[0] < n:
            self._scratch = cuda().device_array(max(int(n), 1), dtype=self.dtype)
        return self._scratch
