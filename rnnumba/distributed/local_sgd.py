"""Minibatch training over dask arrays (:func:`fit_minibatch`).

Local SGD with parameter averaging.
"""

import json

import numpy as np

from ..validation import check_int
from .checkpoints import load_checkpoint, save_checkpoint
from .cluster import workers
from .data import DaskData
from .objective import DaskObjective
from .tasks import local_round


def _rng_state(rng):
    return json.dumps(rng.bit_generator.state)


def _rng_from(state):
    state = json.loads(str(state))
    rng = np.random.Generator(getattr(np.random, state["bit_generator"])())
    rng.bit_generator.state = state
    return rng


def fit_minibatch(
    net,
    X=None,
    y=None,
    lengths=None,
    client=None,
    solver="sgd",
    options=None,
    callback=None,
    *,
    epochs=20,
    replicas=None,
    sync_every=None,
    shuffle=True,
    random_state=None,
    checkpoint=None,
    checkpoint_every=1,
    resume_from=None,
    data=None,
    **data_kwargs,
):
    """Minibatch SGD/Adam over dask arrays: local SGD with parameter averaging.

    The parts (chunks) are split into ``replicas`` contiguous groups. Each
    replica runs the compiled epoch of :class:`rnnumba.solvers.FirstOrder`
    over its own rows -- contiguous blocks of ``batch_size``, its parts in a
    shuffled order and each part's blocks shuffled -- the parameters moving
    from part to part (a chain of tasks, each on the worker holding its part).
    Every ``sync_every`` steps, by default once per epoch, the client averages
    the replicas' parameters and optimiser state, weighted by the rows each saw,
    in replica order. The orders are drawn on the client from ``random_state``:
    one replica over one part is exactly the estimators' one-process loop, and
    every run is bitwise repeatable for one chunking and one ``replicas``.

    ``lr`` applies within each replica: an average of R replicas moves about as
    far per epoch as 1/R of the data would in one process. For a curve close to
    one process, scale ``lr`` by R while that stays stable (the linear scaling
    rule), average more often, or use ``replicas=1`` (no parallelism, the
    parameters visit every part in turn).

    Parameters
    ----------
    net : RNN
        The starting point; holds the result on return.
    X, y, lengths, client
        As for :class:`DaskData` (or pass ``data=``); ``data_kwargs`` go there too.
    solver : {"sgd", "adam"}
    options : dict
        :class:`~rnnumba.solvers.FirstOrder` keywords: ``lr``, ``batch_size``,
        ``momentum``, ``nesterov``, ``beta1``, ``beta2``, ``epsilon``, ``clip``,
        ``weight_decay``. Default: the seed's SGD, lr 0.02, batch 20.
    callback : callable, optional
        ``callback(epoch, theta, loss)`` after every epoch; True stops.
    epochs : int
        Total passes over the data (counting those before a resume).
    replicas : int, optional
        Default: the cluster's Dask threads, at most the number of parts.
    sync_every : int, optional
        Steps of each replica between averages; default one epoch.
    shuffle : bool, default True
        Draw new part and block orders every epoch.
    random_state : int, numpy.random.Generator or None
        Draws the part and block orders of every epoch.
    checkpoint : path, optional
        Save the whole state every ``checkpoint_every`` epochs and at the end;
        ``resume_from=`` that file continues the run bitwise as if uninterrupted.
    checkpoint_every : int, default 1
        Epochs between checkpoints.
    resume_from : path, optional
        A checkpoint of this run to continue from.
    data : DaskData, optional
        Data already on the workers, instead of ``X, y, lengths``.
    **data_kwargs
        More :class:`DaskData` keywords.

    Returns
    -------
    theta : ndarray
    result : scipy.optimize.OptimizeResult
        ``fun``: the full-batch loss at the final ``theta``; ``nit``: epochs;
        ``message``: "max_iter", "stopped by a callback", "interrupted" or
        "diverged" (``theta`` then holds the last finite average).
    loss_curve : ndarray
        Mean minibatch loss (weighted by rows) of every epoch.

    Examples
    --------
    >>> import dask.array as da
    >>> from distributed import Client
    >>> import rnnumba
    >>> from rnnumba.datasets import make_toy
    >>> from rnnumba.distributed import fit_minibatch
    >>> client = Client(processes=False, n_workers=2, threads_per_worker=1, dashboard_address=None)
    >>> X, z = make_toy(400, random_state=0)
    >>> net = rnnumba.RNN(1, 8, random_state=0)
    >>> theta, result, curve = fit_minibatch(net, da.from_array(X, chunks=100), da.from_array(z, chunks=100),
    ...                                      client=client, options={"lr": 0.04}, epochs=3, replicas=2,
    ...                                      random_state=0)
    >>> len(curve)
    3
    >>> client.close()
    """
    from scipy.optimize import OptimizeResult

    from ..solvers import FIRST_ORDER

    if solver not in FIRST_ORDER:
        raise ValueError(f"solver must be one of {FIRST_ORDER}, got {solver!r}")
    options = {"lr": 0.02, "batch_size": 20, **(options or {})}
    check_first_order(net, solver, options)
    epochs = check_int(epochs, "epochs", 0)
    every = check_int(checkpoint_every, "checkpoint_every")
    rng = (
        random_state if isinstance(random_state, np.random.Generator) else np.random.default_rng(random_state)
    )
    payload, step, epoch, curve = None, 0, 0, []
    if resume_from is not None:
        state = load_checkpoint(resume_from, net, "minibatch")
        if str(state["solver"]) != solver:
            raise ValueError(f"{resume_from} holds a {state['solver']} run, not {solver}")
        payload, step, epoch = state["payload"].astype(net.dtype), int(state["step"]), int(state["epoch"])
        rng, curve = _rng_from(state["rng"]), list(state["loss_curve"])
        replicas = int(state["replicas"]) if replicas is None else replicas
    trainer = None

    def save():
        if checkpoint is not None and trainer is not None:
            t = trainer
            state = dict(
                payload=t.payload, step=t.step, epoch=epoch, rng=_rng_state(rng), solver=solver, replicas=t.R
            )
            save_checkpoint(
                checkpoint, net, "minibatch", theta=t.payload[0], loss_curve=np.array(curve), **state
            )

    own = data is None
    if own:
        data_kwargs.setdefault("kernels", ("epoch", "objective"))
        data = DaskData(net, X, y, lengths, client, **data_kwargs)
    message = "max_iter"
    try:
        trainer = LocalSGD(net, data, solver, options, replicas, sync_every, payload, step)
        while epoch < epochs:
            try:
                mean, finite = trainer.epoch(rng, shuffle)
            except KeyboardInterrupt:
                message = "interrupted"
                break
            if not finite:
                message = "diverged"  # the payload keeps the last finite average
                break
            epoch += 1
            curve.append(mean)
            if epoch % every == 0:
                save()
            if callback is not None and callback(epoch, trainer.payload[0].copy(), curve[-1]):
                message = "stopped by a callback"
                break
        trainer.finish()
        final, grad = DaskObjective(net, data=data)(net.theta)
    finally:
        if own:
            data.close()
    save()
    ok = message in ("max_iter", "stopped by a callback")
    res = OptimizeResult(
        x=net.theta.copy(),
        fun=final,
        jac=grad,
        nit=epoch,
        step=trainer.step,
        replicas=trainer.R,
        success=ok,
        message=message,
    )
    return net.theta.copy(), res, np.array(curve)


