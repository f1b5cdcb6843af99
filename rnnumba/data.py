"""The validated data objects: what every backend and solver takes.

User arrays come in many forms (a list of sequences, a padded array with
``lengths``, a strided view, any numeric dtype). They are checked and
normalised once, here, into one of two in-memory objects:

* :class:`Sequences`: inputs only (what ``predict`` reads);
* :class:`Batch`: inputs and kernel-ready targets (what ``loss_and_grad``,
  the epoch and the scipy objective read).

Their arrays are C-contiguous, writeable and of the network's dtype, so each
compiled kernel has one signature whatever form the user passed. A function
that receives one of these objects does not validate again.

The Dask form of a :class:`Batch` is :class:`rnnumba.distributed.DaskData`:
the same arrays, one part per worker.
"""

from typing import NamedTuple

import numpy as np

from .losses import LOSSES
from .validation import check_sequences, check_targets

__all__ = ["Batch", "Sequences", "batch", "class_weights", "sequences", "weigh"]


class Sequences(NamedTuple):
    """Validated inputs.

    Attributes
    ----------
    X : ndarray (N, T, I)
        Right-padded, C-contiguous, writeable, of the model's dtype; the
        padding (steps ``t >= lengths[n]``) is never read.
    lengths : ndarray (N,) of int64
        Valid steps of each sequence, in ``[1, T]``.
    from_list : bool
        Whether the user gave a list of sequences (outputs go back as a list).
    """

    X: np.ndarray
    lengths: np.ndarray
    from_list: bool


class Batch(NamedTuple):
    """Validated inputs and targets, as the kernels read them.

    Attributes
    ----------
    X : ndarray (N, T, I)
        As :attr:`Sequences.X`.
    lengths : ndarray (N,) of int64
    Y : ndarray (N, 1 or T, O or 1)
        Regression targets, or class indices stored as floats (one column).
    many : bool
        One target per step (many-to-many) rather than one per sequence.
    count : int or float
        Number of target values; the loss is their mean. With weights, the
        sum of the weights: the loss is the weighted mean.
    loss : {"mse", "xent"}

    Weighted targets hold the weights after the targets, ``Y[..., :k]`` the
    values and ``Y[..., k:]`` their weights (:func:`rnnumba.losses.weighted`).
    """

    X: np.ndarray
    lengths: np.ndarray
    Y: np.ndarray
    many: bool
    count: int
    loss: str


def sequences(X, lengths=None, input_size=None, dtype=np.float64):
    """Validate and pad inputs into a :class:`Sequences`.

    Parameters
    ----------
    X : array_like (N, T) or (N, T, I), list of (T_i,) or (T_i, I) arrays, or Sequences
        A :class:`Sequences` passes through unchecked.
    lengths : array_like of int (N,), optional
        Valid steps of each row of a padded array; default all ``T``.
    input_size : int, optional
        The features per step the model expects.
    dtype : numpy dtype, default float64

    Returns
    -------
    Sequences
    """
    if isinstance(X, Sequences):
        return X
    return Sequences(*check_sequences(X, lengths, input_size, np.dtype(dtype)))


