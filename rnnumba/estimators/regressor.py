"""The recurrent regressor."""

import numpy as np
from sklearn.base import RegressorMixin

from .base import RNNEstimator
from .params import init_with
from .targets import numeric, pad_targets, score_rows, target_kind, valid_rows

__all__ = ["RNNRegressor"]


class RNNRegressor(RegressorMixin, RNNEstimator):
    """A recurrent regressor (mean squared error), trained on the flat vector.

    Parameters
    ----------
    hidden : int, default 26
        Units per layer and direction.
    cell : {"elman", "lstm", "gru"}, default "elman"
    num_layers : int, default 1
    bidirectional : bool, default False
    dropout : float, default 0
        Dropout on the outputs of every layer but the last while training
        (minibatch solvers only; seeded by ``random_state``, see
        :class:`~rnnumba.network.RNN`).
    peephole, reset_after : bool
        LSTM peepholes; GRU formulation (see :class:`~rnnumba.network.RNN`).
    solver : str, default "sgd"
        "sgd", "adam", or a ``scipy.optimize.minimize`` gradient method
        ("L-BFGS-B", "BFGS", "CG", "Newton-CG", "TNC", "SLSQP", "trust-constr")
        on the full data.
    lr : float, default 0.02
        Learning rate of "sgd" and "adam".
    batch_size : int, default 20
        Rows per minibatch: contiguous blocks of rows whose order is
        reshuffled every epoch (the seed's convention).
    epochs : int, default 20
        Passes over the data; ``maxiter`` for scipy methods. 0 only
        initialises the network (and fits the scaler).
    momentum : float, default 0
    nesterov : bool, default False
    beta1, beta2, epsilon : float
        Adam's parameters.
    clip : float, optional
        Global gradient-norm clipping per minibatch.
    weight_decay : float, default 0
        L2 penalty ``weight_decay/2 * |theta|^2`` (gradient ``weight_decay * theta``).
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the sequences (at random), score
        them every epoch (R^2 / accuracy), stop after ``n_iter_no_change``
        epochs without a ``tol`` improvement and keep the best epoch.
    validation_fraction : float, default 0.1
    n_iter_no_change : int, default 10
    tol : float, default 1e-4
        Without early stopping, training stops once the epoch loss has not
        fallen by ``tol`` for ``n_iter_no_change`` epochs (first-order solvers
        only; scipy methods use ``solver_options``).
    shuffle : bool, default True
        Shuffle the minibatch order every epoch.
    standardize : bool or "global", default True
        Scale each input feature by its mean and std over the valid training
        steps (weighted by ``sample_weight``); "global": one scalar mean and
        std for every feature, as the seed did (the same with one feature);
        False: no scaling. Stored in ``scaler_`` and applied by ``predict``.
    channels_first : bool or None, default None
        True: read 3-D arrays as (N, C, T), channels first (aeon's and
        sktime's ``numpy3D``), and lists of (C, T_i) arrays. False: (N, T, I).
        None: (N, T, I), with a warning when an array has fewer steps than
        features (``T < I``), the mark of a channels-first array.
    warm_start : bool, default False
        ``fit`` goes on from the fitted parameters, scaler and optimiser
        state (momentum, Adam's moments, the step count and the random
        stream) instead of starting afresh: ``k`` epochs then ``m`` more equal
        one fit of ``k + m``. Scipy methods restart from the parameters.
    dtype : {"float64", "float32"}, default "float64"
    random_state : int, numpy.random.Generator, numpy.random.RandomState or None
        Seeds the initialisation, the validation split and the shuffling; an
        int makes a run repeat bitwise. A RandomState gives one seed per fit
        (scikit-learn's convention: reusing it gives different fits).
    verbose : bool, default False
        A tqdm progress bar (plain lines without tqdm).
    callbacks : callable or list of callables, optional
        ``callback(estimator, epoch, loss)`` after every epoch (scipy: every
        iteration); returning True stops training.
    solver_options : dict, optional
        Passed to ``scipy.optimize.minimize(options=...)``.
    subsample : int or float, optional
        scipy methods: fit on this many (or this fraction of) random sequences.
    bptt_steps : int, optional
        "sgd" and "adam": truncated BPTT. Each minibatch is read in windows
        of this many steps, in order, the state carried from one window to
        the next and a step taken per window; no gradient flows between
        windows, so dependencies longer than this are not learnt (see
        ``docs/engine.md``). Memory is one window's. Not with dropout, dask
        arrays or ``device="cuda"``.
    scale_target : bool, default False
        Regressor: learn standardised targets (mean and std per output over
        the valid, weighted training targets, kept in ``target_mean_`` and
        ``target_std_``); ``predict`` undoes it.
    device : {"cpu", "cuda"}, default "cpu"
        Where ``fit`` trains. "cuda" (numba-cuda and an NVIDIA GPU, see
        ``docs/gpu.md``) uploads the data once per fit; "sgd"/"adam" run every
        step on the GPU (``rnnumba.gpu.DeviceTrainer``), scipy methods
        evaluate the loss and gradient there. The parameters come back at the
        end (and each epoch when early stopping or callbacks need them), and
        ``predict``/``score`` always run on the CPU, so a GPU-trained model
        (saved, too) predicts on a machine without a GPU. ``fit`` raises a
        RuntimeError when CUDA cannot run here.

    Attributes
    ----------
    net_ : RNN
    theta_ : ndarray
        The flat parameter vector (``net_.theta``).
    n_params_, n_features_in_, n_outputs_ : int
    many_to_many_ : bool
        One target per step (``y`` of shape (N, T, O) or a list of sequences).
    scaler_ : Standardizer or None
    feature_names_in_ : ndarray of str
        When ``X`` was a list of DataFrames with the same columns.
    target_mean_, target_std_ : ndarray (O,)
        With ``scale_target``.
    loss_curve_ : list of float
        Mean training loss per epoch (minibatch losses weighted by rows), or
        the objective per scipy iteration.
    n_iter_ : int
    stop_reason_ : str
        "max_iter", "converged", "callback", "interrupted" or "diverged".
    best_loss_ : float
        Without early stopping.
    validation_scores_, best_validation_score_ : list, float
        With early stopping.
    optimize_result_ : scipy.optimize.OptimizeResult
        scipy methods only.

    Notes
    -----
    Targets: (N,) or (N, O) for one output per sequence; (N, T, O) or a list
    of (T_i,) / (T_i, O) arrays for one per step, where NaN marks a step
    without a target (it is left out of the loss and the score).
    ``predict`` returns the same shape (NaN in the padding of padded
    per-step outputs).

    Examples
    --------
    >>> import numpy as np
    >>> from rnnumba import RNNRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 10))            # 200 sequences of 10 steps, one feature
    >>> y = X[:, -3:].sum(axis=1)                 # the sum of the last three steps
    >>> model = RNNRegressor(hidden=8, solver="L-BFGS-B", epochs=60, random_state=0).fit(X, y)
    >>> model.n_params_, model.n_features_in_
    (89, 1)
    >>> round(model.score(X, y), 2) > 0.9
    True
    """

    _loss = "mse"
    __init__ = init_with(RNNEstimator, scale_target=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True  # y (N, O): O outputs per sequence
        return tags

    def _encode(self, y, lens, T, mode="fit", classes=None):
        """Targets as (N, 1 or T, O) floats, NaN steps zeroed, and their mask weights (or None)."""
        many, shape = target_kind(y)
        if many:
            Y = pad_targets(y, lens, T, np.float64, "y")
            if Y.ndim == 2:
                Y = Y[:, :, None]
        else:
            Y = numeric(y, "y")
            if Y.ndim not in (1, 2, 3):
                raise ValueError(f"y must have shape (N,), (N, O) or (N, T, O), got {Y.shape}")
            many = Y.ndim == 3
            Y = Y[:, None] if Y.ndim == 1 else Y
        if Y.shape[0] != len(lens):
            raise ValueError(f"y has {Y.shape[0]} samples but X has {len(lens)}")
        if many and Y.shape[1] != T:
            raise ValueError(f"per-step targets have {Y.shape[1]} steps but X has T={T}")
        Y = Y.reshape(len(lens), T if many else 1, Y.shape[-1])
        if mode == "fit":
            self.many_to_many_, self.n_outputs_, self._y_shape = bool(many), Y.shape[-1], shape
        elif bool(many) != self.many_to_many_ or Y.shape[-1] != self.n_outputs_:
            raise ValueError(f"y has shape {np.shape(y)}, unlike the targets this model was fitted on")
        valid = valid_rows(lens, Y.shape[1])
        if np.isinf(Y[valid]).any() or not many and np.isnan(Y).any():
            raise ValueError("y holds NaN or inf (NaN may only mark missing per-step targets)")
        missing = np.isnan(Y) & valid[..., None]  # NaN in the padding is the padding
        Y = np.where(np.isnan(Y), 0.0, Y)
        if not missing.any():
            return Y, None
        W = np.where(missing, 0.0, 1.0)
        if mode != "score" and not W[valid].any():
            raise ValueError("every target is NaN: nothing to fit")
        return Y, W

    def _targets_in(self, Y, W, lens, fitting):
        if fitting and not self.scale_target:
            self.__dict__.pop("target_mean_", None)
            self.__dict__.pop("target_std_", None)
        if self.__dict__.get("target_mean_") is None and not (fitting and self.scale_target):
            return Y
        if fitting:
            valid = valid_rows(lens, Y.shape[1])
            w = np.ones_like(Y[valid]) if W is None else np.broadcast_to(W, Y.shape)[valid]
            total = w.sum(axis=0)
            if np.any(total == 0):
                raise ValueError(
                    f"scale_target: output(s) {np.flatnonzero(total == 0).tolist()} have no target"
                )
            mean = (w * Y[valid]).sum(axis=0) / total
            std = np.sqrt((w * (Y[valid] - mean) ** 2).sum(axis=0) / total)
            self.target_mean_, self.target_std_ = mean, np.where(std > 0, std, 1.0)
        return (Y - self.target_mean_) / self.target_std_

    def _dask_targets(self, X, y, lengths, client):
        if self.scale_target:
            raise ValueError("scale_target is not supported with dask arrays yet: scale y yourself")
        self.__dict__.pop("target_mean_", None)
        self.__dict__.pop("target_std_", None)
        y_shape = np.shape(y)
        if np.dtype(y.dtype).kind not in "biuf":
            raise ValueError(f"y must be numeric, got dtype {y.dtype}")
        if len(y_shape) not in (1, 2, 3):
            raise ValueError(f"y must have shape (N,), (N, O) or (N, T, O), got {y_shape}")
        self.many_to_many_, self.n_outputs_ = len(y_shape) == 3, 1 if len(y_shape) == 1 else int(y_shape[-1])
        self._y_shape = "vector" if len(y_shape) == 1 else "matrix"
        return {}

    def predict(self, X, lengths=None):
        """Predicted targets, shaped like the ``y`` given to ``fit``.

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
        >>> from rnnumba import RNNRegressor
        >>> X = [np.array([0.1, 0.4, 0.2]), np.array([0.3, 0.5])]    # two sequences, lengths 3 and 2
        >>> model = RNNRegressor(hidden=4, epochs=2, random_state=0).fit(X, [1.0, 2.0])
        >>> model.predict(X).shape
        (2,)
        """
        seqs = self._check_X(X, lengths)
        lens, from_list = seqs.lengths, seqs.from_list
        out = self._outputs(self._raw(seqs))
        squeeze = self._y_shape == "vector"
        if not self.many_to_many_:
            return out[:, 0] if squeeze else out
        if from_list:
            return [out[k, : lens[k], 0] if squeeze else out[k, : lens[k]] for k in range(len(lens))]
        return out[..., 0] if squeeze else out

    def _outputs(self, out):
        """Head outputs in the targets' units (undoing ``scale_target``)."""
        if self.__dict__.get("target_mean_") is None:
            return out
        return out * self.target_std_ + self.target_mean_

    def score(self, X, y, lengths=None, sample_weight=None):
        """Coefficient of determination R^2 over the valid targets.

        scikit-learn's ``r2_score`` (outputs averaged uniformly) over every
        valid step of per-step targets, NaN targets left out.

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
        >>> from rnnumba import RNNRegressor
        >>> X = np.random.default_rng(0).normal(size=(50, 5))
        >>> y = X.mean(axis=1)
        >>> model = RNNRegressor(hidden=4, solver="L-BFGS-B", epochs=30, random_state=0).fit(X, y)
        >>> model.score(X, y) > 0.5                   # R^2
        True
        """
        seqs = self._check_X(X, lengths)
        lens = seqs.lengths
        Y, W = self._encode(y, lens, seqs.X.shape[1], "score")
        return self._score_encoded(self._raw(seqs), Y, W, lens, sample_weight, scaled=False)

    def _score_encoded(self, out, Y, W, lens, sample_weight=None, scaled=True):
        """R^2 of head outputs ``out`` against encoded targets (scaled like them when ``scaled``)."""
        from sklearn.metrics import r2_score

        if not scaled:
            out = self._outputs(out)
        y, p, w = score_rows(Y, np.asarray(out, dtype=np.float64), W, lens, sample_weight)
        scores = [r2_score(y[:, o], p[:, o], sample_weight=w[:, o]) for o in range(y.shape[1])]
        return float(np.mean(scores))