def check_first_order(net, method, options):
    """Build the optimiser once on the client: unknown options fail here, not on a worker."""
    from ..solvers import FirstOrder

    FirstOrder(net.copy(), method, **options)


class LocalSGD:
    """Epochs of local SGD over :class:`DaskData`: the Dask backend's trainer.

    The same contract as the CPU's :class:`rnnumba.backends.cpu.Trainer`:
    ``epoch(rng, shuffle) -> (mean_loss, finite)``, ``sync()``, ``finish()``;
    the algorithm is :func:`fit_minibatch`'s (which runs it).

    Parameters
    ----------
    net : RNN
    data : DaskData
    method : {"sgd", "adam"}
    options : dict
        :class:`~rnnumba.solvers.FirstOrder` keywords (``batch_size`` required).
    replicas, sync_every : int, optional
        As for :func:`fit_minibatch`.
    payload : ndarray (3, P), optional
        ``(theta, state[0], state[1])`` to start from (a checkpoint's);
        default ``net.theta`` and a zero optimiser state.
    step : int
        Updates done before (a checkpoint's).
    """

    def __init__(self, net, data, method, options, replicas=None, sync_every=None, payload=None, step=0):
        check_first_order(net, method, options)
        sync_every = None if sync_every is None else check_int(sync_every, "sync_every")
        replicas = None if replicas is None else check_int(replicas, "replicas")
        B = check_int(options["batch_size"], "batch_size")
        self.net, self.data, self.P = net, data, net.n_params
        if payload is None:
            payload = np.zeros((3, self.P), dtype=net.dtype)
            payload[0] = net.theta
        self.payload, self.step = payload, step
        n = data.n_chunks
        if replicas is None:
            replicas = sum(w["nthreads"] for w in workers(data.client).values())
        self.R = R = max(1, min(replicas, n))
        self.groups = [list(range(r * n // R, (r + 1) * n // R)) for r in range(R)]
        self.blocks = [-(-size // B) for size in data.sizes]
        self.totals = [sum(self.blocks[k] for k in g) for g in self.groups]
        self.steps = max(self.totals) if sync_every is None else sync_every
        self.cfg = dict(net=net.copy(), method=method, options=options, loss=data.loss, threads=data.threads)

    def _schedule(self, g, rng, shuffle):
        """Return this epoch's (part, block) sequence of one replica."""
        blocks = self.blocks
        parts = [g[i] for i in rng.permutation(len(g))] if shuffle and len(g) > 1 else g
        orders = [rng.permutation(blocks[k]) if shuffle else np.arange(blocks[k]) for k in parts]
        return np.repeat(parts, [blocks[k] for k in parts]), np.concatenate(orders)

    def _chains(self, seqs, r0):
        data, client, cfg, steps = self.data, self.data.client, self.cfg, self.steps

        def submit(start):
            ends = []
            for replica, (pids, bids) in enumerate(seqs):
                fut, pids, bids = start, pids[r0 : r0 + steps], bids[r0 : r0 + steps]
                cuts = np.flatnonzero(np.diff(pids)) + 1
                for p_run, b_run in zip(np.split(pids, cuts), np.split(bids, cuts), strict=True):
                    if len(p_run):
                        part = data.parts[int(p_run[0])]
                        fut = client.submit(local_round, part, b_run, fut, cfg, replica, pure=False)
                ends.append(fut)
            return ends

        return submit

    def epoch(self, rng, shuffle=True):
        """One pass over every part: ``(mean minibatch loss weighted by rows, finite)``.

        On a non-finite step the payload keeps the last finite average and
        ``finite`` is False.
        """
        seqs = [self._schedule(g, rng, shuffle) for g in self.groups]
        means = []  # (mean minibatch loss, rows) of every link
        for r0 in range(0, max(self.totals), self.steps):
            self.cfg["step"] = self.step
            out = self.data.run(self.payload, self._chains(seqs, r0), "local_round")
            out = [o if isinstance(o, tuple) else (o, self.step, [], True) for o in out]  # idle replicas
            if not all(o[3] for o in out):
                return float("nan"), False
            seen = np.array([sum(m[1] for m in o[2]) for o in out], dtype=np.float64)
            acc = np.zeros((3, self.P))
            for w, o in zip(seen / seen.sum(), out, strict=True):  # replica order
                if w:
                    acc += w * o[0]  # one replica: w == 1.0, exact
            self.payload = acc.astype(self.net.dtype)
            self.step = max(o[1] for o in out)
            means += [m for o in out for m in o[2] if m[1]]
        rows = sum(m[1] for m in means)
        return (means[0][0] if len(means) == 1 else sum(m * k for m, k in means) / rows), True

    def sync(self):
        """Copy the current average into ``net.theta``."""
        self.net.theta[:] = self.payload[0]

    def finish(self):
        """Copy the last (finite) average into ``net.theta``."""
        self.net.set_theta(self.payload[0])

    def state(self):
        """None: this trainer's optimiser state stays where it ran (warm starts restart it)."""
        return None

    def load_state(self, state):
        """Refuse: only the CPU trainer goes on from a saved optimiser state."""
        raise ValueError("going on from an optimiser state (warm_start, partial_fit) needs device='cpu'")
