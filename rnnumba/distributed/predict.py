"""Predictions over dask arrays: a lazy dask array, one task per chunk (:func:`predict`)."""

from .cluster import import_dask
from .data import align_blocks
from .tasks import predict_block


def predict(net, X, lengths=None, numba_threads=1):
    """``net.predict`` over a dask array (N, T[, I]): a lazy (N, O) dask array.

    For a fitted estimator, standardise first:
    ``predict(est.net_, X.map_blocks(est.scaler_.transform))`` (fixed lengths).
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