def batch(X, y, lengths=None, loss=None, input_size=None, output_size=1, dtype=np.float64, weights=None):
    """Validate inputs and targets into a :class:`Batch`.

    Parameters
    ----------
    X : array_like or Sequences
        As for :func:`sequences`.
    y : array_like
        Regression targets (N,), (N, O), (N, T, O) or a list of (T_i,) /
        (T_i, O) arrays; integer class indices (N,), (N, T) or a list of
        (T_i,) arrays.
    lengths : array_like of int, optional
    loss : {"mse", "xent"}, optional
        Default: "xent" for integer ``y``, else "mse".
    input_size, output_size : int
        The model's features per step and outputs (classes, for "xent").
    dtype : numpy dtype, default float64
    weights : array_like, optional
        Non-negative weights of the targets: one per sequence (N,), or one per
        target value, broadcastable to ``Y``'s shape (N, 1 or T, O or 1).
        The loss becomes ``sum(w * loss) / sum(w)`` over the valid targets.

    Returns
    -------
    Batch
    """
    seqs = sequences(X, lengths, input_size, dtype)
    if loss is None:
        first = y[0] if isinstance(y, (list, tuple)) and len(y) else y
        loss = "xent" if np.asarray(first).dtype.kind in "iu" else "mse"
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")
    N, T = seqs.X.shape[:2]
    Y, many, count = check_targets(y, N, T, seqs.lengths, output_size, loss, np.dtype(dtype))
    if weights is not None:
        Y, count = weigh(Y, seqs.lengths, many, weights)
        if not count > 0:
            raise ValueError("the weights of the targets sum to zero: nothing to fit")
    return Batch(seqs.X, seqs.lengths, Y, many, count, loss)


def weigh(Y, lengths, many, weights):
    """Append weights to kernel targets: ``[y | w]`` and the weights' sum over the valid targets.

    Parameters
    ----------
    Y : ndarray (N, 1 or T, K)
        Targets as :func:`rnnumba.validation.check_targets` makes them.
    lengths : ndarray (N,)
    many : bool
    weights : array_like (N,) or broadcastable to ``Y``
        Finite and non-negative.

    Returns
    -------
    Y : ndarray (N, 1 or T, 2K)
    count : float
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim == 1:
        if w.shape[0] != Y.shape[0]:
            raise ValueError(f"sample_weight has {w.shape[0]} values but there are {Y.shape[0]} sequences")
        w = w[:, None, None]
    try:
        W = np.broadcast_to(w, Y.shape).astype(Y.dtype)  # a copy
    except ValueError:
        raise ValueError(f"weights of shape {w.shape} do not fit targets of shape {Y.shape}") from None
    if not np.all(np.isfinite(W)) or np.any(W < 0):
        raise ValueError("weights must be finite and non-negative")
    valid = np.arange(Y.shape[1])[None, :] < lengths[:, None] if many else np.ones((Y.shape[0], 1), bool)
    W[~valid] = 0.0
    count = float(W.sum(dtype=np.float64))
    return np.ascontiguousarray(np.concatenate([Y, W], axis=2)), count


def class_weights(class_weight, classes, counts):
    """Return the weight of each class: scikit-learn's ``class_weight`` rule from class counts.

    Parameters
    ----------
    class_weight : dict, "balanced" or None
        ``{label: weight}`` (labels not named weigh 1), or "balanced":
        ``n_targets / (n_classes * count)``, as ``sklearn.utils.class_weight``
        computes it; None: every class weighs 1.
    classes : ndarray (K,)
        The sorted labels.
    counts : ndarray (K,)
        Targets of each class (for "balanced"), in memory or summed over Dask chunks.

    Returns
    -------
    ndarray (K,) of float64
    """
    K = len(classes)
    if class_weight is None:
        return np.ones(K)
    if isinstance(class_weight, str) and class_weight == "balanced":
        counts = np.asarray(counts, dtype=np.float64)
        if np.any(counts == 0):
            missing = [classes[i] for i in np.flatnonzero(counts == 0)]
            raise ValueError(f"class_weight='balanced' needs every class in y; missing: {missing}")
        return counts.sum() / (K * counts)
    if not isinstance(class_weight, dict):
        raise ValueError(f"class_weight must be a dict, 'balanced' or None, got {class_weight!r}")
    known = {c.item() if hasattr(c, "item") else c for c in classes}
    unknown = [c for c in class_weight if c not in known]
    if unknown:
        raise ValueError(f"class_weight names classes not in y: {unknown}")
    w = np.array([float(class_weight.get(c.item() if hasattr(c, "item") else c, 1.0)) for c in classes])
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("class weights must be finite and non-negative")
    return w
