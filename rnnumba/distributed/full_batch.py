"""Full-batch training over dask arrays (:func:`fit_full_batch`).

``scipy.optimize.minimize`` on a :class:`~rnnumba.distributed.DaskObjective`.
"""

import numpy as np

from ..validation import check_int
from .checkpoints import load_checkpoint, save_checkpoint
from .objective import DaskObjective


class _Stop(Exception):
    pass


def fit_full_batch(
    net,
    X=None,
    y=None,
    lengths=None,
    client=None,
    solver="L-BFGS-B",
    options=None,
    callback=None,
    *,
    weight_decay=0.0,
    checkpoint=None,
    checkpoint_every=10,
    resume_from=None,
    data=None,
    **data_kwargs,
):
    """Full-batch ``scipy.optimize.minimize`` over dask arrays.

    Parameters
    ----------
    net : RNN
        The starting point; holds the result on return.
    X, y, lengths, client
        As for :class:`DaskData` (or pass ``data=``); ``data_kwargs`` go there too.
    solver : str
        A gradient method of ``scipy.optimize.minimize`` ("L-BFGS-B", "BFGS", "CG", ...).
    options : dict, optional
        scipy's ``options``. ``maxiter`` counts the iterations of all runs
        together when resuming.
    callback : callable, optional
        ``callback(iteration, theta, loss)`` after every iteration; True stops.
    weight_decay : float
        Adds ``weight_decay/2 * |theta|^2``.
    checkpoint : path, optional
        Save ``theta`` there every ``checkpoint_every`` iterations and at the end.
    checkpoint_every : int, default 10
        Iterations between checkpoints.
    resume_from : path, optional
        Start from a checkpoint's ``theta``; the quasi-Newton memory restarts.
    data : DaskData, optional
        Data already on the workers, instead of ``X, y, lengths``.
    **data_kwargs
        More :class:`DaskData` keywords.

    Returns
    -------
    theta : ndarray
        A copy of ``net.theta``.
    result : scipy.optimize.OptimizeResult
        ``nit_total`` also counts the iterations before a resume; ``message``
        is "stopped by a callback" or "interrupted" for runs cut short.
    loss_curve : ndarray
        The objective at the start and after every iteration.

    Examples
    --------
    >>> import os, tempfile
    >>> import dask.array as da
    >>> from distributed import Client
    >>> import rnnumba
    >>> from rnnumba.datasets import make_toy
    >>> from rnnumba.distributed import fit_full_batch
    >>> client = Client(processes=False, n_workers=2, threads_per_worker=1, dashboard_address=None)
    >>> X, z = make_toy(400, random_state=0)
    >>> net = rnnumba.RNN(1, 8, random_state=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "fit.npz")
    >>> theta, result, curve = fit_full_batch(net, da.from_array(X, chunks=100), da.from_array(z, chunks=100),
    ...                                       client=client, options={"maxiter": 10}, checkpoint=path)
    >>> bool(curve[-1] < curve[0]), os.path.exists(path)
    (True, True)
    >>> client.close()
    """
    from scipy.optimize import OptimizeResult, minimize

    every = check_int(checkpoint_every, "checkpoint_every")
    options = dict(options or {})
    x0, done, curve = net.theta.astype(np.float64), 0, []
    if resume_from is not None:
        state = load_checkpoint(resume_from, net, "full_batch")
        x0, done, curve = state["theta"].astype(np.float64), int(state["nit"]), list(state["loss_curve"])
        if "maxiter" in options:
            options["maxiter"] = max(0, int(options["maxiter"]) - done)
    f = DaskObjective(net, X, y, lengths, client, data=data, weight_decay=weight_decay, **data_kwargs)
    nit, last = done, {"x": x0}

    def save(x):
        if checkpoint is not None:
            save_checkpoint(checkpoint, net, "full_batch", theta=x, nit=nit, loss_curve=np.array(curve))

    def cb(xk, *rest):  # old-style callback: every method calls it this way
        nonlocal nit
        xk = np.array(xk, dtype=np.float64)
        nit += 1
        last["x"] = xk
        curve.append(f.value_at(xk))
        if nit % every == 0:
            save(xk)
        if callback is not None and callback(nit, xk, curve[-1]):
            raise _Stop

    def cut(message):
        x = last["x"]
        return OptimizeResult(
            x=x, fun=f.value_at(x), success=False, status=-1, message=message, nit=nit - done
        )

    try:
        if not curve:
            curve.append(f(x0)[0])
        if options.get("maxiter", 1) == 0:
            res = OptimizeResult(
                x=x0, fun=f.value_at(x0), success=True, status=0, message="maxiter reached", nit=0
            )
        else:
            try:
                res = minimize(f, x0, jac=True, method=solver, options=options, callback=cb)
            except _Stop:
                res = cut("stopped by a callback")
            except KeyboardInterrupt:
                res = cut("interrupted")
        res.nit_total = done + int(res.get("nit", nit - done))
        res.n_calls = f.n_calls
        if not (np.all(np.isfinite(res.x)) and np.isfinite(f.value_at(res.x))):
            res.x = f.last_x if f.last_x is not None else x0  # the last finite point
            res.fun, res.success, res.message = f.value_at(res.x), False, "diverged"
    finally:
        f.close()
    net.set_theta(np.asarray(res.x, dtype=net.dtype))
    nit = res.nit_total
    save(np.asarray(res.x, dtype=np.float64))
    return net.theta.copy(), res, np.array(curve)
