"""Fill the kernel cache ahead of time: :func:`precompile` and ``rnnumba compile``.

A new process loads compiled kernels from the disk cache (``rnnumba._jit``)
quickly, but the first process of an installation compiles them, which takes
far longer for every cell and dtype (see the cold-start section of
``benchmarks/RESULTS.md``). Run this once
where that wait should not fall on a user: while building a Docker image, at
the start of a CI job, or on every Dask worker
(``client.run(rnnumba.precompile, cells=["elman"])``).
"""

import concurrent.futures
import multiprocessing
import os
import signal
import threading
import time

import numpy as np

from . import _prefetch, engine
from ._jit import cache_dir, quiet
from .layout import CHECKPOINTS, FULL, LOCKSTEP, STORAGES, family_options

CELLS = engine.FAMILIES  # "elman", "lstm", "gru" and Cho's GRU, "gru_cho"
DTYPES = ("float64", "float32")


def choices(values, allowed, what):
    """``values`` (a name, or names) as a tuple, each one of ``allowed``."""
    if isinstance(values, str):
        values = (values,)
    values = tuple(dict.fromkeys(str(v) for v in values))
    if not values:
        raise ValueError(f"no {what} given; expected some of {', '.join(allowed)}")
    bad = [v for v in values if v not in allowed]
    if bad:
        raise ValueError(f"unknown {what} {', '.join(map(repr, bad))}; expected some of {', '.join(allowed)}")
    return values


def precompile(cells=("elman", "lstm", "gru"), dtypes=DTYPES, jobs=1, checkpoint=False):
    """Compile the kernels of some cells and dtypes into the disk cache.

    Each cell and dtype is compiled (or found in the cache) by running every
    kernel a network of that cell uses, training and prediction, on a tiny
    batch. Afterwards a new process loads them from the cache instead.

    Parameters
    ----------
    cells : str or sequence of str, default ("elman", "lstm", "gru")
        Cell families: ``"elman"``, ``"lstm"``, ``"gru"`` (PyTorch's form) and
        ``"gru_cho"`` (``reset_after=False``).
    dtypes : str or sequence of str, default ("float64", "float32")
    jobs : int, default 1
        Processes compiling families side by side (each cell and dtype is one
        job); several processes may share one cache folder safely.
    checkpoint : bool, default False
        Also the kernels of checkpointed BPTT, which long sequences use
        (:mod:`rnnumba.segments`): two families of their own, checkpoints
        and bidirectional lockstep (:mod:`rnnumba.bilockstep`), each cell and
        dtype two more jobs.

    Returns
    -------
    list of dict
        One per cell, dtype (and storage): ``cell``, ``dtype``,
        ``checkpoint``, ``seconds``, and ``compiled`` / ``loaded``, how many
        kernels were compiled or loaded from the cache.

    Examples
    --------
    >>> import rnnumba
    >>> report = rnnumba.precompile(cells="elman", dtypes="float64")
    >>> report[0]["cell"], report[0]["dtype"]
    ('elman', 'float64')
    """
    if not isinstance(checkpoint, (bool, np.bool_)):
        raise ValueError(f"checkpoint must be True or False, got {checkpoint!r}")
    storages = (FULL, CHECKPOINTS, LOCKSTEP) if checkpoint else (FULL,)
    tasks = [
        (c, d, ck)
        for c in choices(cells, CELLS, "cell")
        for d in choices(dtypes, DTYPES, "dtype")
        for ck in storages
    ]
    if isinstance(jobs, bool) or not isinstance(jobs, (int, np.integer)) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    if jobs == 1 or len(tasks) == 1:
        return [warm(*task) for task in tasks]
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited numba state
    with concurrent.futures.ProcessPoolExecutor(
        min(jobs, len(tasks)), mp_context=spawn, initializer=_follow_parent, initargs=(os.getpid(),)
    ) as pool:
        return list(pool.map(warm, *zip(*tasks, strict=True)))


def _follow_parent(parent):
    """Make a compile worker exit once the process that started it is gone.

    Killed (``kill``, a job's time limit), that process cannot shut its pool
    down, and its workers would go on compiling, then wait for work forever,
    each holding a compiler's memory. A cache entry is written whole or not
    at all, and the compile locks are the system's, freed with the process.
    """

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="rnnumba-follow-parent", daemon=True).start()


