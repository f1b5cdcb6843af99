"""The recurrent classifier."""

import numpy as np

from ..distributed.data import class_labels
from .base import RNNEstimator
from .targets import pad_targets, target_kind

__all__ = ["RNNClassifier"]


class RNNClassifier(RNNEstimator):
    """A recurrent classifier (softmax cross-entropy), trained on the flat vector.

    Parameters are those of :class:`RNNRegressor`. Labels may be any sortable
    values (ints, strings); they are mapped to ``0..K-1`` through
    ``classes_``. ``y`` of shape (N,) gives one label per sequence, (N, T) or
    a list of (T_i,) arrays one per step.

    Attributes
    ----------
    classes_ : ndarray (K,)
        The labels, sorted.
    Others as :class:`RNNRegressor` (``n_outputs_`` is K).
    """

    _loss = "xent"
    _estimator_type = "classifier"

    def _encode(self, y, lens, T, fitting=False):
        many, _ = target_kind(y)
        if many:
            labels = pad_targets(y, lens, T, None, "y")
        else:
            labels = np.asarray(y)
            if labels.ndim not in (1, 2):
                raise ValueError(f"class labels must have shape (N,) or (N, T), got {labels.shape}")
            many = labels.ndim == 2
        if labels.shape[0] != len(lens):
            raise ValueError(f"y has {labels.shape[0]} samples but X has {len(lens)}")
        if many and labels.shape[1] != T:
            raise ValueError(f"per-step labels have {labels.shape[1]} steps but X has T={T}")
        mask = np.arange(T)[None, :] < lens[:, None] if many else np.ones(len(lens), dtype=bool)
        valid = labels[mask]
        if valid.dtype == object:
            raise ValueError("class labels must be of one type (numbers or strings), got dtype object")
        if valid.dtype.kind == "f" and not np.all(np.isfinite(valid)):
            raise ValueError("class labels hold NaN or infinite values")
        if fitting:
            classes = np.unique(valid)
            if classes.size < 2:
                raise ValueError(f"a classifier needs at least 2 classes, got {classes.size}")
            self.classes_, self.many_to_many_, self.n_outputs_ = classes, bool(many), int(classes.size)
        elif bool(many) != self.many_to_many_:
            raise ValueError(f"y has shape {np.shape(y)}, unlike the labels this model was fitted on")
        codes = np.zeros(labels.shape, dtype=np.int64)
        try:
            idx = np.clip(np.searchsorted(self.classes_, valid), 0, self.classes_.size - 1)
            codes[mask] = np.where(self.classes_[idx] == valid, idx, -1)  # -1: a label never seen
        except TypeError:  # labels of another kind (numbers against strings): none known
            codes[mask] = -1
        if fitting and np.any(codes[mask] < 0):
            raise ValueError("could not encode the class labels")
        return codes

    def _dask_targets(self, X, y, lengths, client):
        y_shape = np.shape(y)
        if len(y_shape) not in (1, 2):
            raise ValueError(f"class labels must have shape (N,) or (N, T), got {y_shape}")
        classes = class_labels(client, X, y, lengths)
        if classes.size < 2:
            raise ValueError(f"a classifier needs at least 2 classes, got {classes.size}")
        self.classes_, self.many_to_many_, self.n_outputs_ = classes, len(y_shape) == 2, int(classes.size)
        return classes

    def _adopt_classes(self, classes, net):
        if classes is None or classes.shape != (net.layout.output_size,):
            raise ValueError("the classifier's classes are missing or do not match its outputs")
        self.classes_ = classes

    def predict_proba(self, X, lengths=None):
        """Class probabilities (softmax): (N, K), or (N, T, K) per step.

        Per step, the padding holds NaN; a list of (T_i, K) arrays comes back
        when ``X`` is a list.
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
        """
        seqs = self._check_X(X, lengths)
        lens, from_list = seqs.lengths, seqs.from_list
        out = self._raw(seqs)
        codes = np.argmax(np.nan_to_num(out, nan=0.0), axis=-1)
        labels = self.classes_[codes]
        if self.many_to_many_ and from_list:
            return [labels[k, : lens[k]] for k in range(len(lens))]
        return labels

    def score(self, X, y, lengths=None):
        """Accuracy over the valid labels."""
        seqs = self._check_X(X, lengths)
        lens = seqs.lengths
        return self._score_encoded(self._raw(seqs), self._encode(y, lens, seqs.X.shape[1]), lens)

    def _score_encoded(self, out, codes, lens):
        pred = np.argmax(np.nan_to_num(out, nan=0.0), axis=-1)
        if self.many_to_many_:
            mask = np.arange(codes.shape[1])[None, :] < lens[:, None]
            pred, codes = pred[mask], codes[mask]
        return float(np.mean(pred == codes))
