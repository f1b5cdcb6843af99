"""The training data on the workers (:class:`DaskData`).

Dask arrays cut into aligned chunks, each validated into the kernels' padded
arrays and persisted on the workers as one part.
"""

import concurrent.futures
import math
import time

import numpy as np

from ..losses import LOSSES
from ..preprocessing import Standardizer
from ..validation import check_int
from .cluster import import_dask, is_dask_collection, numba_threads_for, resolve_client, warm_workers
from .tasks import block_classes, part_summary, prepare_part, scale_part


def align_blocks(X, y, lengths, weights=None):
    """Align X, y, lengths and weights on the samples axis.

    Returns ``[(X block, y block, lengths block, weights block, first sample,
    size), ...]`` as delayed objects (None for what is not given), one per
    non-empty chunk, and N.
    """
    _, da, _ = import_dask()
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
    weights = align(weights, "sample_weight")
    xs = X.to_delayed().ravel()
    ys, ls, ws = ([None] * len(xs) if a is None else a.to_delayed().ravel() for a in (y, lengths, weights))
    starts = np.concatenate([[0], np.cumsum(rows)]).astype(int)
    keep = [k for k in range(len(rows)) if rows[k] > 0]  # empty chunks (after slicing) hold nothing
    return [(xs[k], ys[k], ls[k], ws[k], int(starts[k]), int(rows[k])) for k in keep], N


def class_labels(client, X, y, lengths):
    """Return the sorted labels of all valid targets and their counts, computed chunk by chunk."""
    dask, _, _ = import_dask()
    blocks, _ = align_blocks(X, y, lengths)
    many = np.ndim(y) == 2
    task = dask.delayed(block_classes, pure=True)
    futs = client.compute([task(yb, lb, many, k, s) for k, (_, yb, lb, _, s, _) in enumerate(blocks)])
    parts = client.gather(futs)  # (labels, counts) per chunk
    classes = np.unique(np.concatenate([labels for labels, _ in parts]))
    counts = np.zeros(classes.size, dtype=np.int64)
    for labels, n in parts:
        counts[np.searchsorted(classes, labels)] += n
    return classes, counts


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
    class_weights : ndarray (K,), optional
        The weight of each class in the loss (:func:`rnnumba.data.class_weights`).
    standardize : bool, "global" or "feature"
        Fit a :class:`~rnnumba.preprocessing.Standardizer` on the valid input cells
        (chunk statistics combined in chunk order) and apply it (``scaler``):
        one scalar pair (True or "global") or one pair per feature ("feature").
    sample_weight : array_like (N,), optional
        Weight of each sequence in the loss and in the scaler's statistics
        (a dask array chunked like ``X``, or a NumPy array).
    numba_threads : int, "env" or None
        Numba threads per task: None computes them with
        :func:`numba_threads_for`; "env" leaves each worker's own setting.
    warm : {"host", "serial", False}
        See :func:`warm_workers`.
    kernels : tuple of {"objective", "epoch"}
        What the warm-up compiles.
    retries : int
        Times a call is sent again after losing workers before giving up.

    Examples
    --------
    >>> import dask.array as da
    >>> from distributed import Client
    >>> import rnnumba
    >>> from rnnumba.datasets import make_toy
    >>> from rnnumba.distributed import DaskData
    >>> client = Client(processes=False, n_workers=2, threads_per_worker=1, dashboard_address=None)
    >>> X, z = make_toy(300, random_state=0)
    >>> data = DaskData(rnnumba.RNN(1, 8), da.from_array(X, chunks=100), da.from_array(z, chunks=100),
    ...                 client=client)
    >>> data.n_chunks
    3
    >>> data.close(); client.close()
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
        class_weights=None,
        standardize=False,
        sample_weight=None,
        numba_threads=None,
        warm="host",
        kernels=("objective",),
        retries=3,
    ):
        dask, _, _ = import_dask()
        self.net, self.client, self.parts = net, resolve_client(client), []
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
        self.standardize = "global" if standardize is True else standardize
        if self.standardize not in (False, None, "global", "feature"):
            raise ValueError(f"standardize must be a bool, 'global' or 'feature', got {standardize!r}")
        blocks, self.n_samples = align_blocks(X, y, lengths, sample_weight)
        layout = net.layout.to_dict()
        task = dask.delayed(prepare_part, pure=True)
        parts = [
            task(xb, yb, lb, k, s, layout, loss, net.dtype.str, classes, wb, class_weights)
            for k, (xb, yb, lb, wb, s, _) in enumerate(blocks)
        ]
        try:
            self.parts = self.client.compute(parts)
            summary = self.client.gather(self.client.map(part_summary, self.parts, moments=self.standardize))
            self.sizes = [s[0] for s in summary]
            self.counts = [s[3] for s in summary]
            self.count = sum(self.counts)
            if not self.count > 0:
                raise ValueError("the weights of the targets sum to zero: nothing to fit")
            self.many = summary[0][2]
            self.scaler = self._standardize(summary) if self.standardize else None
            self.warmup = warm_workers(self.client, net, kernels, self.threads, warm)
        except BaseException:
            self.close()
            raise

    def _standardize(self, summary):
        n, mean, m2 = 0, 0.0, 0.0
        for _, _, _, _, n_k, mean_k, m2_k in summary:  # Chan et al.'s pairwise update, chunk order
            if n_k:
                delta = mean_k - mean
                mean = mean + delta * n_k / (n + n_k)
                m2 = m2 + m2_k + delta * delta * n * n_k / (n + n_k)
                n += n_k
        if n < 2:
            raise ValueError(f"need at least 2 valid cells to standardise, got {n}")
        std = np.sqrt(m2 / (n - 1))
        std = np.where(std > 0, std, 1.0)  # a constant feature is only centred
        if self.standardize == "global":
            stats = {"mean": float(mean[0]), "std": float(std[0])}
        else:
            stats = {"mean": mean.tolist(), "std": std.tolist()}
        scaler = Standardizer.from_dict(stats)
        stats = scaler.to_dict()
        old = self.parts
        self.parts = self.client.map(scale_part, old, mean=stats["mean"], std=stats["std"])
        self.client.gather(self.client.map(len, self.parts))  # wait, then drop the raw parts
        for f in old:
            f.release()
        return scaler

    @property
    def n_chunks(self):
        """Number of parts (non-empty chunks)."""
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
        _, _, distributed = import_dask()
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
