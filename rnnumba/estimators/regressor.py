"""The recurrent regressor."""

import numpy as np

from .base import RNNEstimator
from .targets import numeric, pad_targets, r2_score, target_kind

__all__ = ["RNNRegressor"]


class RNNRegressor(RNNEstimator):
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
    standardize : bool, default True
        Scale inputs by ONE scalar mean and std of the valid training cells
        (as the seed did); stored in ``scaler_`` and applied by ``predict``.
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
    of (T_i,) / (T_i, O) arrays for one per step. ``predict`` returns the same
    shape (NaN in the padding of padded per-step outputs).
    """

    _loss = "mse"
    _estimator_type = "regressor"

    def _encode(self, y, lens, T, fitting=False):
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
        if fitting:
            self.many_to_many_, self.n_outputs_, self._y_shape = bool(many), Y.shape[-1], shape
        elif bool(many) != self.many_to_many_ or Y.shape[-1] != self.n_outputs_:
            raise ValueError(f"y has shape {np.shape(y)}, unlike the targets this model was fitted on")
        return Y

    def _dask_targets(self, X, y, lengths, client):
        y_shape = np.shape(y)
        if np.dtype(y.dtype).kind not in "biuf":
            raise ValueError(f"y must be numeric, got dtype {y.dtype}")
        if len(y_shape) not in (1, 2, 3):
            raise ValueError(f"y must have shape (N,), (N, O) or (N, T, O), got {y_shape}")
        self.many_to_many_, self.n_outputs_ = len(y_shape) == 3, 1 if len(y_shape) == 1 else int(y_shape[-1])
        self._y_shape = "vector" if len(y_shape) == 1 else "matrix"
        return None

    def predict(self, X, lengths=None):
        """Predicted targets, shaped like the ``y`` given to ``fit``."""
        seqs = self._check_X(X, lengths)
        lens, from_list = seqs.lengths, seqs.from_list
        out = self._raw(seqs)
        squeeze = self._y_shape == "vector"
        if not self.many_to_many_:
            return out[:, 0] if squeeze else out
        if from_list:
            return [out[k, : lens[k], 0] if squeeze else out[k, : lens[k]] for k in range(len(lens))]
        return out[..., 0] if squeeze else out

    def score(self, X, y, lengths=None):
        """Coefficient of determination R^2 over the valid targets."""
        seqs = self._check_X(X, lengths)
        lens = seqs.lengths
        return self._score_encoded(self._raw(seqs), self._encode(y, lens, seqs.X.shape[1]), lens)

    def _score_encoded(self, out, Y, lens):
        if self.many_to_many_:
            mask = np.arange(Y.shape[1])[None, :] < lens[:, None]
            out, Y = out[mask], Y[mask]
        return r2_score(np.asarray(Y, dtype=np.float64), np.asarray(out, dtype=np.float64))
