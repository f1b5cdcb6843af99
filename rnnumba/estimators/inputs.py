"""The inputs the estimators take, brought to one :class:`~rnnumba.data.Sequences`.

The layouts, said out loud (the estimators' ``channels_first`` picks between
the last two):

* a list of sequences, ``(T_i,)`` or ``(T_i, I)`` arrays (or DataFrames, whose
  column names become ``feature_names_in_``), lengths free;
* a right-padded array ``(N, T)`` (one feature per step) or ``(N, T, I)``,
  with ``lengths=`` or padded with NaN: trailing steps that are all NaN end a
  sequence (as aeon pads unequal lengths), so the array carries its lengths;
* channels first, ``(N, C, T)`` (aeon's and sktime's ``numpy3D``), and lists of
  ``(C, T_i)`` arrays, with ``channels_first=True``.

Arrays pass through scikit-learn's ``check_array`` first (its wording for
sparse, complex, object and empty input), then :func:`rnnumba.data.sequences`,
the one check of the values.
"""

import warnings

import numpy as np
from sklearn.utils.validation import check_array

from ..data import sequences

__all__ = ["LAYOUTS", "as_sequences", "nan_lengths", "sample_weights"]

LAYOUTS = (
    "X must be a list of (T_i,) or (T_i, I) sequences, or a padded array (N, T) or (N, T, I) "
    "(channels_first=True: (N, C, T) and lists of (C, T_i))"
)


def as_sequences(est, X, lengths, dtype, reset):
    """Validate ``X`` for estimator ``est``: :class:`~rnnumba.data.Sequences`, unscaled.

    Parameters
    ----------
    est : RNNEstimator
        Reads ``channels_first``; sets (``reset``) or checks ``n_features_in_``
        and ``feature_names_in_``.
    X : list of sequences, or array_like (N, T) or (N, T, I)
    lengths : array_like of int (N,), optional
    dtype : numpy dtype
    reset : bool
        True in ``fit``: record the features; else check them.

    Returns
    -------
    Sequences
    """
    names = None
    if isinstance(X, (list, tuple)):
        names = _column_names(X, est.channels_first)
        items = [np.asarray(x) for x in X]
        if est.channels_first:
            items = [x.T if x.ndim == 2 else x for x in items]
        seqs = sequences(items, lengths, None, dtype)
    else:
        if isinstance(X, str):
            raise ValueError(f"{LAYOUTS}; got a string")
        A = check_array(
            X,
            allow_nd=True,
            ensure_2d=False,
            dtype=dtype,
            ensure_all_finite=False,
            input_name="X",
            estimator=est,
        )
        if A.ndim not in (2, 3):
            hint = " (Reshape your data: one sequence is X[None] or [X])" if A.ndim == 1 else ""
            raise ValueError(f"{LAYOUTS}; got an array of shape {A.shape}{hint}")
        if A.ndim == 3 and est.channels_first:
            A = A.transpose(0, 2, 1)
        elif A.ndim == 3 and est.channels_first is None and A.shape[1] < A.shape[2]:
            warnings.warn(
                f"X of shape {A.shape} is read as (N, T, I): {A.shape[1]} steps of {A.shape[2]} features. "
                "If it is channels first (N, C, T), as aeon and sktime store it, pass channels_first=True; "
                "channels_first=False says (N, T, I) and silences this warning.",
                UserWarning,
                stacklevel=4,
            )
        if lengths is None:
            lengths = nan_lengths(A)
        seqs = sequences(A, lengths, None, dtype)
    n_features = seqs.X.shape[2]
    if reset:
        est.n_features_in_ = n_features
        if names is not None:
            est.feature_names_in_ = names
        else:
            est.__dict__.pop("feature_names_in_", None)
        return seqs
    if n_features != est.n_features_in_:
        layout = "(N, C, T)" if est.channels_first else "(N, T, I)"
        raise ValueError(
            f"X has {n_features} feature(s) per step, but {type(est).__name__} is expecting "
            f"{est.n_features_in_} features per step as input (X read as {layout})"
        )
    fitted = getattr(est, "feature_names_in_", None)
    if fitted is not None and names is not None and list(names) != list(fitted):
        raise ValueError(
            f"the feature names should match those that were passed during fit: {list(fitted)}, "
            f"got {list(names)}"
        )
    return seqs


def nan_lengths(A):
    """Lengths of NaN-padded sequences: trailing all-NaN steps are padding; None without NaN.

    Parameters
    ----------
    A : ndarray (N, T) or (N, T, I) of floats

    Returns
    -------
    ndarray (N,) of int64, or None

    Raises
    ------
    ValueError
        A sequence whose every step is NaN.
    """
    if A.dtype.kind != "f":
        return None
    nan = np.isnan(A)
    if not nan.any():
        return None
    step_nan = nan.all(axis=2) if A.ndim == 3 else nan  # (N, T): the step is padding
    tail = step_nan[:, ::-1]
    T = A.shape[1]
    trailing = np.where(tail.all(axis=1), T, np.argmin(tail, axis=1))
    lengths = (T - trailing).astype(np.int64)
    if np.any(lengths == 0):
        k = int(np.flatnonzero(lengths == 0)[0])
        raise ValueError(f"X[{k}] is all NaN: a sequence needs at least one step that is not padding")
    return lengths


def sample_weights(sample_weight, n):
    """``sample_weight`` checked: None, or float64 (n,), finite and non-negative.

    Parameters
    ----------
    sample_weight : array_like (n,) or None
    n : int
        Number of sequences.

    Returns
    -------
    ndarray or None
    """
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight)
    if w.ndim == 0:
        w = np.full(n, float(w))
    if w.dtype.kind not in "biuf":
        raise ValueError(f"sample_weight must be numeric, got dtype {w.dtype}")
    w = w.astype(np.float64)
    if w.shape != (n,):
        raise ValueError(f"sample_weight.shape == {w.shape}, expected ({n},): one weight per sequence")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("sample_weight must be finite and non-negative")
    if not w.sum() > 0:
        raise ValueError("sample_weight sums to zero: nothing to fit")
    return w


def _column_names(X, channels_first):
    """Feature names of a list of DataFrames (the columns; the index when channels first), else None."""
    cols = [getattr(x, "index" if channels_first else "columns", None) for x in X]
    if not all(hasattr(x, "columns") for x in X):
        return None
    if not cols or any(c is None for c in cols):
        return None
    names = [np.asarray([str(c) for c in cs], dtype=object) for cs in cols]
    if any(len(n) != len(names[0]) or np.any(n != names[0]) for n in names):
        raise ValueError("the DataFrames in X have different columns")
    return names[0]