def warm(cell, dtype, checkpoint=False):
    """Compile (or load) one cell family's kernels for one dtype; see :func:`precompile`.

    Parameters
    ----------
    cell : str
        A cell family (:data:`CELLS`).
    dtype : str
        ``"float64"`` or ``"float32"``.
    checkpoint : {False, True, LOCKSTEP}, default False
        The kernels of checkpointed BPTT instead of the default ones
        (``True``: :data:`~rnnumba.layout.CHECKPOINTS`;
        :data:`~rnnumba.layout.LOCKSTEP`: a bidirectional network's).

    Returns
    -------
    dict
        ``cell``, ``dtype``, ``checkpoint`` (a bool), ``storage`` (``"full"``,
        ``"checkpoint"`` or ``"lockstep"``), ``seconds``, ``compiled``,
        ``loaded`` and ``cache`` (the cache folder).
    """
    from .network import RNN
    from .solvers.kernels import epoch_kernel

    t0 = time.perf_counter()
    bi = checkpoint == LOCKSTEP  # lockstep's own kernels serve bidirectional networks
    net = RNN(2, 3, **family_options(cell), bidirectional=bi, dtype=dtype)
    # the compiled functions Python calls
    tops = [*engine.kernels(cell, checkpoint)[1:], epoch_kernel(cell, checkpoint)]
    hits, misses = _counts(tops)
    storage = "checkpoint" if checkpoint else "full"
    with quiet():
        X = predictions(net, storage)
        rng = np.random.default_rng(1)
        for N in (2, 40):
            net.loss_and_grad(X[:N], rng.normal(size=N).astype(dtype), memory=storage)
        epoch(net, checkpoint)
    hits_after, misses_after = _counts(tops)
    return {
        "cell": cell,
        "dtype": dtype,
        "checkpoint": bool(checkpoint),
        "storage": STORAGES[int(checkpoint)],
        "seconds": time.perf_counter() - t0,
        "compiled": misses_after - misses,
        "loaded": hits_after - hits,
        "cache": cache_dir(),
    }


def epoch(net, checkpoint=False):
    """Run ``net``'s compiled epoch of minibatch SGD at rate 0 (``net`` stays as it is).

    Two minibatches of 20 random sequences of 3 steps; ``checkpoint`` as
    :class:`~rnnumba.solvers.FirstOrder`'s. The epoch compiles (or loads) for
    the argument types of every fit's epoch in ``net``'s dtype.
    """
    from .data import Batch
    from .solvers import FirstOrder

    X = np.random.default_rng(2).normal(size=(40, 3, net.layout.input_size)).astype(net.dtype)
    Y = np.zeros((40, 1, net.layout.output_size), dtype=net.dtype)
    opt = FirstOrder(net, "sgd", lr=0.0, batch_size=20, checkpoint=checkpoint)
    opt.epoch(Batch(X, np.full(40, 3, dtype=np.int64), Y, False, 40, "mse"), np.arange(2, dtype=np.int64))


class _Stop:
    """SIGTERM in the helper: a flag, read between kernels (a kernel being compiled is finished)."""

    asked = False

    @classmethod
    def handle(cls, signum, frame):
        cls.asked = True


def helper(family, dtype, entry):
    """Do the compile helper's work (:mod:`rnnumba._prefetch`): the planned kernels, prediction, the epoch.

    Each compiled, or loaded where the fit's process saved it first. On
    SIGTERM (the fit's process exiting: ``_prefetch._stop``) it returns after
    the kernel it is compiling, which it saves.
    """
    from .network import RNN
    from .solvers.kernels import epoch_kernel

    signal.signal(signal.SIGTERM, _Stop.handle)
    engine.kernels(family)
    epoch_kernel(family)  # every kernel of the family made, so that KERNELS holds them
    net = RNN(2, 3, **family_options(family), dtype=dtype)
    work = [lambda k=k, a=a: k.compile(a) for k, a in _prefetch.plan(family, dtype, entry)]
    work.append(lambda: predictions(net))
    if entry == "epoch":
        work.append(lambda: epoch(net))
    with quiet():
        for step in work:
            if _Stop.asked:
                return
            step()


def predictions(net, storage="full"):
    """Run ``net``'s prediction kernels on one chunk, then on several (the parallel ones).

    Returns the 40 random sequences of 3 steps they ran on.
    """
    X = np.random.default_rng(0).normal(size=(40, 3, net.layout.input_size)).astype(net.dtype)
    for N in (2, 40):
        net.backend.predict(net.theta, net.prepare(X[:N]), False, storage=storage)
    return X


def _counts(dispatchers):
    """(cache hits, cache misses) of ``dispatchers``, summed over their signatures."""
    hits = sum(sum(d.stats.cache_hits.values()) for d in dispatchers)
    return hits, sum(sum(d.stats.cache_misses.values()) for d in dispatchers)
