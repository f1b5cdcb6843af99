"""Targets as the estimators take them: kinds, padding, the rows a score reads."""

import numbers

import numpy as np

__all__ = ["numeric", "pad_targets", "plain", "score_rows", "target_kind", "valid_rows"]


def target_kind(y):
    """(per-step list?, shape tag): "vector" when each target is a scalar."""
    if isinstance(y, (list, tuple)) and len(y) and np.asarray(y[0]).ndim >= 1:
        return True, "vector" if np.asarray(y[0]).ndim == 1 else "matrix"
    return False, "vector" if np.asarray(y).ndim == 1 else "matrix"


def plain(a):
    """Return ``a`` as an array; an object array of numbers (or strings) as a numeric (or string) one."""
    a = np.asarray(a)
    if a.dtype == object and a.size:
        values = a.ravel().tolist()
        if all(isinstance(v, str) for v in values):
            return a.astype(str)
        if all(isinstance(v, numbers.Real) for v in values):  # no mixing: 0 and "0" stay apart
            return np.asarray(values).reshape(a.shape)
    return a


def numeric(a, what):
    """Return ``a`` as a float64 array, refusing a non-numeric dtype.

    Parameters
    ----------
    a : array_like
    what : str
        The name of ``a`` in the error message.

    Returns
    -------
    ndarray
        ``a`` in float64.

    Raises
    ------
    ValueError
        If ``a``'s dtype is not boolean, integer or float.
    """
    arr = plain(a)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{what} must be numeric, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def pad_targets(seqs, lens, T, dtype, what):
    """Stack a list of per-step targets into one right-padded array."""
    if len(seqs) != len(lens):
        raise ValueError(f"{what} has {len(seqs)} sequences but X has {len(lens)}")
    arrs = [plain(s) if dtype is None else numeric(s, f"{what}[{k}]") for k, s in enumerate(seqs)]
    for k, a in enumerate(arrs):
        if a.ndim < 1 or a.shape[0] != lens[k]:
            raise ValueError(f"{what}[{k}] has {a.shape[:1] or 'no'} steps but X[{k}] has {lens[k]}")
        if a.shape[1:] != arrs[0].shape[1:]:
            raise ValueError(f"{what}[{k}] has shape {a.shape}, unlike {what}[0] {arrs[0].shape}")
    out = np.zeros((len(arrs), T) + arrs[0].shape[1:], dtype=np.result_type(*arrs))
    for k, a in enumerate(arrs):
        out[k, : a.shape[0]] = a
    return out


def valid_rows(lens, steps):
    """Mask (N, steps) of the target rows that count: every row, or the valid steps (steps > 1)."""
    if steps == 1:
        return np.ones((len(lens), 1), dtype=bool)
    return np.arange(steps)[None, :] < lens[:, None]


def score_rows(Y, out, W, lens, sample_weight):
    """Return the target rows a score reads: ``(y, pred, weights)``, each (rows, columns).

    Parameters
    ----------
    Y : ndarray (N, 1 or T, K)
        Encoded targets.
    out : ndarray (N, 1 or T, K') or (N, K')
        Predictions, padded like ``Y``.
    W : ndarray broadcastable to ``Y``, or None
        Per-target weights (0: a missing target).
    lens : ndarray (N,)
    sample_weight : array_like (N,), optional

    Returns
    -------
    y, pred, w : ndarray
        The valid rows; ``w`` has ``y``'s shape.
    """
    N, steps = Y.shape[:2]
    out = out.reshape(N, steps, -1)
    w = np.ones(Y.shape) if W is None else np.broadcast_to(W, Y.shape)
    if sample_weight is not None:
        sw = np.asarray(sample_weight, dtype=np.float64)
        if sw.shape != (N,):
            raise ValueError(f"sample_weight.shape == {sw.shape}, expected ({N},): one weight per sequence")
        if not np.all(np.isfinite(sw)) or np.any(sw < 0):
            raise ValueError("sample_weight must be finite and non-negative")
        w = w * sw[:, None, None]
    valid = valid_rows(lens, steps)
    return Y[valid], out[valid], w[valid]
