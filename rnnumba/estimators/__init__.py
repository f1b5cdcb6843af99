"""scikit-learn style estimators around :class:`~rnnumba.network.RNN`.

``RNNRegressor`` and ``RNNClassifier`` are scikit-learn estimators: they stand
on its ``BaseEstimator`` and mixins, raise its exceptions, take part in its
metadata routing (``lengths`` goes wherever ``X`` goes; ``sample_weight`` on
request) and pass its check suite but for a declared list of places where a
sequence model must differ (``tests/test_sklearn.py``). :func:`fit` picks the
estimator from ``y``; :func:`load` reads what an estimator's ``save`` (or
:func:`rnnumba.io.save`) wrote.
"""

import numpy as np

from ..distributed import is_dask_collection
from ..io import bad_file, read
from .base import NotFittedError, RNNEstimator
from .classifier import RNNClassifier
from .regressor import RNNRegressor

__all__ = ["NotFittedError", "RNNClassifier", "RNNEstimator", "RNNRegressor", "fit", "load"]


def fit(X, y, hidden=26, lengths=None, client=None, sample_weight=None, **options):
    """Train a recurrent model in one call.

    Parameters
    ----------
    X : array_like (N, T) or (N, T, I), or a list of sequences
    y : array_like
        Floats: an :class:`RNNRegressor`; integers, bools or strings: an
        :class:`RNNClassifier`.
    hidden : int, default 26
    lengths : array_like of int, optional
    client : distributed.Client, optional
        For dask arrays (see ``docs/dask.md``); default: the current client.
    sample_weight : array_like (N,), optional
        Weight of each sequence (see :meth:`RNNRegressor.fit`).
    **options
        Any hyper-parameter of :class:`RNNRegressor`.

    Returns
    -------
    RNNRegressor or RNNClassifier
        Fitted.

    Examples
    --------
    >>> import rnnumba
    >>> from rnnumba.datasets import make_toy
    >>> X, z = make_toy(2000, random_state=0)
    >>> model = rnnumba.fit(X, z, hidden=26, epochs=2, random_state=0)
    >>> model.n_params_
    755
    """
    first = y[0] if isinstance(y, (list, tuple)) and len(y) and np.asarray(y[0]).ndim >= 1 else y
    kind = y.dtype.kind if is_dask_collection(y) else np.asarray(first).dtype.kind
    cls = RNNClassifier if kind in "biuUSO" else RNNRegressor
    return cls(hidden, **options).fit(X, y, lengths=lengths, sample_weight=sample_weight, client=client)


def load(path):
    """Read a model written by :func:`rnnumba.io.save` (or an estimator's ``save``).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    RNN, RNNRegressor or RNNClassifier
        What was saved, predicting bitwise as before.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        A truncated, corrupt or foreign file.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> import rnnumba
    >>> net = rnnumba.RNN(1, 8, random_state=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "net.npz")
    >>> from rnnumba.io import save
    >>> save(net, path)
    >>> rnnumba.load(path)
    RNN(input_size=1, hidden=8, output_size=1, cell='elman', dtype=float64) with 89 parameters
    """
    state = read(path)
    kind = state["kind"]
    if kind == "RNN":
        return state["net"]
    cls = {"RNNRegressor": RNNRegressor, "RNNClassifier": RNNClassifier}.get(kind)
    if cls is None:
        raise bad_file(path, f"unknown kind {kind!r}")
    try:
        return cls.from_state(state)
    except ValueError as exc:
        raise bad_file(path, str(exc)) from exc
