"""Input scaling fitted on the valid steps of padded sequences.

The estimators, the Dask data and the seed's toy split all scale through
:class:`Standardizer`; padding (steps at or after a sequence's length) never
enters the statistics and stays exactly 0.

This module needs numpy only.
"""

import numpy as np

__all__ = ["Standardizer"]


def _valid_cells(X, lengths):
    """``X`` as an array, the mask of its valid steps (or None: all valid) and their cells ``X[mask]``."""
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise ValueError(f"X must hold real numbers, got dtype {X.dtype}")
    if lengths is None:
        return X, None, X
    if X.ndim < 2:
        raise ValueError(f"X must be (n_samples, max_len[, ...]) with lengths, got shape {X.shape}")
    lengths = np.asarray(lengths)
    if lengths.shape != (X.shape[0],) or lengths.dtype.kind not in "iu":
        raise ValueError(
            f"lengths must be {X.shape[0]} integers (one per sequence), "
            f"got shape {lengths.shape} and dtype {lengths.dtype}"
        )
    if lengths.size and (lengths.min() < 1 or lengths.max() > X.shape[1]):
        raise ValueError(f"lengths must lie in [1, {X.shape[1]}]")
    mask = np.arange(X.shape[1]) < lengths[:, None]
    return X, mask, X[mask]


def _weights(w, X, mask, values):
    """Each valid cell's weight: its sequence's ``w``, shaped like ``values``."""
    w = np.asarray(w, dtype=np.float64)
    if w.shape != (X.shape[0],):
        raise ValueError(f"sample_weight must have shape ({X.shape[0]},), got {w.shape}")
    full = np.broadcast_to(w.reshape((-1,) + (1,) * (X.ndim - 1)), X.shape)
    return np.ascontiguousarray(full[mask] if mask is not None else full).reshape(values.shape)


