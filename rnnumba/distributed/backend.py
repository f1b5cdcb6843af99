"""The Dask backend: the backend contract over :class:`DaskData`.

Sibling of :class:`rnnumba.backends.cpu.CPU` and
:class:`rnnumba.backends.cuda.CUDA`. Its data are a :class:`DaskData` (the
Dask form of a :class:`~rnnumba.data.Batch`): each part is evaluated by the
CPU backend on the worker holding it, and the sums come back in part order.
"""

import numpy as np

from ..backends.cpu import CPU, NO_DROPOUT
from .local_sgd import LocalSGD
from .objective import evaluate


class DaskBackend:
    """Loss, gradient and local-SGD epochs on a Dask cluster.

    Parameters
    ----------
    layout : Layout
    dtype : numpy dtype

    Notes
    -----
    ``predict`` runs in this process (on the CPU backend): predictions of a
    dask array are :func:`rnnumba.distributed.predict`.

    Examples
    --------
    The estimators train through it when given dask arrays:

    >>> import numpy as np, dask.array as da
    >>> from distributed import Client
    >>> import rnnumba
    >>> from rnnumba.datasets import make_toy
    >>> client = Client(processes=False, n_workers=2, threads_per_worker=1, dashboard_address=None)
    >>> X, z = make_toy(400, random_state=0)
    >>> model = rnnumba.RNNRegressor(hidden=8, solver="L-BFGS-B", epochs=5, random_state=0)
    >>> _ = model.fit(da.from_array(X, chunks=100), da.from_array(z, chunks=100), client=client)
    >>> model.n_iter_ <= 5
    True
    >>> client.close()
    """

    name = "dask"

    def __init__(self, layout, dtype):
        self.cpu = CPU(layout, dtype)
        self.layout, self.dtype = layout, self.cpu.dtype
        self._template = None

    def dense_loss_and_grad(self, theta, grad, X, y):
        """Never a shortcut: None (in-memory arrays take the CPU's path)."""
        return None

    def loss_and_grad(self, theta, grad, data, drop=NO_DROPOUT, h0=None, dh0=None, storage="auto"):
        """Mean loss over a :class:`DaskData` at ``theta``; ``grad`` filled.

        In-memory :class:`~rnnumba.data.Batch` data run here, on the CPU. Each
        worker keeps BPTT's states as ``storage="auto"`` says for its part (the
        gradient is bitwise the same either way).
        """
        if not hasattr(data, "parts"):
            return self.cpu.loss_and_grad(theta, grad, data, drop, h0, dh0, storage)
        if storage != "auto":
            raise ValueError("memory= applies to in-memory data; Dask's workers checkpoint parts as needed")
        if drop[1] or h0 is not None or dh0 is not None:
            raise ValueError("dropout and initial states apply to minibatch steps, not Dask's full batch")
        if self._template is None:  # what the workers unpickle, made once
            self._template = _template(self.layout, self.dtype)
        value, g = evaluate(data, np.ascontiguousarray(theta, dtype=self.dtype), self._template)
        grad[:] = g
        return float(value)

    def predict(self, theta, seqs, many, h0=None, hn=None):
        """As :meth:`rnnumba.backends.cpu.CPU.predict`, in this process."""
        return self.cpu.predict(theta, seqs, many, h0, hn)

    def resident(self, data):
        """Return ``data`` as it is: a :class:`DaskData` already lives on the workers."""
        return data

    def trainer(self, net, data, method, options, seed=None, bptt_steps=None):
        """:class:`LocalSGD` epochs over ``data`` (one replica per Dask thread)."""
        if bptt_steps is not None:
            raise ValueError("bptt_steps (truncated BPTT) is not supported with dask arrays yet")
        if seed is not None:  # the masks' seed (each replica mixes in its index)
            options = dict(options, seed=seed)
        return LocalSGD(net, data, method, options)


def _template(layout, dtype):
    """Build a network of ``layout`` and ``dtype`` for the workers to unpickle."""
    from ..network import RNN

    net = RNN.__new__(RNN)
    net.__setstate__(
        {"layout": layout.to_dict(), "dtype": np.dtype(dtype).str, "theta": np.zeros(layout.n_params, dtype)}
    )
    return net
