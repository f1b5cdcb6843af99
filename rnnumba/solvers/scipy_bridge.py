"""Train the flat vector with ``scipy.optimize.minimize``.

The network's loss is a function of one vector with an exact gradient, so
any gradient method of scipy applies unchanged: L-BFGS-B, BFGS, CG, ...
"""

import numpy as np

from ..validation import kernel_array

# methods that use the gradient; the others would silently ignore it
GRADIENT_METHODS = ("L-BFGS-B", "BFGS", "CG", "Newton-CG", "TNC", "SLSQP", "trust-constr")
_BY_LOWER = {m.lower(): m for m in GRADIENT_METHODS}


def scipy_method(name):
    """Return the canonical spelling of a scipy gradient method, or None."""
    return _BY_LOWER.get(str(name).lower()) if isinstance(name, str) else None


class Stop(Exception):
    """Raised from the per-iteration callback to end the optimisation."""


class ScipyObjective:
    """``f(x) -> (loss, grad)`` on a :class:`~rnnumba.data.Batch`, remembering its last point.

    The data loss plus ``weight_decay/2 * |x|^2``. The last finite point and
    its value are kept so that an interrupted or diverged run can return
    them.
    """

    def __init__(self, net, batch, weight_decay=0.0):
        self.net = net
        self.data = net.backend.resident(batch)  # on a GPU: uploaded once
        self.weight_decay = float(weight_decay)
        self.last_x = None
        self.last_f = np.inf
        self.n_calls = 0

    def __call__(self, x):
        """Evaluate the objective and its gradient at ``x``.

        A point with a finite value and gradient is kept as ``last_x`` and
        ``last_f``.

        Parameters
        ----------
        x : ndarray
            The parameters.

        Returns
        -------
        value : float
            The loss plus the weight-decay term; inf when it is not finite.
        grad : ndarray
            The gradient, in float64.
        """
        net = self.net
        theta = kernel_array(x, net.dtype)
        value = net.backend.loss_and_grad(theta, net.grad, self.data)
        grad = net.grad.astype(np.float64, copy=True)
        if self.weight_decay:
            value += 0.5 * self.weight_decay * float(np.dot(x, x))
            grad += self.weight_decay * x
        self.n_calls += 1
        if np.isfinite(value) and np.all(np.isfinite(grad)):
            self.last_x, self.last_f = np.array(x, dtype=np.float64), value
        elif not np.isfinite(value):
            value = np.inf  # line searches back off from inf; NaN would poison them
        return value, grad

    def value_at(self, x):
        """Return the objective at ``x``, re-using the last evaluation when it was there."""
        if self.last_x is not None and np.array_equal(x, self.last_x):
            return self.last_f
        return self(x)[0]


def minimize(objective, x0, method, maxiter, options=None, callback=None):
    """``scipy.optimize.minimize`` with ``jac=True`` and ``maxiter``.

    Parameters
    ----------
    objective : ScipyObjective
    x0 : ndarray
    method : str
        One of :data:`GRADIENT_METHODS`.
    maxiter : int
    options : dict, optional
        Passed to scipy (``maxiter`` here wins over the argument).
    callback : callable(xk, fk) -> bool, optional
        Called after every iteration; returning True ends the run.

    Returns
    -------
    result : scipy.optimize.OptimizeResult
        With ``message`` "stopped by a callback" or "interrupted" (and
        ``success=False``) when the run was cut short; ``x`` is then the last
        iterate.
    interrupted : bool
        True after a KeyboardInterrupt.
    """
    from scipy.optimize import OptimizeResult
    from scipy.optimize import minimize as scipy_minimize

    opts = {"maxiter": int(maxiter)}
    opts.update(options or {})
    state = {"x": np.array(x0, dtype=np.float64), "nit": 0}

    def cb(xk, *rest):  # trust-constr passes (xk, state)
        xk = np.asarray(xk, dtype=np.float64)
        state["x"], state["nit"] = xk.copy(), state["nit"] + 1
        if callback is not None and callback(xk, objective.value_at(xk)):
            raise Stop

    def cut(message):
        x = state["x"]
        return OptimizeResult(
            x=x, fun=objective.value_at(x), success=False, status=-1, message=message, nit=state["nit"]
        )

    try:
        result = scipy_minimize(
            objective, np.array(x0, dtype=np.float64), jac=True, method=method, options=opts, callback=cb
        )
    except Stop:
        return cut("stopped by a callback"), False
    except KeyboardInterrupt:
        return cut("interrupted"), True
    if "nit" not in result:
        result.nit = state["nit"]
    return result, False
