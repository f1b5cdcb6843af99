"""The recurrent classifier."""

import warnings

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.exceptions import DataConversionWarning
from sklearn.utils.multiclass import check_classification_targets

from ..data import class_weights
from ..distributed.data import class_labels
from .base import RNNEstimator
from .params import init_with
from .targets import pad_targets, plain, score_rows, target_kind, valid_rows

__all__ = ["RNNClassifier"]


class RNNClassifier(ClassifierMixin, RNNEstimator):
    """A recurrent classifier (softmax cross-entropy), trained on the flat vector.

    Labels may be any sortable values (ints, strings); they are mapped to
    ``0..K-1`` through ``classes_``. ``y`` of shape (N,) gives one label per
    sequence, (N, T) or a list of (T_i,) arrays one per step; there, a NaN
    label (float labels) marks a step without a target.

    Parameters
    ----------
    hidden, cell, num_layers, bidirectional, dropout, peephole, reset_after, solver, lr, batch_size, epochs, \
momentum, nesterov, beta1, beta2, epsilon, clip, weight_decay, early_stopping, validation_fraction, \
n_iter_no_change, tol, shuffle, standardize, channels_first, warm_start, dtype, random_state, verbose, \
callbacks, solver_options, subsample, bptt_steps, device
        As for :class:`RNNRegressor`.
    class_weight : dict, "balanced" or None, default None
        Weights of the classes in the loss (``{label: weight}``; "balanced":
        ``n_targets / (n_classes * count)``, scikit-learn's rule), times
        ``sample_weight``.

    Attributes
    ----------
    classes_ : ndarray (K,)
        The labels, sorted.
    Others as :class:`RNNRegressor` (``n_outputs_`` is K).

    Examples
    --------
    Variable-length sequences, string labels:

    >>> import numpy as np
    >>> from rnnumba import RNNClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = [rng.normal(size=(int(n), 2)) for n in rng.integers(5, 9, size=120)]
    >>> y = ["rising" if x[-1, 0] > x[0, 0] else "falling" for x in X]
    >>> clf = RNNClassifier(hidden=8, solver="adam", lr=0.02, epochs=30, random_state=0).fit(X, y)
    >>> clf.classes_.tolist()
    ['falling', 'rising']
    >>> clf.score(X, y) > 0.8
    True
    """

    _loss = "xent"
    __init__ = init_with(RNNEstimator, class_weight=None)

    def _encode(self, y, lens, T, mode="fit", classes=None):
        """Class indices (N, 1 or T, 1) and their weights (class weights, missing steps), or None.

        ``mode``: "fit" learns ``classes_`` (from ``classes`` if given),
        "refit" and "score" use them; unknown labels are an error except when
        scoring (they count as wrong).
        """
        many, _ = target_kind(y)
        if many:
            labels = pad_targets(y, lens, T, None, "y")
        else:
            labels = plain(y)
            if labels.ndim == 2 and labels.shape[1] == 1 and T != 1:
                warnings.warn(
                    "A column-vector y was passed when a 1d array was expected: y of shape (N, 1) is read "
                    "as one label per sequence (per-step labels are (N, T))",
                    DataConversionWarning,
                    stacklevel=4,
                )
                labels = labels[:, 0]
            if labels.ndim not in (1, 2):
                raise ValueError(f"class labels must have shape (N,) or (N, T), got {labels.shape}")
            many = labels.ndim == 2
        if labels.shape[0] != len(lens):
            raise ValueError(f"y has {labels.shape[0]} samples but X has {len(lens)}")
        if many and labels.shape[1] != T:
            raise ValueError(f"per-step labels have {labels.shape[1]} steps but X has T={T}")
        labels = labels.reshape(len(lens), T if many else 1)
        steps = valid_rows(lens, labels.shape[1])
        mask = steps & ~np.isnan(labels) if labels.dtype.kind == "f" and many else steps  # NaN: no target
        valid = labels[mask]
        if valid.dtype == object:
            raise ValueError("class labels must be of one type (numbers or strings), got dtype object")
        if valid.dtype.kind == "f" and not np.all(np.isfinite(valid)):
            raise ValueError("class labels hold NaN or inf (NaN may only mark missing per-step labels)")
        if mode != "score":
            check_classification_targets(valid)
        if mode == "fit":
            known = np.unique(valid if classes is None else np.asarray(classes))
            if known.size < 2:
                raise ValueError(f"a classifier needs at least 2 classes; y holds {known.size} class")
            self.classes_, self.many_to_many_, self.n_outputs_ = known, bool(many), int(known.size)
        elif bool(many) != self.many_to_many_:
            raise ValueError(f"y has shape {np.shape(y)}, unlike the labels this model was fitted on")
        elif classes is not None and not np.array_equal(np.unique(np.asarray(classes)), self.classes_):
            raise ValueError(
                f"classes={list(classes)} differ from classes_ {self.classes_.tolist()} of the fit"
            )
        codes = np.zeros(labels.shape, dtype=np.int64)
        try:
            idx = np.clip(np.searchsorted(self.classes_, valid), 0, self.classes_.size - 1)
            codes[mask] = np.where(self.classes_[idx] == valid, idx, -1)  # -1: a label never seen
        except TypeError:  # labels of another kind (numbers against strings): none known
            codes[mask] = -1
        if mode != "score" and np.any(codes[mask] < 0):
            unseen = np.unique(valid[codes[mask] < 0])[:5]
            raise ValueError(f"y holds labels not in classes_ {self.classes_.tolist()}: {unseen.tolist()}")
        # weights only for missing steps inside the sequences: the padding is the lengths' job
        W = None if np.array_equal(mask, steps) else mask.astype(np.float64)[..., None]
        return codes[..., None], W

    def _loss_weights(self, codes, W, lens):
        """Return the target weights times the class weights (``class_weight``), for the loss only."""
        if self.class_weight is None:
            return W
        mask = valid_rows(lens, codes.shape[1]) if W is None else W[..., 0] > 0
        counts = np.bincount(codes[..., 0][mask], minlength=self.classes_.size)
        cw = class_weights(self.class_weight, self.classes_, counts)
        return np.where(mask, cw[codes[..., 0]], 0.0)[..., None] * (1.0 if W is None else W)

    def _dask_targets(self, X, y, lengths, client):
        y_shape = np.shape(y)
        if len(y_shape) not in (1, 2):
            raise ValueError(f"class labels must have shape (N,) or (N, T), got {y_shape}")
        classes, counts = class_labels(client, X, y, lengths)
        if classes.size < 2:
            raise ValueError(f"a classifier needs at least 2 classes; y holds {classes.size} class")
        self.classes_, self.many_to_many_, self.n_outputs_ = classes, len(y_shape) == 2, int(classes.size)
        cw = None if self.class_weight is None else class_weights(self.class_weight, classes, counts)
        return {"classes": classes, "class_weights": cw}

    def _adopt_classes(self, classes, net):
        if classes is None or classes.shape != (net.layout.output_size,):
            raise ValueError("the classifier's classes are missing or do not match its outputs")
        self.classes_ = classes

    def predict_proba(self, X, lengths=None):
        """Class probabilities (softmax): (N, K), or (N, T, K) per step.

        Per step, the padding holds NaN; a list of (T_i, K) arrays comes back
        when ``X`` is a list.

        Parameters
        ----------
        X : list of sequences or array_like
            As for :meth:`fit`.
        lengths : array_like of int (N,), optional

        Returns
        -------
        ndarray or list of ndarray

        Examples
        --------
        >>> import numpy as np
        >>> from rnnumba import RNNClassifier
        >>> X = np.random.default_rng(0).normal(size=(60, 6))
        >>> y = np.where(X[:, 0] > 0, "up", "down")
        >>> clf = RNNClassifier(hidden=4, epochs=3, random_state=0).fit(X, y)
        >>> clf.predict_proba(X[:2]).shape           # one column per class of classes_
        (2, 2)
        >>> np.allclose(clf.predict_proba(X).sum(axis=1), 1)
        True
        """
        seqs = self._check_X(X, lengths)
        lens, from_list = seqs.lengths, seqs.from_list
        out = self._raw(seqs)
        with np.errstate(invalid="ignore"):
            e = np.exp(out - np.max(out, axis=-1, keepdims=True))
            p = e / e.sum(axis=-1, keepdims=True)
        if self.many_to_many_ and from_list:
            return [p[k, : lens[k]] for k in range(len(lens))]
        return p

    def predict(self, X, lengths=None):
        """Predicted labels: (N,), or (N, T) per step.

        Per step, the padding holds ``classes_[0]``; a list of (T_i,) arrays
        comes back when ``X`` is a list.

        Parameters
        ----------
        X : list of sequences or array_like
            As for :meth:`fit`.
        lengths : array_like of int (N,), optional

        Returns
        -------
        ndarray or list of ndarray

        Examples
        --------
        >>> import numpy as np
        >>> from rnnumba import RNNClassifier
        >>> X = np.random.default_rng(0).normal(size=(60, 6))
        >>> clf = RNNClassifier(hidden=4, epochs=3, random_state=0).fit(X, X[:, 0] > 0)
        >>> clf.classes_
        array([False,  True])
        >>> clf.predict(X[:3]).dtype
        dtype('bool')
        """
        seqs = self._check_X(X, lengths)
        lens, from_list = seqs.lengths, seqs.from_list
        out = self._raw(seqs)
        codes = np.argmax(np.nan_to_num(out, nan=0.0), axis=-1)
        labels = self.classes_[codes]
        if self.many_to_many_ and from_list:
            return [labels[k, : lens[k]] for k in range(len(lens))]
        return labels

    def score(self, X, y, lengths=None, sample_weight=None):
        """Accuracy over the valid labels (NaN labels left out), weighted by ``sample_weight``.

        Parameters
        ----------
        X : list of sequences or array_like
        y : array_like
            As for :meth:`fit`.
        lengths : array_like of int (N,), optional
        sample_weight : array_like (N,), optional

        Returns
        -------
        float

        Examples
        --------
        >>> import numpy as np
        >>> from rnnumba import RNNClassifier
        >>> X = np.random.default_rng(0).normal(size=(100, 4))
        >>> y = (X[:, 0] > 0).astype(int)
        >>> clf = RNNClassifier(hidden=8, solver="L-BFGS-B", epochs=50, random_state=0).fit(X, y)
        >>> clf.score(X, y) > 0.9                     # accuracy
        True
        """
        seqs = self._check_X(X, lengths)
        lens = seqs.lengths
        codes, W = self._encode(y, lens, seqs.X.shape[1], "score")
        return self._score_encoded(self._raw(seqs), codes, W, lens, sample_weight)

    def _score_encoded(self, out, codes, W, lens, sample_weight=None):
        from sklearn.metrics import accuracy_score

        pred = np.argmax(np.nan_to_num(out, nan=0.0), axis=-1)
        y, p, w = score_rows(codes, pred[..., None], W, lens, sample_weight)
        return float(accuracy_score(y[:, 0], p[:, 0], sample_weight=w[:, 0]))
