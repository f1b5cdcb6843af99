"""Data-parallel training on Dask: the same CPU kernels per chunk, fixed-order sums.

Sibling of :mod:`rnnumba.engine` (one process) and ``rnnumba.gpu`` (GPU); see
``docs/dask.md`` for the design and for running on a real cluster.

* :class:`DaskData`: dask arrays chunked along samples, validated chunk by
  chunk on the workers and kept there as the padded arrays the kernels read.
  Every part keeps its task lineage, so a lost worker's parts are recomputed.
* Full batch (:class:`DaskObjective`, :func:`fit_full_batch`): each call
  broadcasts ``theta``, runs the engine's ``loss_and_grad`` kernel on every part (scale 1:
  sums) and adds the parts' (loss, gradient) in part order on the client, so a
  result depends on the chunking only, never on which worker ran what.
* Minibatch (:func:`fit_minibatch`): local SGD. The parts form ``replicas``
  groups; each replica runs the compiled epoch of
  :class:`rnnumba.solvers.FirstOrder` over its own parts in turn, and the
  client averages the replicas' parameters and optimiser state (weighted by the
  rows each saw) every ``sync_every`` steps or once per epoch.
* :func:`fit_estimator`: the dask path of ``RNNRegressor.fit`` / ``RNNClassifier.fit``.

Nothing here imports dask at import time: :func:`is_dask_collection` is cheap
for the estimators to call on any input.
"""

import concurrent.futures
import json
import math
import os
import sys
import tempfile
import time

import numpy as np

from . import engine
from .losses import LOSSES
from .network import RNN
from .preprocessing import Standardizer
from .validation import check_int, check_sequences, check_targets

__all__ = [
    "DaskData",
    "DaskObjective",
    "fit_estimator",
    "fit_full_batch",
    "fit_minibatch",
    "is_dask_collection",
    "load_checkpoint",
    "numba_threads_for",
    "predict",
    "save_checkpoint",
    "warm_workers",
]


def is_dask_collection(x):
    """True for a dask array (or any dask collection); never imports dask."""
    if "dask" not in sys.modules:  # nothing can be a dask collection yet
        return False
    from dask.base import is_dask_collection as is_collection

    return bool(is_collection(x))


def _dask():
    try:
        import dask
        import dask.array as da
        import distributed
    except ImportError as exc:  # pragma: no cover - the extra is installed in CI
        raise ImportError(
            "training on dask arrays needs dask[distributed]: pip install 'rnnumba[dask]'"
        ) from exc
    return dask, da, distributed


def _client(client):
    _, _, distributed = _dask()
    if client is not None:
        return client
    try:
        return distributed.get_client()
    except ValueError as exc:
        raise ValueError(
            "no Dask client: pass client= or start one first, e.g. distributed.Client(scheduler_address)"
        ) from exc


# ---------------------------------------------------------------- tasks run on the workers


def _set_threads(threads):
    """Numba's thread count for this task (numba keeps it per thread, so per task)."""
    if threads:
        import numba

        numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))


def _own(a):
    """``a``, or a copy when it is read-only: arrays that arrive from the
    network are, and numba compiles a separate (uncached) version for them."""
    return a if a.flags.writeable else a.copy()


def _usable_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def _chunk_error(exc, k, start, n):
    where = f"chunk {k} (samples {start}..{start + n - 1}; indices below count from {start})"
    return type(exc)(f"{where}: {exc}")


def _valid_mask(lengths, N, T):
    return (
        np.ones((N, T), dtype=bool)
        if lengths is None
        else np.arange(T)[None, :] < np.asarray(lengths)[:, None]
    )


def _block_classes(y, lengths, many, k, start):
    """Sorted labels of one chunk's valid targets."""
    y = np.asarray(y)
    labels = y[_valid_mask(lengths, *y.shape[:2])] if many else y
    if labels.dtype == object:
        raise _chunk_error(
            ValueError("class labels must be of one type (numbers or strings)"), k, start, len(y)
        )
    if labels.dtype.kind == "f" and not np.all(np.isfinite(labels)):
        raise _chunk_error(ValueError("class labels hold NaN or infinite values"), k, start, len(y))
    return np.unique(labels)


def _prepare_part(X, y, lengths, k, start, layout, loss, dtype, classes):
    """One chunk validated into the kernels' arrays: (X, lengths, Y, many, count)."""
    dtype = np.dtype(dtype)
    try:
        X3, lens, _ = check_sequences(X, lengths, layout["input_size"], dtype)
        if classes is not None:  # labels -> codes 0..K-1, as RNNClassifier does
            labels = np.asarray(y)
            many = labels.ndim == 2
            mask = _valid_mask(lens, *labels.shape[:2]) if many else np.ones(labels.shape, bool)
            idx = np.clip(np.searchsorted(classes, labels[mask]), 0, len(classes) - 1)
            if np.any(classes[idx] != labels[mask]):
                raise ValueError("y holds a label that is not in classes")
            y = np.zeros(labels.shape, dtype=np.int64)
            y[mask] = idx
        Y, many, count = check_targets(y, X3.shape[0], X3.shape[1], lens, layout["output_size"], loss, dtype)
    except (ValueError, TypeError) as exc:
        raise _chunk_error(exc, k, start, len(X)) from None
    return _own(X3), _own(lens), _own(Y), many, count


