"""Input scaling fitted on the valid steps of padded sequences.

The estimators, the Dask data and the seed's toy split all scale through
:class:`Standardizer`; padding (steps at or after a sequence's length) never
enters the statistics and stays exactly 0.

This module needs numpy only.
"""

import math

import numpy as np

__all__ = ["Standardizer"]


def _valid_cells(X, lengths):
    """``X`` as an array and the values of its valid cells (all, or ``t < lengths``)."""
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise ValueError(f"X must hold real numbers, got dtype {X.dtype}")
    if lengths is None:
        return X, None, X.ravel()
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
    return X, mask, X[mask].ravel()


class Standardizer:
    """One scalar mean and one scalar unbiased std for all input cells.

    Scalar statistics, not one per time step: every step of the toy data is the
    same curve, and the seed standardised that way (mean ~2.87, std ~0.93).

    Attributes
    ----------
    mean_ : float
        Mean of the fitted cells.
    std_ : float
        Their standard deviation with ``ddof=1``.
    """

    def __init__(self):
        self.mean_ = None
        self.std_ = None

    def __repr__(self):
        if self.mean_ is None:
            return "Standardizer()"
        return f"Standardizer(mean_={self.mean_!r}, std_={self.std_!r})"

    @property
    def is_fitted(self):
        """True if ``mean_`` and ``std_`` are set, else False."""
        return self.mean_ is not None

    def fit(self, X, lengths=None):
        """Compute the scalar mean and std.

        Parameters
        ----------
        X : array_like of shape (n_samples, max_len[, ...])
            Inputs; any shape when ``lengths`` is None.
        lengths : array_like of int, shape (n_samples,), optional
            Valid length of each sequence; padding cells (``t >= lengths``) are
            ignored so that zeros do not drag the statistics.

        Returns
        -------
        self : Standardizer

        Raises
        ------
        ValueError
            Fewer than two valid cells, non-finite values, or a zero std.
        """
        _, _, values = _valid_cells(X, lengths)
        if values.size < 2:
            raise ValueError(f"need at least 2 valid cells to fit, got {values.size}")
        values = values.astype(np.float64, copy=False)
        if not np.isfinite(values).all():
            raise ValueError("X holds NaN or infinite values in its valid cells")
        mean = float(values.mean())
        std = float(values.std(ddof=1))
        if not std > 0 or not math.isfinite(std):
            raise ValueError(f"cannot standardise: the std of the valid cells is {std}")
        self.mean_, self.std_ = mean, std
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
        """
        self._check_fitted()
        return self._apply(X, lengths, lambda v: (v - self.mean_) / self.std_)

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
        """
        self._check_fitted()
        return self._apply(X, lengths, lambda v: v * self.std_ + self.mean_)

    def _apply(self, X, lengths, op):
        X, mask, values = _valid_cells(X, lengths)
        if not np.isfinite(values).all():
            raise ValueError("X holds NaN or infinite values in its valid cells")
        if X.dtype.kind != "f":
            X = X.astype(np.float64)
        out = op(X)  # python-float scalars keep float32 as float32
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
        """
        return self.fit(X, lengths).transform(X, lengths)

    def to_dict(self):
        """Return the statistics as plain floats, ready for ``json.dumps``.

        Returns
        -------
        dict
            ``{"mean": float, "std": float}``.
        """
        self._check_fitted()
        return {"mean": float(self.mean_), "std": float(self.std_)}

    @classmethod
    def from_dict(cls, d):
        """Rebuild a fitted Standardizer from :meth:`to_dict`'s output.

        Parameters
        ----------
        d : mapping
            With keys ``"mean"`` and ``"std"``.

        Returns
        -------
        Standardizer

        Raises
        ------
        ValueError
            Missing keys, non-finite values or a std that is not positive.
        """
        try:
            mean, std = float(d["mean"]), float(d["std"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"expected a mapping with numeric 'mean' and 'std', got {d!r}") from exc
        if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
            raise ValueError(f"invalid statistics: mean={mean}, std={std}")
        self = cls()
        self.mean_, self.std_ = mean, std
        return self
