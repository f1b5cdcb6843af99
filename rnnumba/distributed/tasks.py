"""The functions that run on the Dask workers, one part (chunk) at a time.

Dask pickles them by reference (``rnnumba.distributed.tasks.<name>``), so they
stay module-level functions and every worker imports this module. None of them
needs dask: the tests call them in-process too.
"""

import time

import numpy as np

from .. import engine
from ..data import Batch, weigh
from ..preprocessing import Standardizer
from ..validation import check_sequences, check_targets


def set_threads(threads):
    """Numba's thread count for this task (numba keeps it per thread, so per task)."""
    if threads:
        import numba

        numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))


def _own(a):
    """Return ``a``, or a copy when it is read-only.

    Arrays that arrive from the network are, and numba compiles a separate
    (uncached) version for them.
    """
    return a if a.flags.writeable else a.copy()


def _chunk_error(exc, k, start, n):
    where = f"chunk {k} (samples {start}..{start + n - 1}; indices below count from {start})"
    return type(exc)(f"{where}: {exc}")


def _valid_mask(lengths, N, T):
    return (
        np.ones((N, T), dtype=bool)
        if lengths is None
        else np.arange(T)[None, :] < np.asarray(lengths)[:, None]
    )


def block_classes(y, lengths, many, k, start):
    """Sorted labels of one chunk's valid targets, and their counts."""
    y = np.asarray(y)
    labels = y[_valid_mask(lengths, *y.shape[:2])] if many else y
    if labels.dtype == object:
        raise _chunk_error(
            ValueError("class labels must be of one type (numbers or strings)"), k, start, len(y)
        )
    if labels.dtype.kind == "f" and many:
        labels = labels[~np.isnan(labels)]  # NaN: a step without a target
    if labels.dtype.kind == "f" and not np.all(np.isfinite(labels)):
        raise _chunk_error(ValueError("class labels hold NaN or infinite values"), k, start, len(y))
    return np.unique(labels, return_counts=True)


def prepare_part(X, y, lengths, k, start, layout, loss, dtype, classes, weights=None, class_weights=None):
    """One chunk validated into the kernels' arrays: (X, lengths, Y, many, count, weights).

    As the estimators do in memory: labels become codes (``classes``), a NaN
    per-step target is a step without a target, and the targets carry their
    weights (``weights`` per sequence times ``class_weights`` per class;
    :func:`rnnumba.data.weigh`), ``count`` then being their sum.
    """
    dtype = np.dtype(dtype)
    try:
        X3, lens, _ = check_sequences(X, lengths, layout["input_size"], dtype)
        y = np.asarray(y)
        many = y.ndim == (2 if classes is not None else 3)
        W = None
        if many and y.dtype.kind == "f":  # NaN: a step without a target (in the padding: padding)
            steps = _valid_mask(lens, *y.shape[:2])
            nan = np.isnan(y) & (steps if y.ndim == 2 else steps[..., None])
            if nan.any():
                W = (~nan).astype(np.float64)
            y = np.where(np.isnan(y), 0 if classes is None else classes[0], y)
        if classes is not None:  # labels -> codes 0..K-1, as RNNClassifier does
            mask = _valid_mask(lens, *y.shape[:2]) if many else np.ones(y.shape, bool)
            idx = np.clip(np.searchsorted(classes, y[mask]), 0, len(classes) - 1)
            if np.any(classes[idx] != y[mask]):
                raise ValueError("y holds a label that is not in classes")
            y = np.zeros(y.shape, dtype=np.int64)
            y[mask] = idx
            if class_weights is not None:
                W = class_weights[y] * (1.0 if W is None else W)
        Y, many, count = check_targets(y, X3.shape[0], X3.shape[1], lens, layout["output_size"], loss, dtype)
        if weights is not None:
            weights = np.asarray(weights, dtype=np.float64)
            W = weights if W is None else weights.reshape((-1,) + (1,) * (W.ndim - 1)) * W
        if W is not None:  # as Y: (N, 1 or T, K)
            W = W if W.ndim == 1 else W.reshape(W.shape[0], 1 if not many else W.shape[1], -1)
            Y, count = weigh(Y, lens, many, W)  # checks the weights
    except (ValueError, TypeError) as exc:
        raise _chunk_error(exc, k, start, len(X)) from None
    return _own(X3), _own(lens), _own(Y), many, count, weights


def part_summary(part, moments=False):
    """(rows, T, many, count, valid-cell count, mean, M2) of one part's inputs.

    ``moments``: False (no statistics), "global" (one scalar mean and M2 over
    every cell) or "feature" (one per feature, arrays (I,)).
    """
    X, lengths, _, many, count, weights = part
    if not moments:
        return X.shape[0], X.shape[1], many, count, 0, 0.0, 0.0
    mask = _valid_mask(lengths, *X.shape[:2])
    cells = X[mask].astype(np.float64)  # (cells, I)
    w = np.ones(cells.shape[0]) if weights is None else np.broadcast_to(weights[:, None], mask.shape)[mask]
    if moments == "global":  # every value of a cell is a cell of its own, of the cell's weight
        w, cells = np.repeat(w, cells.shape[1]), cells.reshape(-1, 1)
    n = w.sum()  # frequency weights: as Standardizer.fit weighs
    mean = (w[:, None] * cells).sum(axis=0) / n if n else np.zeros(cells.shape[1])
    m2 = (w[:, None] * (cells - mean) ** 2).sum(axis=0)
    return X.shape[0], X.shape[1], many, count, n, mean, m2