class Standardizer:
    """Mean and unbiased std of the valid input cells: one pair per feature, or one for all.

    Parameters
    ----------
    per_feature : bool, default False
        One mean and std per feature (the last axis), as scikit-learn's
        ``StandardScaler``; else one scalar pair for every cell, as the seed
        did (every step of its toy data is the same curve: mean ~2.87, std
        ~0.93). With one feature per step both are the same.

    Attributes
    ----------
    mean_ : float or ndarray (I,)
        Mean of the fitted cells.
    std_ : float or ndarray (I,)
        Their standard deviation with ``ddof=1`` (1 where it is 0: a constant
        feature is only centred, as scikit-learn does).

    Examples
    --------
    Statistics of the valid steps only (the padding is left as it is):

    >>> import numpy as np
    >>> from rnnumba.preprocessing import Standardizer
    >>> X = np.array([[1.0, 2.0, 3.0], [3.0, 0.0, 0.0]])
    >>> s = Standardizer().fit(X, lengths=[3, 1])
    >>> float(s.mean_), round(float(s.std_), 4)
    (2.25, 0.9574)
    >>> s.transform(X, lengths=[3, 1]).round(2)
    array([[-1.31, -0.26,  0.78],
           [ 0.78,  0.  ,  0.  ]])
    """

    def __init__(self, per_feature=False):
        self.per_feature = per_feature
        self.mean_ = None
        self.std_ = None

    def __repr__(self):
        if self.mean_ is None:
            return f"Standardizer(per_feature={self.per_feature})"
        return f"Standardizer(mean_={self.mean_!r}, std_={self.std_!r})"

    @property
    def is_fitted(self):
        """True if ``mean_`` and ``std_`` are set, else False."""
        return self.mean_ is not None

    def fit(self, X, lengths=None, sample_weight=None):
        """Compute the mean and std.

        Parameters
        ----------
        X : array_like of shape (n_samples, max_len[, ...])
            Inputs; any shape when ``lengths`` is None.
        lengths : array_like of int, shape (n_samples,), optional
            Valid length of each sequence; padding cells (``t >= lengths``) are
            ignored so that zeros do not drag the statistics.
        sample_weight : array_like (n_samples,), optional
            Frequency weights of the sequences: the variance is
            ``sum w (x - mean)^2 / (sum w - 1)``, so a weight of 0 drops a
            sequence and a weight of 2 counts it twice.

        Returns
        -------
        self : Standardizer

        Raises
        ------
        ValueError
            Fewer than two valid cells, or non-finite values.

        Examples
        --------
        >>> import numpy as np
        >>> from rnnumba.preprocessing import Standardizer
        >>> Standardizer(per_feature=True).fit(np.ones((4, 5, 2)) * [1.0, 3.0]).mean_
        array([1., 3.])
        """
        X, mask, values = _valid_cells(X, lengths)
        if self.per_feature and X.ndim < 3:
            raise ValueError(f"per-feature statistics need X of shape (N, T, I), got shape {X.shape}")
        w = None if sample_weight is None else _weights(sample_weight, X, mask, values)
        # (cells, features), or one column of every cell
        values = values.reshape(-1, values.shape[-1] if self.per_feature else 1).astype(np.float64)
        if values.shape[0] * values.shape[1] < 2:
            raise ValueError(f"need at least 2 valid cells to fit, got {values.size}")
        if not np.isfinite(values).all():
            raise ValueError("X holds NaN or infinite values in its valid cells")
        if w is None:
            mean, std = values.mean(axis=0), values.std(axis=0, ddof=1)
        else:
            w = w.reshape(values.shape[0], -1)[:, :1]  # a cell's features share their sequence's weight
            total = w.sum()
            if not total > 1:
                raise ValueError(f"the sample weights of the valid cells sum to {total}; need more than 1")
            mean = (w * values).sum(axis=0) / total
            std = np.sqrt((w * (values - mean) ** 2).sum(axis=0) / (total - 1))
        if not np.all(np.isfinite(std)):
            raise ValueError(f"cannot standardise: the std of the valid cells is {std}")
        std = np.where(std > 0, std, 1.0)
        if self.per_feature:
            self.mean_, self.std_ = mean, std
        else:
            self.mean_, self.std_ = float(mean[0]), float(std[0])
        return self

    def _check_fitted(self):
        if self.mean_ is None:
            raise ValueError("this Standardizer is not fitted yet: call fit() first")

    def transform(self, X, lengths=None):
        """Return ``(X - mean_) / std_``, with padding cells set to exactly 0.

        Parameters
        ----------
        X : array_like of shape (n_samples, max_len[, ...])
            Inputs; float arrays keep their dtype, others become float64.
        lengths : array_like of int, shape (n_samples,), optional
            Valid length of each sequence.

        Returns
        -------
        ndarray
            A new array of ``X``'s shape.

        Raises
        ------
        ValueError
            Not fitted, or non-finite values in the valid cells.

        Examples
        --------
        >>> import numpy as np
        >>> from rnnumba.preprocessing import Standardizer
        >>> s = Standardizer().fit(np.array([[0.0, 2.0], [4.0, 6.0]]))
        >>> s.transform(np.array([[3.0, 3.0]]))
        array([[0., 0.]])
        """
        self._check_fitted()
        mean, std = self._stats(X)
        return self._apply(X, lengths, lambda v: (v - mean) / std)

    def inverse_transform(self, X, lengths=None):
        """Undo :meth:`transform`: ``X * std_ + mean_``, padding kept at 0.

        Parameters
        ----------
        X : array_like of shape (n_samples, max_len[, ...])
            Standardised inputs.
        lengths : array_like of int, shape (n_samples,), optional
            Valid length of each sequence.

        Returns
        -------
        ndarray
            A new array of ``X``'s shape.

        Examples
        --------
        >>> import numpy as np
        >>> from rnnumba.preprocessing import Standardizer
        >>> X = np.array([[0.0, 2.0], [4.0, 6.0]])
        >>> s = Standardizer().fit(X)
        >>> np.allclose(s.inverse_transform(s.transform(X)), X)
        True
        """
        self._check_fitted()
        mean, std = self._stats(X)
        return self._apply(X, lengths, lambda v: v * std + mean)

    def _stats(self, X):
        """``mean_`` and ``std_`` in ``X``'s float dtype (as Python floats already are)."""
        if not self.per_feature:
            return self.mean_, self.std_
        dtype = np.asarray(X).dtype if np.asarray(X).dtype.kind == "f" else np.float64
        return self.mean_.astype(dtype), self.std_.astype(dtype)

    def _apply(self, X, lengths, op):
        X, mask, values = _valid_cells(X, lengths)
        if not np.isfinite(values).all():
            raise ValueError("X holds NaN or infinite values in its valid cells")
        if X.dtype.kind != "f":
            X = X.astype(np.float64)
        out = op(X)  # python-float scalars, and per-feature arrays of X's dtype, keep float32 as float32
        if mask is not None:
            out[~mask] = 0
        return out

    def fit_transform(self, X, lengths=None):
        """:meth:`fit` then :meth:`transform` on the same data.

        Parameters
        ----------
        X : array_like of shape (n_samples, max_len[, ...])
            Inputs.
        lengths : array_like of int, shape (n_samples,), optional
            Valid length of each sequence.

        Returns
        -------
        ndarray
            The standardised inputs.

        Examples
        --------
        >>> import numpy as np
        >>> from rnnumba.preprocessing import Standardizer
        >>> Standardizer().fit_transform(np.array([[0.0, 2.0], [4.0, 6.0]])).mean()
        np.float64(0.0)
        """
        return self.fit(X, lengths).transform(X, lengths)

    def to_dict(self):
        """Return the statistics as plain floats (lists per feature), ready for ``json.dumps``.

        Returns
        -------
        dict
            ``{"mean": float or list, "std": float or list}``.
        """
        self._check_fitted()
        if self.per_feature:
            return {"mean": [float(v) for v in self.mean_], "std": [float(v) for v in self.std_]}
        return {"mean": float(self.mean_), "std": float(self.std_)}

    @classmethod
    def from_dict(cls, d):
        """Rebuild a fitted Standardizer from :meth:`to_dict`'s output.

        Parameters
        ----------
        d : mapping
            With keys ``"mean"`` and ``"std"``: floats, or lists per feature.

        Returns
        -------
        Standardizer

        Raises
        ------
        ValueError
            Missing keys, non-finite values or a std that is not positive.
        """
        try:
            per_feature = isinstance(d["mean"], (list, tuple, np.ndarray))
            mean = np.asarray(d["mean"], dtype=np.float64)
            std = np.asarray(d["std"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"expected a mapping with numeric 'mean' and 'std', got {d!r}") from exc
        if mean.shape != std.shape or mean.ndim != (1 if per_feature else 0):
            raise ValueError(f"'mean' and 'std' must be two floats or two lists of one length, got {d!r}")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
            raise ValueError(f"invalid statistics: mean={mean}, std={std}")
        self = cls(per_feature)
        self.mean_, self.std_ = (mean, std) if per_feature else (float(mean), float(std))
        return self