def _part_summary(part, moments=False):
    """(rows, T, many, count, valid-cell count, mean, M2) of one part's inputs."""
    X, lengths, _, many, count = part
    if not moments:
        return X.shape[0], X.shape[1], many, count, 0, 0.0, 0.0
    cells = X[_valid_mask(lengths, *X.shape[:2])].astype(np.float64).ravel()
    mean = float(cells.mean()) if cells.size else 0.0
    m2 = float(((cells - mean) ** 2).sum())
    return X.shape[0], X.shape[1], many, count, cells.size, mean, m2


def _scale_part(part, mean, std):
    """Standardise a part's inputs exactly as ``Standardizer.transform`` does."""
    X, lengths, Y, many, count = part
    Xs = Standardizer.from_dict({"mean": mean, "std": std}).transform(X, lengths)
    return np.ascontiguousarray(Xs, dtype=X.dtype), lengths, Y, many, count


def _eval_part(part, payload, net, loss, threads):
    """Loss SUM and gradient SUM of one part at ``payload`` (= theta).

    ``RNN._loss_and_grad`` with a count of 1: the engine's ``loss_and_grad`` at
    scale 1, chunked by the network's own rule.
    """
    _set_threads(threads)
    X, lengths, Y = (_own(a) for a in part[:3])
    net = net.copy()  # tasks on one worker may share one unpickled net: own grad buffer
    value = net._loss_and_grad(X, lengths, Y, part[3], 1, loss, _own(payload))
    return float(value), net.grad


_LOADED = set()


def _load_objective(net):
    """Load (or compile) the engine's objective in this process before the
    solvers' epoch. Written when the epoch called ``engine._loss_and_grad``: a
    cached caller loaded before its callee segfaulted (numba#8578), and a fresh
    or restarted worker may well run an epoch before an evaluation. The epoch
    now runs its own chunk loop; the order is kept as a cheap precaution."""
    if net.dtype.str not in _LOADED:
        I, O = net.layout.input_size, net.layout.output_size
        X, Y = np.zeros((2, 1, I), dtype=net.dtype), np.zeros((2, 1, O), dtype=net.dtype)
        net.copy()._loss_and_grad(X, np.ones(2, dtype=np.int64), Y, False, 1, "mse")
        _LOADED.add(net.dtype.str)


def _local_round(part, order, payload, cfg, replica=0):
    """One link of a replica's chain: the minibatches ``order`` of this part.

    ``payload`` is the round's starting stack (theta, state[0], state[1]) -- the
    parameters and the optimiser state of :class:`~rnnumba.solvers.FirstOrder`
    (momentum buffer or Adam's moments) -- or the previous link's result.
    ``replica`` (its index) picks the dropout masks: replica 0 draws those of
    the one-process run with the same seed, replica ``r`` those of the seed
    ``(seed, r)``, so replicas at the same update number drop different units.
    Returns ``(stack, step, [(mean minibatch loss, rows), ...], finite)``.
    """
    from .solvers import FirstOrder

    if isinstance(payload, tuple):  # continuing a chain
        stack, step, means, finite = payload
        if not finite:
            return payload
    else:
        stack, step, means = payload, cfg["step"], []
    _set_threads(cfg["threads"])
    X, lengths, Y = (_own(a) for a in part[:3])
    order = np.array(order, dtype=np.int64)  # writeable: see _own
    net = cfg["net"].copy()  # tasks on one worker may share one unpickled cfg
    _load_objective(net)
    net.theta[:] = stack[0]
    options = cfg["options"]
    if replica and net.dropout:
        seed = options.get("seed")
        options = dict(options, seed=[*np.atleast_1d(0 if seed is None else seed).tolist(), replica])
    opt = FirstOrder(net, cfg["method"], **options)
    opt.state[:] = stack[1:]
    opt.step = step
    opt.prev[:] = net.theta
    mean, finite = opt.epoch(X, lengths, Y, part[3], cfg["loss"], order)
    rows = int(sum(min(X.shape[0], (b + 1) * opt.batch_size) - b * opt.batch_size for b in order))
    out = np.concatenate([net.theta[None, :], opt.state])
    return out, opt.step, means + [(mean, rows)], bool(finite)


