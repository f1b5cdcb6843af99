"""Predictions over dask arrays: a lazy dask array, one task per chunk (:func:`predict`)."""

from .cluster import import_dask
from .data import align_blocks
from .tasks import predict_block


def predict(net, X, lengths=None, numba_threads=1):
    """``net.predict`` over a dask array (N, T[, I]): a lazy (N, O) dask array.

    For a fitted estimator, standardise first:
    ``predict(est.net_, X.map_blocks(est.scaler_.transform))`` (fixed lengths).

    Parameters
    ----------
    net : RNN
        The network (copied into the tasks).
    X : dask.array.Array (N, T) or (N, T, I)
        Chunked along samples.
    lengths : dask or NumPy array of int, optional
        Valid steps per row, chunked like ``X``.
    numba_threads : int, default 1
        Numba threads per task.

    Returns
    -------
    dask.array.Array (N, O)
        Lazy; ``.compute()`` it.

    Examples
    --------
    >>> import numpy as np, dask.array as da
    >>> import rnnumba
    >>> from rnnumba.distributed import predict
    >>> net = rnnumba.RNN(1, 4, random_state=0)
    >>> X = np.random.default_rng(0).normal(size=(40, 6))
    >>> lazy = predict(net, da.from_array(X, chunks=10))
    >>> np.allclose(lazy.compute(), net.predict(X))
    True
    """
    dask, da, _ = import_dask()
    blocks, _ = align_blocks(X, None, lengths)
    frozen, O = net.copy(), net.layout.output_size
    task = dask.delayed(predict_block, pure=True)
    pieces = [
        da.from_delayed(task(xb, lb, frozen, numba_threads), shape=(size, O), dtype=net.dtype)
        for xb, _, lb, _, _, size in blocks
    ]
    return da.concatenate(pieces)
