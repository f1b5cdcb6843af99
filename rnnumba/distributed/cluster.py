"""The cluster side of :mod:`rnnumba.distributed`.

Lazy dask imports, the client, Numba's threads per task, and compiled kernels
on every worker.

Nothing here imports dask at import time: :func:`is_dask_collection` is cheap
for the estimators to call on any input.
"""

import sys

from .._limits import usable_cpus
from .tasks import warm_task


def is_dask_collection(x):
    """Tell whether ``x`` is a dask array (or any dask collection); never imports dask.

    Parameters
    ----------
    x : object
        Anything.

    Returns
    -------
    bool
        True for a dask collection.

    Examples
    --------
    >>> import numpy as np, dask.array as da
    >>> from rnnumba.distributed import is_dask_collection
    >>> is_dask_collection(da.zeros(3)), is_dask_collection(np.zeros(3))
    (True, False)
    """
    if "dask" not in sys.modules:  # nothing can be a dask collection yet
        return False
    from dask.base import is_dask_collection as is_collection

    return bool(is_collection(x))


def import_dask():
    """Import and return ``(dask, dask.array, distributed)``.

    Raises
    ------
    ImportError
        Saying what to install, when the ``dask`` extra is missing.
    """
    try:
        import dask
        import dask.array as da
        import distributed
    except ImportError as exc:  # pragma: no cover - the extra is installed in CI
        raise ImportError(
            "training on dask arrays needs dask[distributed]: pip install 'rnnumba[dask]'"
        ) from exc
    return dask, da, distributed


def resolve_client(client):
    """Return ``client``, or the current Dask client when it is None (ValueError if none)."""
    _, _, distributed = import_dask()
    if client is not None:
        return client
    try:
        return distributed.get_client()
    except ValueError as exc:
        raise ValueError(
            "no Dask client: pass client= or start one first, e.g. distributed.Client(scheduler_address)"
        ) from exc


def workers(client):
    """Return ``{address: worker info}`` of the cluster's workers, asked of the scheduler.

    Not ``client.scheduler_info(n_workers=-1)["workers"]``: the client's periodic
    update, which fetches no workers, may overwrite that cached answer between
    the fetch and its return, and the workers then read as none (seen once in
    CI, under load).
    """
    return client.sync(client.scheduler.identity, n_workers=-1)["workers"]


def numba_threads_for(client):
    """Numba threads per Dask thread that fill, and never oversubscribe, each host.

    Per host: usable CPUs (its affinity mask, or fewer under a container's
    CPU quota) // Dask threads on that host (at least 1); the minimum over
    hosts. Two workers x 1 thread on 2 cores -> 1.

    Parameters
    ----------
    client : distributed.Client
        A client of the cluster.

    Returns
    -------
    int
        Numba threads for each task.

    Examples
    --------
    >>> from distributed import Client
    >>> from rnnumba._limits import usable_cpus
    >>> from rnnumba.distributed import numba_threads_for
    >>> client = Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None)
    >>> numba_threads_for(client) == usable_cpus()
    True
    >>> client.close()
    """
    info = workers(client)
    if not info:
        raise RuntimeError("the Dask cluster has no workers")
    cpus = client.run(usable_cpus)
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

    Parameters
    ----------
    client : distributed.Client
        A client of the cluster.
    net : RNN
        The network whose cell family and dtype the workers will run.
    kernels : tuple of str, default ("objective",)
        Which kernels: "objective" (full batch), "epoch" (minibatch), "predict".
    threads : int, optional
        Numba threads per task (default: :func:`numba_threads_for`).
    mode : {"host", "serial", False}, default "host"
        The order of the waves (above).

    Returns
    -------
    dict
        ``{worker address: {kernel: (cache hits, cache misses, seconds)}}``.

    Examples
    --------
    >>> from distributed import Client
    >>> import rnnumba
    >>> from rnnumba.distributed import warm_workers
    >>> client = Client(processes=False, n_workers=2, threads_per_worker=1, dashboard_address=None)
    >>> report = warm_workers(client, rnnumba.RNN(1, 26))
    >>> len(report)                            # one entry per worker
    2
    >>> client.close()
    """
    if not mode:
        return {}
    if mode not in ("host", "serial"):
        raise ValueError(f"warm must be 'host', 'serial' or False, got {mode!r}")
    info = workers(client)
    by_host = {}
    for addr in sorted(info):
        by_host.setdefault(info[addr]["host"], []).append(addr)
    first = [ws[0] for ws in by_host.values()]
    rest = [a for ws in by_host.values() for a in ws[1:]]
    template, out = net.copy(), {}

    def wave(addrs):
        futs = [
            client.submit(warm_task, template, tuple(kernels), threads, workers=[a], pure=False)
            for a in addrs
        ]
        out.update(zip(addrs, client.gather(futs), strict=True))

    for group in [[a] for a in first] if mode == "serial" else [first]:
        wave(group)
    wave(rest)
    return out