def scale_part(part, mean, std):
    """Standardise a part's inputs exactly as ``Standardizer.transform`` does."""
    X, lengths, Y, many, count, weights = part
    Xs = Standardizer.from_dict({"mean": mean, "std": std}).transform(X, lengths)  # floats or lists
    return np.ascontiguousarray(Xs, dtype=X.dtype), lengths, Y, many, count, weights


def eval_part(part, payload, net, loss, threads):
    """Loss SUM and gradient SUM of one part at ``payload`` (= theta).

    The CPU backend's ``loss_and_grad`` on the part's :class:`~rnnumba.data.Batch`
    with a count of 1 (scale 1), chunked by the network's own rule.
    """
    set_threads(threads)
    net = net.copy()  # tasks on one worker may share one unpickled net: own grad buffer
    value = net.backend.loss_and_grad(_own(payload), net.grad, part_batch(part, loss, count=1))
    return float(value), net.grad


_LOADED = set()


def load_objective(net):
    """Load (or compile) the engine's objective in this process before the solvers' epoch.

    Written when the epoch called the engine's chunk kernel: a cached caller
    loaded before its callee segfaulted (numba#8578), and a fresh or restarted
    worker may well run an epoch before an evaluation. The epoch now runs its
    own chunk loop; the order is kept as a cheap precaution.
    """
    if net.dtype.str not in _LOADED:
        net = net.copy()
        net.backend.loss_and_grad(net.theta, net.grad, tiny_batch(net))
        _LOADED.add(net.dtype.str)


def local_round(part, order, payload, cfg, replica=0):
    """One link of a replica's chain: the minibatches ``order`` of this part.

    ``payload`` is the round's starting stack (theta, state[0], state[1]) -- the
    parameters and the optimiser state of :class:`~rnnumba.solvers.FirstOrder`
    (momentum buffer or Adam's moments) -- or the previous link's result.
    ``replica`` (its index) picks the dropout masks: replica 0 draws those of
    the one-process run with the same seed, replica ``r`` those of the seed
    ``(seed, r)``, so replicas at the same update number drop different units.
    Returns ``(stack, step, [(mean minibatch loss, rows), ...], finite)``.
    """
    from ..solvers import FirstOrder

    if isinstance(payload, tuple):  # continuing a chain
        stack, step, means, finite = payload
        if not finite:
            return payload
    else:
        stack, step, means = payload, cfg["step"], []
    set_threads(cfg["threads"])
    X, lengths, Y = (_own(a) for a in part[:3])
    order = np.array(order, dtype=np.int64)  # writeable: see _own
    net = cfg["net"].copy()  # tasks on one worker may share one unpickled cfg
    load_objective(net)
    net.theta[:] = stack[0]
    options = cfg["options"]
    if replica and net.dropout:
        seed = options.get("seed")
        options = dict(options, seed=[*np.atleast_1d(0 if seed is None else seed).tolist(), replica])
    opt = FirstOrder(net, cfg["method"], **options)
    opt.state[:] = stack[1:]
    opt.step = step
    opt.prev[:] = net.theta
    mean, finite = opt.epoch(Batch(X, lengths, Y, part[3], 1, cfg["loss"]), order)
    rows = int(sum(min(X.shape[0], (b + 1) * opt.batch_size) - b * opt.batch_size for b in order))
    out = np.concatenate([net.theta[None, :], opt.state])
    return out, opt.step, means + [(mean, rows)], bool(finite)


def warm_task(net, kernels, threads):
    """Compile (or load from the disk cache) ``kernels`` in this process.

    Returns ``{kernel: (cache hits, cache misses, seconds)}``; misses > 0 means
    this process compiled and wrote the cache.
    """
    set_threads(threads)
    out = {}
    for name in sorted(kernels, key=lambda k: k != "objective"):  # see load_objective
        t0 = time.perf_counter()
        if name == "objective":
            fn = engine.kernels(net.layout.kernel_family).loss_and_grad
            load_objective(net)
        else:  # "epoch": the compiled minibatch loop
            from .._precompile import epoch
            from ..solvers import kernels as solver_kernels

            fn = solver_kernels.epoch_kernel(net.layout.kernel_family)
            epoch(net)
        stats = fn.stats
        out[name] = (
            sum(stats.cache_hits.values()),
            sum(stats.cache_misses.values()),
            time.perf_counter() - t0,
        )
    return out


def part_batch(part, loss, count=None):
    """Wrap a part (``prepare_part``'s tuple) as a :class:`~rnnumba.data.Batch` of worker-owned arrays."""
    X, lengths, Y = (_own(a) for a in part[:3])
    return Batch(X, lengths, Y, part[3], part[4] if count is None else count, loss)


def tiny_batch(net):
    """Two one-step sequences of zeros: enough to load or compile ``net``'s kernels."""
    I, O = net.layout.input_size, net.layout.output_size
    X, Y = np.zeros((2, 1, I), dtype=net.dtype), np.zeros((2, 1, O), dtype=net.dtype)
    return Batch(X, np.ones(2, dtype=np.int64), Y, False, 1, "mse")


def predict_block(X, lengths, net, threads):
    """Return ``net.predict`` of one chunk."""
    set_threads(threads)
    return net.predict(X, lengths)
