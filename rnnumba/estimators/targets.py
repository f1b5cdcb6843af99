"""Targets as the estimators take them: kinds, padding, the R^2 score."""

import numpy as np

__all__ = ["numeric", "pad_targets", "r2_score", "target_kind"]


def target_kind(y):
    """(per-step list?, shape tag): "vector" when each target is a scalar."""
    if isinstance(y, (list, tuple)) and len(y) and np.ndim(y[0]) >= 1:
        return True, "vector" if np.ndim(y[0]) == 1 else "matrix"
    return False, "vector" if np.ndim(y) == 1 else "matrix"


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
    arr = np.asarray(a)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{what} must be numeric, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def pad_targets(seqs, lens, T, dtype, what):
    """Stack a list of per-step targets into one right-padded array."""
    if len(seqs) != len(lens):
        raise ValueError(f"{what} has {len(seqs)} sequences but X has {len(lens)}")
    arrs = [np.asarray(s) if dtype is None else numeric(s, f"{what}[{k}]") for k, s in enumerate(seqs)]
    for k, a in enumerate(arrs):
        if a.ndim < 1 or a.shape[0] != lens[k]:
            raise ValueError(f"{what}[{k}] has {a.shape[:1] or 'no'} steps but X[{k}] has {lens[k]}")
        if a.shape[1:] != arrs[0].shape[1:]:
            raise ValueError(f"{what}[{k}] has shape {a.shape}, unlike {what}[0] {arrs[0].shape}")
    out = np.zeros((len(arrs), T) + arrs[0].shape[1:], dtype=np.result_type(*arrs))
    for k, a in enumerate(arrs):
        out[k, : a.shape[0]] = a
    return out


def r2_score(y, p):
    """scikit-learn's R^2, averaged uniformly over outputs."""
    y, p = y.reshape(y.shape[0], -1), p.reshape(p.shape[0], -1)
    ss_res = ((y - p) ** 2).sum(axis=0)
    ss_tot = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(ss_tot > 0, 1.0 - ss_res / ss_tot, np.where(ss_res == 0, 1.0, 0.0))
    return float(r2.mean())
