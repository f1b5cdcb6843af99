"""The full-batch objective over dask arrays (:class:`DaskObjective`).

Every part's loss and gradient sums come back from the workers and are added
in part order on the client.
"""

import numpy as np

from .data import DaskData
from .tasks import eval_part


def evaluate(data, theta, template):
    """Mean loss and gradient over every part at ``theta``, both float64.

    Parameters
    ----------
    data : DaskData
    theta : ndarray (P,)
        Of the network's dtype.
    template : RNN
        What the workers unpickle (its layout and dtype; a copy per task).

    Returns
    -------
    value : float
    grad : ndarray (P,) of float64
    """
    out = data.map(eval_part, theta, net=template, loss=data.loss, threads=data.threads)
    total, grad = 0.0, np.zeros(theta.shape[0], dtype=np.float64)
    for value, g in out:  # part order: the sum does not depend on placement
        total += value
        grad += g
    return total / data.count, grad / data.count


class DaskObjective:
    """``f(theta) -> (loss, grad)`` over dask arrays, for ``scipy.optimize.minimize(jac=True)``.

    The distributed twin of :meth:`rnnumba.RNN.objective` (and of
    ``rnnumba.solvers.ScipyObjective``, whose ``weight_decay`` term it shares):
    the same value and gradient to float64 rounding, bitwise repeatable for
    one chunking. Pass ``data=`` (a :class:`DaskData`) or the arguments of
    :class:`DaskData`.

    Parameters
    ----------
    net : RNN
        The network whose layout and dtype the workers evaluate.
    X, y, lengths, client
        As for :class:`DaskData`; or pass ``data=``.
    data : DaskData, optional
        Data already on the workers (not closed by :meth:`close`).
    weight_decay : float, default 0
        Adds ``weight_decay/2 * |theta|^2``.
    **kwargs
        More :class:`DaskData` keywords.

    Examples
    --------
    >>> import numpy as np, dask.array as da
    >>> from distributed import Client
    >>> import rnnumba
    >>> from rnnumba import distributed as rd
    >>> client = Client(processes=False, n_workers=2, threads_per_worker=1, dashboard_address=None)
    >>> from rnnumba.datasets import make_toy
    >>> X, z = make_toy(400, random_state=0)
    >>> net = rnnumba.RNN(1, 8, random_state=0)
    >>> f = rd.DaskObjective(net, da.from_array(X, chunks=100), da.from_array(z, chunks=100), client=client)
    >>> loss, grad = f(net.theta)
    >>> bool(np.isclose(loss, net.objective(X, z)(net.theta)[0], rtol=1e-12))
    True
    >>> f.close(); client.close()
    """

    def __init__(
        self, net, X=None, y=None, lengths=None, client=None, *, data=None, weight_decay=0.0, **kwargs
    ):
        self.net = net
        self._own = data is None
        self.data = DaskData(net, X, y, lengths, client, **kwargs) if data is None else data
        self.weight_decay = float(weight_decay)
        self._template = net.copy()  # what the workers unpickle: layout, dtype
        self.n_calls, self.last_x, self.last_f = 0, None, np.inf

    def __call__(self, theta):
        """Return ``(loss, grad)`` at ``theta``: the mean over all counted targets."""
        x = np.asarray(theta, dtype=np.float64)
        if self.last_x is not None and np.array_equal(x, self.last_x):
            return self.last_f, self.last_g.copy()  # scipy often asks twice for one point
        theta = np.ascontiguousarray(theta, dtype=self.net.dtype)
        if theta.shape != (self.net.n_params,):
            raise ValueError(f"theta must have shape ({self.net.n_params},), got {theta.shape}")
        value, grad = evaluate(self.data, theta, self._template)
        if self.weight_decay:
            value += 0.5 * self.weight_decay * float(np.dot(x, x))
            grad += self.weight_decay * x
        self.n_calls += 1
        if np.isfinite(value) and np.all(np.isfinite(grad)):
            self.last_x, self.last_f, self.last_g = x.copy(), value, grad.copy()
        elif not np.isfinite(value):
            value = np.inf  # line searches back off from inf; NaN would poison them
        return value, grad

    loss_and_grad = __call__

    def value_at(self, x):
        """Return the objective at ``x``, re-using the last evaluation when it was there.

        Parameters
        ----------
        x : ndarray (n_params,)
            The parameters.

        Returns
        -------
        float
            The loss (plus the weight decay term).
        """
        if self.last_x is not None and np.array_equal(x, self.last_x):
            return self.last_f
        return self(x)[0]

    def close(self):
        """Release the data on the workers, if this objective created them."""
        if self._own:
            self.data.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