def _warm_task(net, kernels, threads):
    """Compile (or load from the disk cache) ``kernels`` in this process.

    Returns ``{kernel: (cache hits, cache misses, seconds)}``; misses > 0 means
    this process compiled and wrote the cache.
    """
    _set_threads(threads)
    I, O = net.layout.input_size, net.layout.output_size
    X = np.zeros((2, 1, I), dtype=net.dtype)
    Y = np.zeros((2, 1, O), dtype=net.dtype)
    lengths = np.ones(2, dtype=np.int64)
    out = {}
    for name in sorted(kernels, key=lambda k: k != "objective"):  # see _load_objective
        t0 = time.perf_counter()
        if name == "objective":
            fn = engine.kernels(net.layout.kernel_family).loss_and_grad
            _load_objective(net)
        else:  # "epoch": the compiled minibatch loop
            from .solvers import FirstOrder
            from .solvers import kernels as solver_kernels

            fn = solver_kernels.epoch_kernel(net.layout.kernel_family)
            FirstOrder(net, "sgd", lr=0.0, batch_size=2).epoch(
                X, lengths, Y, False, "mse", np.zeros(1, np.int64)
            )
        stats = fn.stats
        out[name] = (
            sum(stats.cache_hits.values()),
            sum(stats.cache_misses.values()),
            time.perf_counter() - t0,
        )
    return out


def _predict_block(X, lengths, net, threads):
    _set_threads(threads)
    return net.predict(X, lengths)


# ---------------------------------------------------------------- threads and compiled code


def numba_threads_for(client):
    """Numba threads per Dask thread that fill, and never oversubscribe, each host.

    Per host: usable CPUs // Dask threads on that host (at least 1); the
    minimum over hosts. Two workers x 1 thread on 2 cores -> 1.
    """
    info = client.scheduler_info(n_workers=-1)["workers"]
    if not info:
        raise RuntimeError("the Dask cluster has no workers")
    cpus = client.run(_usable_cpus)
    hosts = {}
    for addr, w in info.items():
        h = hosts.setdefault(w["host"], [0, 1])
        h[0] += w["nthreads"]
        h[1] = max(h[1], cpus.get(addr, 1))
    return max(1, min(c // max(1, n) for n, c in hosts.values()))


def warm_workers(client, net, kernels=("objective",), threads=None, mode="host"):
    """Get compiled kernels into every worker without a compile stampede.

    Workers on one host share one numba cache directory unless told otherwise,
    and several processes compiling into one cache at once is a known crash
    source. ``mode="host"``: one worker per host first (hosts in parallel; it
    compiles into its host's cache, or loads it), then all the others, which
    then only read the cache. ``"serial"``: the first wave one host after
    another, for hosts sharing one writable cache directory (NFS). ``False``:
    nothing (every worker loads or compiles on its first task).

    Returns
    -------
    dict
        ``{worker address: {kernel: (cache hits, cache misses, seconds)}}``.
    """
    if not mode:
        return {}
    if mode not in ("host", "serial"):
        raise ValueError(f"warm must be 'host', 'serial' or False, got {mode!r}")
    info = client.scheduler_info(n_workers=-1)["workers"]
    by_host = {}
    for addr in sorted(info):
        by_host.setdefault(info[addr]["host"], []).append(addr)
    first = [ws[0] for ws in by_host.values()]
    rest = [a for ws in by_host.values() for a in ws[1:]]
    template, out = net.copy(), {}

    def wave(addrs):
        futs = [
            client.submit(_warm_task, template, tuple(kernels), threads, workers=[a], pure=False)
            for a in addrs
        ]
        out.update(zip(addrs, client.gather(futs), strict=True))

    for group in [[a] for a in first] if mode == "serial" else [first]:
        wave(group)
    wave(rest)
    return out


# ---------------------------------------------------------------- the data on the workers


def _blocks(X, y, lengths):
    """Align X, y and lengths on the samples axis.

    Returns ``[(X block, y block, lengths block, first sample, size), ...]`` as
    delayed objects, one per non-empty chunk, and N.
    """
    _, da, _ = _dask()
    if not isinstance(X, da.Array):
        raise TypeError(
            f"X must be a dask array, got {type(X).__name__} "
            "(for a dask DataFrame: X.to_dask_array(lengths=True))"
        )
    if X.ndim not in (2, 3):
        raise ValueError(f"X must have shape (N, T) or (N, T, I), got {X.ndim} dimension(s)")

    def known(a, name):
        if any(math.isnan(c) for axis in a.chunks for c in axis):
            raise ValueError(
                f"{name} has unknown chunk sizes (NaN), e.g. after boolean indexing or from a DataFrame: "
                f"call {name}.compute_chunk_sizes() first (or to_dask_array(lengths=True))"
            )

    known(X, "X")
    rows, N = X.chunks[0], X.shape[0]

    def align(a, name):
        if a is None:
            return None
        if not isinstance(a, da.Array):
            if is_dask_collection(a):
                raise TypeError(f"{name} must be a dask array or a NumPy array, got {type(a).__name__}")
            a = np.asarray(a)
            if a.ndim == 0 or a.shape[0] != N:
                raise ValueError(f"{name} has {a.shape[0] if a.ndim else 0} samples but X has {N}")
            return da.from_array(a, chunks=(rows,) + tuple((s,) for s in a.shape[1:]))
        known(a, name)
        if a.ndim == 0 or a.shape[0] != N:
            raise ValueError(f"{name} has {a.shape[0] if a.ndim else 0} samples but X has {N}")
        if a.chunks[0] != rows:
            raise ValueError(
                f"X and {name} are chunked differently along the samples axis: X {rows} vs {name} "
                f"{a.chunks[0]}; rechunk one to match, e.g. {name} = {name}.rechunk({{0: X.chunks[0]}})"
            )
        return a

    def whole(a):  # one chunk along every axis but the samples
        if a is None or all(len(c) == 1 for c in a.chunks[1:]):
            return a
        return a.rechunk({i: -1 for i in range(1, a.ndim)})

    X, y, lengths = whole(X), whole(align(y, "y")), whole(align(lengths, "lengths"))
    xs = X.to_delayed().ravel()
    ys = y.to_delayed().ravel() if y is not None else [None] * len(xs)
    ls = lengths.to_delayed().ravel() if lengths is not None else [None] * len(xs)
    starts = np.concatenate([[0], np.cumsum(rows)]).astype(int)
    keep = [k for k in range(len(rows)) if rows[k] > 0]  # empty chunks (after slicing) hold nothing
    return [(xs[k], ys[k], ls[k], int(starts[k]), int(rows[k])) for k in keep], N


def _class_labels(client, X, y, lengths):
    """The sorted labels of all valid targets, computed chunk by chunk."""
    dask, _, _ = _dask()
    blocks, _ = _blocks(X, y, lengths)
    many = np.ndim(y) == 2
    task = dask.delayed(_block_classes, pure=True)
    futs = client.compute([task(yb, lb, many, k, s) for k, (_, yb, lb, s, _) in enumerate(blocks)])
    return np.unique(np.concatenate(client.gather(futs)))


_LOST = (concurrent.futures.CancelledError, OSError, TimeoutError)


class DaskData:
    """Training data validated and persisted on the workers, one part per chunk.

    Parameters
    ----------
    net : RNN
        Gives the input and output sizes and the dtype.
    X : dask array (N, T) or (N, T, I), chunked along samples
    y : dask array or ndarray, chunked like ``X`` along samples
    lengths : dask array or ndarray of int, optional
    client : distributed.Client, optional
        Default: the current client.
    loss : {"mse", "xent"}, optional
        Default: "xent" for integer ``y``, else "mse".
    classes : ndarray, optional
        Encode ``y``'s labels as their index in ``classes`` (RNNClassifier).
    standardize : bool
        Fit a :class:`~rnnumba.preprocessing.Standardizer` on the valid input cells
        (chunk statistics combined in chunk order) and apply it (``scaler``).
    numba_threads : int, "env" or None
        Numba threads per task: None computes them with
        :func:`numba_threads_for`; "env" leaves each worker's own setting.
    warm : {"host", "serial", False}
        See :func:`warm_workers`.
    kernels : tuple of {"objective", "epoch"}
        What the warm-up compiles.
    retries : int
        Times a call is sent again after losing workers before giving up.
    """

    def __init__(
        self,
        net,
        X,
        y,
        lengths=None,
        client=None,
        *,
        loss=None,
        classes=None,
        standardize=False,
        numba_threads=None,
        warm="host",
        kernels=("objective",),
        retries=3,
    ):
        dask, _, _ = _dask()
        self.net, self.client, self.parts = net, _client(client), []
        self.retries = check_int(retries, "retries", 0)
        if loss is None:
            y_dtype = y.dtype if hasattr(y, "dtype") else np.asarray(y).dtype
            loss = "xent" if np.issubdtype(y_dtype, np.integer) else "mse"
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")
        if numba_threads is None:
            numba_threads = numba_threads_for(self.client)
        elif numba_threads == "env":
            numba_threads = 0
        else:
            numba_threads = check_int(numba_threads, "numba_threads")
        self.loss, self.threads = loss, numba_threads
        blocks, self.n_samples = _blocks(X, y, lengths)
        layout = net.layout.to_dict()
        task = dask.delayed(_prepare_part, pure=True)
        parts = [
            task(xb, yb, lb, k, s, layout, loss, net.dtype.str, classes)
            for k, (xb, yb, lb, s, _) in enumerate(blocks)
        ]
        try:
            self.parts = self.client.compute(parts)
            summary = self.client.gather(self.client.map(_part_summary, self.parts, moments=standardize))
            self.sizes = [s[0] for s in summary]
            self.counts = [s[3] for s in summary]
            self.count = sum(self.counts)
            self.many = summary[0][2]
            self.scaler = self._standardize(summary) if standardize else None
            self.warmup = warm_workers(self.client, net, kernels, self.threads, warm)
        except BaseException:
            self.close()
            raise

    def _standardize(self, summary):
        n, mean, m2 = 0, 0.0, 0.0
        for _, _, _, _, n_k, mean_k, m2_k in summary:  # Chan et al.'s pairwise update, chunk order
            if n_k:
                delta = mean_k - mean
                mean += delta * n_k / (n + n_k)
                m2 += m2_k + delta * delta * n * n_k / (n + n_k)
                n += n_k
        if n < 2:
            raise ValueError(f"need at least 2 valid cells to standardise, got {n}")
        scaler = Standardizer.from_dict({"mean": mean, "std": math.sqrt(m2 / (n - 1))})
        old = self.parts
        self.parts = self.client.map(_scale_part, old, mean=scaler.mean_, std=scaler.std_)
        self.client.gather(self.client.map(len, self.parts))  # wait, then drop the raw parts
        for f in old:
            f.release()
        return scaler

    @property
    def n_chunks(self):
        return len(self.parts)

    def map(self, func, payload, *iterables, **kwargs):
        """``func(part, *items, payload=payload, **kwargs)`` on every part, in part order."""
        return self.run(
            payload,
            lambda fut: self.client.map(func, self.parts, *iterables, payload=fut, pure=False, **kwargs),
            func.__name__,
        )

    def run(self, payload, submit, name="rnnumba"):
        """Broadcast ``payload``, ``submit(its future) -> futures``, gather them.

        ``payload`` (an array) goes to every worker once per call. A worker lost
        on the way: its parts are recomputed from their lineage and the call is
        sent again (bitwise the same result); parts that cannot be recomputed
        -> RuntimeError.
        """
        _, _, distributed = _dask()
        for attempt in range(self.retries + 1):
            try:
                fut = self.client.scatter(payload, broadcast=True, hash=False)
                return self.client.gather(submit(fut))
            except distributed.scheduler.KilledWorker as exc:
                raise RuntimeError(
                    f"{name} tasks kept killing workers ({exc}): the compiled kernel crashes there; "
                    "check that every worker runs the same rnnumba and numba versions and try a fresh "
                    "NUMBA_CACHE_DIR"
                ) from exc
            except _LOST as exc:
                # "lost" parts are being recomputed from their lineage; "cancelled" ones have none
                bad = [k for k, f in enumerate(self.parts) if f.status in ("error", "cancelled")]
                if bad:
                    raise RuntimeError(
                        f"training data part(s) {bad} were lost with a worker and cannot be recomputed "
                        "(data without a task lineage, e.g. scattered by hand): re-create the dask arrays "
                        "from their source and resume from the last checkpoint"
                    ) from exc
                if attempt == self.retries:
                    raise RuntimeError(
                        f"lost workers {attempt + 1} times in a row: giving up rather than fit on "
                        "partial data"
                    ) from exc
                time.sleep(attempt + 1.0)  # let the scheduler notice the loss
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self):
        """Release the persisted parts on the workers."""
        for f in self.parts:
            f.release()
        self.parts = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class DaskObjective:
    """``f(theta) -> (loss, grad)`` over dask arrays, for ``scipy.optimize.minimize(jac=True)``.

    The distributed twin of :meth:`rnnumba.RNN.objective` (and of
    ``rnnumba.solvers.ScipyObjective``, whose ``weight_decay`` term it shares):
    the same value and gradient to float64 rounding, bitwise repeatable for
    one chunking. Pass ``data=`` (a :class:`DaskData`) or the arguments of
    :class:`DaskData`.

    Examples
    --------
    >>> f = DaskObjective(net, X_dask, y_dask, client=client)    # doctest: +SKIP
    >>> scipy.optimize.minimize(f, net.theta, jac=True, method="L-BFGS-B")  # doctest: +SKIP
    >>> f.close()                                                  # doctest: +SKIP
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
        x = np.asarray(theta, dtype=np.float64)
        if self.last_x is not None and np.array_equal(x, self.last_x):
            return self.last_f, self.last_g.copy()  # scipy often asks twice for one point
        theta = np.ascontiguousarray(theta, dtype=self.net.dtype)
        if theta.shape != (self.net.n_params,):
            raise ValueError(f"theta must have shape ({self.net.n_params},), got {theta.shape}")
        out = self.data.map(
            _eval_part, theta, net=self._template, loss=self.data.loss, threads=self.data.threads
        )
        total, grad = 0.0, np.zeros(theta.shape[0], dtype=np.float64)
        for value, g in out:  # part order: the sum does not depend on placement
            total += value
            grad += g
        value, grad = total / self.data.count, grad / self.data.count
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
        """The objective at ``x``, re-using the last evaluation when it was there."""
        if self.last_x is not None and np.array_equal(x, self.last_x):
            return self.last_f
        return self(x)[0]

    def close(self):
        if self._own:
            self.data.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------- checkpoints


def save_checkpoint(path, net, kind, **state):
    """Write ``state`` (``theta`` among it) to ``path`` as npz, atomically.

    Written to a temporary file in the same folder, flushed to disk, then
    renamed over ``path``: a reader sees the previous checkpoint or the new
    one, never half of one.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".rnnumba-ckpt-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, kind=kind, layout=json.dumps(net.layout.to_dict()), dtype=net.dtype.str, **state)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_checkpoint(path, net, kind):
    """The state saved by :func:`save_checkpoint`, checked against ``net`` and ``kind``."""
    with np.load(os.fspath(path), allow_pickle=False) as z:
        state = {k: z[k] for k in z.files}
    if str(state.get("kind")) != kind:
        raise ValueError(f"{path} holds a {state.get('kind')} checkpoint, not {kind}")
    if json.loads(str(state["layout"])) != net.layout.to_dict() or str(state["dtype"]) != net.dtype.str:
        raise ValueError(f"{path} was saved for another network: {state['layout']} {state['dtype']}")
    return state


class _Stop(Exception):
    pass


# ---------------------------------------------------------------- full batch


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
    resume_from : path, optional
        Start from a checkpoint's ``theta``; the quasi-Newton memory restarts.

    Returns
    -------
    theta : ndarray
        A copy of ``net.theta``.
    result : scipy.optimize.OptimizeResult
        ``nit_total`` also counts the iterations before a resume; ``message``
        is "stopped by a callback" or "interrupted" for runs cut short.
    loss_curve : ndarray
        The objective at the start and after every iteration.
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


# ---------------------------------------------------------------- minibatch: local SGD


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
    random_state : int, numpy.random.Generator or None
        Draws the part and block orders of every epoch.
    checkpoint : path, optional
        Save the whole state every ``checkpoint_every`` epochs and at the end;
        ``resume_from=`` that file continues the run bitwise as if uninterrupted.

    Returns
    -------
    theta : ndarray
    result : scipy.optimize.OptimizeResult
        ``fun``: the full-batch loss at the final ``theta``; ``nit``: epochs;
        ``message``: "max_iter", "stopped by a callback", "interrupted" or
        "diverged" (``theta`` then holds the last finite average).
    loss_curve : ndarray
        Mean minibatch loss (weighted by rows) of every epoch.
    """
    from scipy.optimize import OptimizeResult

    from .solvers import FIRST_ORDER, FirstOrder

    if solver not in FIRST_ORDER:
        raise ValueError(f"solver must be one of {FIRST_ORDER}, got {solver!r}")
    options = {"lr": 0.02, "batch_size": 20, **(options or {})}
    FirstOrder(net.copy(), solver, **options)  # unknown options fail here, not on a worker
    epochs = check_int(epochs, "epochs", 0)
    every = check_int(checkpoint_every, "checkpoint_every")
    sync_every = None if sync_every is None else check_int(sync_every, "sync_every")
    replicas = None if replicas is None else check_int(replicas, "replicas")
    B = check_int(options["batch_size"], "batch_size")
    P = net.n_params
    rng = (
        random_state if isinstance(random_state, np.random.Generator) else np.random.default_rng(random_state)
    )
    payload = np.zeros((3, P), dtype=net.dtype)
    payload[0] = net.theta
    step, epoch, curve = 0, 0, []
    if resume_from is not None:
        state = load_checkpoint(resume_from, net, "minibatch")
        if str(state["solver"]) != solver:
            raise ValueError(f"{resume_from} holds a {state['solver']} run, not {solver}")
        payload, step, epoch = state["payload"].astype(net.dtype), int(state["step"]), int(state["epoch"])
        rng, curve = _rng_from(state["rng"]), list(state["loss_curve"])
        replicas = int(state["replicas"]) if replicas is None else replicas

    def save():
        if checkpoint is not None:
            state = dict(
                payload=payload, step=step, epoch=epoch, rng=_rng_state(rng), solver=solver, replicas=R
            )
            save_checkpoint(
                checkpoint, net, "minibatch", theta=payload[0], loss_curve=np.array(curve), **state
            )

    own = data is None
    if own:
        data_kwargs.setdefault("kernels", ("epoch", "objective"))
        data = DaskData(net, X, y, lengths, client, **data_kwargs)
    message, client = "max_iter", data.client
    try:
        n = data.n_chunks
        if replicas is None:
            replicas = sum(w["nthreads"] for w in client.scheduler_info(n_workers=-1)["workers"].values())
        R = max(1, min(replicas, n))
        groups = [list(range(r * n // R, (r + 1) * n // R)) for r in range(R)]
        blocks = [-(-size // B) for size in data.sizes]
        totals = [sum(blocks[k] for k in g) for g in groups]
        steps = max(totals) if sync_every is None else sync_every
        cfg = dict(net=net.copy(), method=solver, options=options, loss=data.loss, threads=data.threads)

        def schedule(g):  # this epoch's (part, block) sequence of one replica
            parts = [g[i] for i in rng.permutation(len(g))] if shuffle and len(g) > 1 else g
            orders = [rng.permutation(blocks[k]) if shuffle else np.arange(blocks[k]) for k in parts]
            return np.repeat(parts, [blocks[k] for k in parts]), np.concatenate(orders)

        def chains(seqs, r0):
            def submit(start):
                ends = []
                for replica, (pids, bids) in enumerate(seqs):
                    fut, pids, bids = start, pids[r0 : r0 + steps], bids[r0 : r0 + steps]
                    cuts = np.flatnonzero(np.diff(pids)) + 1
                    for p_run, b_run in zip(np.split(pids, cuts), np.split(bids, cuts), strict=True):
                        if len(p_run):
                            part = data.parts[int(p_run[0])]
                            fut = client.submit(_local_round, part, b_run, fut, cfg, replica, pure=False)
                    ends.append(fut)
                return ends

            return submit

        while epoch < epochs:
            seqs = [schedule(g) for g in groups]
            means = []  # (mean minibatch loss, rows) of every link
            try:
                for r0 in range(0, max(totals), steps):
                    cfg["step"] = step
                    out = data.run(payload, chains(seqs, r0), "_local_round")
                    out = [o if isinstance(o, tuple) else (o, step, [], True) for o in out]  # idle replicas
                    if not all(o[3] for o in out):
                        message = "diverged"  # payload keeps the last finite average
                        break
                    seen = np.array([sum(m[1] for m in o[2]) for o in out], dtype=np.float64)
                    acc = np.zeros((3, P))
                    for w, o in zip(seen / seen.sum(), out, strict=True):  # replica order
                        if w:
                            acc += w * o[0]  # one replica: w == 1.0, exact
                    payload = acc.astype(net.dtype)
                    step = max(o[1] for o in out)
                    means += [m for o in out for m in o[2] if m[1]]
            except KeyboardInterrupt:
                message = "interrupted"
            if message != "max_iter":
                break
            epoch += 1
            rows = sum(m[1] for m in means)
            curve.append(means[0][0] if len(means) == 1 else sum(m * k for m, k in means) / rows)
            if epoch % every == 0:
                save()
            if callback is not None and callback(epoch, payload[0].copy(), curve[-1]):
                message = "stopped by a callback"
                break
        net.set_theta(payload[0])
        final, grad = DaskObjective(net, data=data)(net.theta)
    finally:
        if own:
            data.close()
    save()
    ok = message in ("max_iter", "stopped by a callback")
    res = OptimizeResult(
        x=net.theta.copy(), fun=final, jac=grad, nit=epoch, step=step, replicas=R, success=ok, message=message
    )
    return net.theta.copy(), res, np.array(curve)


# ---------------------------------------------------------------- the estimators' dask path


def fit_estimator(est, X, y, lengths=None, client=None):
    """``est.fit(X, y, lengths)`` for dask arrays: what ``RNNRegressor.fit`` does
    in memory (options, standardisation, the network, the training loop, the
    fitted attributes), with the data kept on the workers.

    Not supported with dask arrays: ``early_stopping`` and ``subsample``.
    """
    from .solvers import FIRST_ORDER
    from .solvers.loop import History, _diverged, _Rules
    from .solvers.options import check_options
    from .solvers.progress import Progress

    cfg = check_options(est)
    if est.early_stopping:
        raise ValueError(
            "early_stopping is not supported with dask arrays: hold out a validation set yourself"
        )
    if cfg["subsample"] is not None:
        raise ValueError("subsample is not supported with dask arrays: slice the dask array instead")
    client = _client(client)
    _, da, _ = _dask()
    if not isinstance(X, da.Array):
        raise TypeError(f"with a dask y, X must be a dask array too, got {type(X).__name__}")
    if X.ndim not in (2, 3):
        raise ValueError(f"X must have shape (N, T) or (N, T, I), got {X.ndim} dimension(s)")
    y_shape = np.shape(y)
    if not is_dask_collection(y):
        y = np.asarray(y)
    if est._estimator_type == "classifier":
        if len(y_shape) not in (1, 2):
            raise ValueError(f"class labels must have shape (N,) or (N, T), got {y_shape}")
        classes = _class_labels(client, X, y, lengths)
        if classes.size < 2:
            raise ValueError(f"a classifier needs at least 2 classes, got {classes.size}")
        est.classes_, est.many_to_many_, est.n_outputs_ = classes, len(y_shape) == 2, int(classes.size)
    else:
        if np.dtype(y.dtype).kind not in "biuf":
            raise ValueError(f"y must be numeric, got dtype {y.dtype}")
        if len(y_shape) not in (1, 2, 3):
            raise ValueError(f"y must have shape (N,), (N, O) or (N, T, O), got {y_shape}")
        classes = None
        est.many_to_many_, est.n_outputs_ = len(y_shape) == 3, 1 if len(y_shape) == 1 else int(y_shape[-1])
        est._y_shape = "vector" if len(y_shape) == 1 else "matrix"
    rng = np.random.default_rng(est.random_state)
    I = 1 if X.ndim == 2 else int(X.shape[2])
    net = RNN(
        I,
        est.hidden,
        est.n_outputs_,
        cell=est.cell,
        num_layers=est.num_layers,
        bidirectional=est.bidirectional,
        peephole=est.peephole,
        reset_after=est.reset_after,
        dtype=cfg["dtype"],
        random_state=rng,
        dropout=cfg["dropout"],
    )
    first_order = cfg["solver"] in FIRST_ORDER
    if cfg["dropout"]:  # the masks' seed (each replica mixes in its index: see _local_round)
        cfg["options"]["seed"] = int(rng.integers(2**63))
    data = DaskData(
        net,
        X,
        y,
        lengths,
        client,
        loss=est._loss,
        classes=classes,
        standardize=est.standardize,
        kernels=("epoch", "objective") if first_order else ("objective",),
    )
    h = History()
    rules = _Rules(
        net,
        h,
        cfg["tol"],
        cfg["n_iter_no_change"],
        None,
        [(lambda e, loss, cb=cb: cb(est, e, loss)) for cb in cfg["callbacks"]],
        Progress(cfg["epochs"], est.verbose),
    )

    def each(_, theta, loss):
        net.theta[:] = theta  # callbacks see the current iterate
        return rules(loss)

    try:
        if first_order:
            _, res, _ = fit_minibatch(
                net,
                solver=cfg["solver"],
                options=cfg["options"],
                callback=each,
                epochs=cfg["epochs"],
                shuffle=est.shuffle,
                random_state=rng,
                data=data,
            )
        else:
            rules.loss_rule = False
            options = {"maxiter": cfg["epochs"], **cfg["solver_options"]}
            _, res, _ = fit_full_batch(
                net,
                solver=cfg["solver"],
                options=options,
                callback=each,
                data=data,
                weight_decay=cfg["options"]["weight_decay"],
            )
            h.optimize_result = res
    finally:
        rules.finish()
        data.close()
    if res.message == "stopped by a callback" and h.stop_reason == "max_iter":
        h.stop_reason = "callback"
    elif res.message == "interrupted":
        h.stop_reason = "interrupted"
    elif res.message == "diverged":
        _diverged(h, "local SGD" if first_order else cfg["solver"])
    elif not first_order and h.stop_reason == "max_iter" and res.success:
        h.stop_reason = "converged"
    est.scaler_, est.n_features_in_, est.net_ = data.scaler, I, net
    est.loss_curve_, est.n_iter_, est.stop_reason_ = h.loss_curve, h.n_iter, h.stop_reason
    for name in ("validation_scores_", "best_validation_score_", "best_loss_", "optimize_result_"):
        est.__dict__.pop(name, None)
    est.best_loss_ = h.best_loss
    if h.optimize_result is not None:
        est.optimize_result_ = h.optimize_result
    return est


# ---------------------------------------------------------------- predictions


def predict(net, X, lengths=None, numba_threads=1):
    """``net.predict`` over a dask array (N, T[, I]): a lazy (N, O) dask array.

    For a fitted estimator, standardise first:
    ``predict(est.net_, X.map_blocks(est.scaler_.transform))`` (fixed lengths).
    """
    dask, da, _ = _dask()
    blocks, _ = _blocks(X, None, lengths)
    frozen, O = net.copy(), net.layout.output_size
    task = dask.delayed(_predict_block, pure=True)
    pieces = [
        da.from_delayed(task(xb, lb, frozen, numba_threads), shape=(size, O), dtype=net.dtype)
        for xb, _, lb, _, size in blocks
    ]
    return da.concatenate(pieces)
