"""scikit-learn style estimators around :class:`~rnnumba.network.RNN`.

``RNNRegressor`` and ``RNNClassifier`` follow scikit-learn's conventions
(``__init__`` stores hyper-parameters, ``fit`` validates and returns self,
fitted attributes end in ``_``, ``get_params``/``set_params`` work with
``sklearn.base.clone``, ``GridSearchCV`` and ``Pipeline``) without importing
scikit-learn: it stays optional. :func:`fit` picks the estimator from ``y``.
"""

import inspect

import numpy as np

from .distributed import is_dask_collection
from .network import RNN
from .preprocessing import Standardizer
from .solvers import Problem, train
from .solvers.options import check_dtype, check_options
from .validation import check_sequences


class NotFittedError(ValueError, AttributeError):
    """Raised when a model is used before ``fit`` (as scikit-learn's)."""


class _RNNEstimator:
    """Shared machinery; see :class:`RNNRegressor` for the parameters."""

    _loss = None
    _estimator_type = None  # scikit-learn < 1.6 reads this

    def __init__(
        self,
        hidden=26,
        *,
        cell="elman",
        num_layers=1,
        bidirectional=False,
        dropout=0.0,
        peephole=False,
        reset_after=True,
        solver="sgd",
        lr=0.02,
        batch_size=20,
        epochs=20,
        momentum=0.0,
        nesterov=False,
        beta1=0.9,
        beta2=0.999,
        epsilon=1e-8,
        clip=None,
        weight_decay=0.0,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        tol=1e-4,
        shuffle=True,
        standardize=True,
        dtype="float64",
        random_state=None,
        verbose=False,
        callbacks=None,
        solver_options=None,
        subsample=None,
        device="cpu",
    ):
        # scikit-learn convention: store only; fit() validates
        for name, value in locals().items():
            if name not in ("self", "__class__"):
                setattr(self, name, value)

    # -- scikit-learn protocol -------------------------------------------------
    @classmethod
    def _get_param_names(cls):
        sig = inspect.signature(cls.__init__)
        return sorted(p.name for p in sig.parameters.values() if p.name != "self")

    def get_params(self, deep=True):
        """Hyper-parameters as a dict (``deep`` is accepted for scikit-learn)."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params):
        """Set hyper-parameters; unknown names raise a ValueError."""
        valid = set(self._get_param_names())
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"invalid parameter {name!r} for {type(self).__name__}; valid: {sorted(valid)}"
                )
            setattr(self, name, value)
        return self

    def __repr__(self):
        defaults = inspect.signature(type(self).__init__).parameters
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if not _same(v, defaults[k].default)]
        return f"{type(self).__name__}({', '.join(changed)})"

    def __sklearn_tags__(self):
        from sklearn.utils import ClassifierTags, InputTags, RegressorTags, Tags, TargetTags

        clf = self._estimator_type == "classifier"
        return Tags(
            estimator_type=self._estimator_type,
            target_tags=TargetTags(required=True),
            classifier_tags=ClassifierTags() if clf else None,
            regressor_tags=None if clf else RegressorTags(),
            input_tags=InputTags(two_d_array=True, three_d_array=True),
        )

    # -- fitted state ------------------------------------------------------------
    @property
    def theta_(self):
        """ndarray : The trained flat parameter vector (``net_.theta``)."""
        return self._fitted().theta

    @property
    def n_params_(self):
        """int : Number of trained parameters."""
        return self._fitted().n_params

    def _fitted(self):
        net = self.__dict__.get("net_")
        if net is None:
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit() first")
        return net

    # -- fitting -----------------------------------------------------------------
    def fit(self, X, y, lengths=None, client=None):
        """Train on sequences.

        Parameters
        ----------
        X : array_like (N, T) or (N, T, I), or a list of (T_i,) / (T_i, I) arrays
            Or a dask array chunked along samples: trained on a Dask cluster
            (see ``docs/dask.md``).
        y : array_like
            One target per sequence, or one per step (see the class docs).
        lengths : array_like of int (N,), optional
            Valid steps of each row of a right-padded ``X``.
        client : distributed.Client, optional
            For dask arrays; default: the current client.

        Returns
        -------
        self
        """
        if is_dask_collection(X) or is_dask_collection(y):
            if self.device != "cpu":
                raise ValueError("device='cuda' does not apply to dask arrays: their fits run on the CPU")
            from .distributed import fit_estimator

            return fit_estimator(self, X, y, lengths, client)
        cfg = check_options(self)
        if cfg["device"] == "cuda":  # fail before touching the fitted state
            from . import gpu

            ok, why = gpu.available()
            if not ok:
                raise RuntimeError(f"device='cuda' cannot run here: {why}")  # RNN.to's message
        dtype = cfg["dtype"]
        rng = np.random.default_rng(self.random_state)
        Xp, lens, _ = check_sequences(X, lengths, None, dtype)
        Yp = self._encode(y, lens, Xp.shape[1], fitting=True)
        N = Xp.shape[0]
        val = None
        if self.early_stopping:
            n_val = int(round(self.validation_fraction * N))
            if n_val < 1 or N - n_val < 1:
                raise ValueError(
                    f"early_stopping with validation_fraction={self.validation_fraction} needs more than "
                    f"{N} sequences (each part must keep at least one)"
                )
            perm = rng.permutation(N)
            tr, val = np.sort(perm[n_val:]), np.sort(perm[:n_val])
            Xp, lens, Yp, Xv, Lv, Yv = Xp[tr], lens[tr], Yp[tr], Xp[val], lens[val], Yp[val]
        self.scaler_ = Standardizer().fit(Xp, lens) if self.standardize else None
        Xs = self._scale(Xp, lens)
        self.n_features_in_ = Xp.shape[2]
        self.net_ = RNN(
            Xp.shape[2],
            self.hidden,
            self.n_outputs_,
            cell=self.cell,
            num_layers=self.num_layers,
            bidirectional=self.bidirectional,
            peephole=self.peephole,
            reset_after=self.reset_after,
            dtype=dtype,
            random_state=rng,
            dropout=cfg["dropout"],
        )
        if cfg["subsample"] is not None and cfg["solver"] not in ("sgd", "adam"):
            sub = cfg["subsample"]
            k = min(
                Xs.shape[0],
                sub if isinstance(sub, (int, np.integer)) else max(1, int(round(sub * Xs.shape[0]))),
            )
            rows = np.sort(rng.choice(Xs.shape[0], size=k, replace=False))
            Xs, lens, Yp = Xs[rows], lens[rows], Yp[rows]
        self.net_.to(cfg["device"])  # loss, gradients, steps and validation scores on that device
        problem = Problem(self.net_, *self.net_._prepare(Xs, Yp, lens, self._loss))
        score = None
        if val is not None:
            Xvs = self._scale(Xv, Lv)

            def score():
                return self._score_encoded(self._raw(Xvs, Lv), Yv, Lv)

        callbacks = [lambda e, loss, cb=cb: cb(self, e, loss) for cb in cfg["callbacks"]]
        try:
            h = train(
                problem,
                cfg["solver"],
                cfg["epochs"],
                rng,
                options=cfg["options"],
                tol=cfg["tol"],
                n_iter_no_change=cfg["n_iter_no_change"],
                validation_score=score,
                callbacks=callbacks,
                verbose=self.verbose,
                shuffle=self.shuffle,
                solver_options=cfg["solver_options"],
            )
        finally:
            self.net_.to("cpu")  # predict runs on the CPU, whatever device trained
        self.loss_curve_, self.n_iter_, self.stop_reason_ = h.loss_curve, h.n_iter, h.stop_reason
        for name in ("validation_scores_", "best_validation_score_", "best_loss_", "optimize_result_"):
            self.__dict__.pop(name, None)
        if val is not None:
            self.validation_scores_, self.best_validation_score_ = (
                h.validation_scores,
                h.best_validation_score,
            )
        else:
            self.best_loss_ = h.best_loss
        if h.optimize_result is not None:
            self.optimize_result_ = h.optimize_result
        return self

    def _scale(self, Xp, lens):
        if self.scaler_ is None:
            return Xp
        return np.ascontiguousarray(self.scaler_.transform(Xp, lens), dtype=Xp.dtype)

    def _check_X(self, X, lengths):
        net = self._fitted()
        Xp, lens, from_list = check_sequences(X, lengths, self.n_features_in_, check_dtype(net.dtype))
        return self._scale(Xp, lens), lens, from_list

    def _raw(self, Xs, lens):
        """Head outputs on standardised padded inputs: (N, O) or (N, T, O)."""
        return self.net_.predict(Xs, lengths=lens, many_to_many=self.many_to_many_)

    def save(self, path):
        """Write the fitted model to ``path`` (``.npz``); see :func:`rnnumba.io.save`."""
        from .io import save

        save(self, path)
        return self


class RNNRegressor(_RNNEstimator):
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
    random_state : int, numpy.random.Generator or None
        Seeds the initialisation, the validation split and the shuffling; an
        int makes a run repeat bitwise.
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
        many, shape = _target_kind(y)
        if many:
            Y = _pad(y, lens, T, np.float64, "y")
            if Y.ndim == 2:
                Y = Y[:, :, None]
        else:
            Y = _numeric(y, "y")
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

    def predict(self, X, lengths=None):
        """Predicted targets, shaped like the ``y`` given to ``fit``."""
        Xs, lens, from_list = self._check_X(X, lengths)
        out = self._raw(Xs, lens)
        squeeze = self._y_shape == "vector"
        if not self.many_to_many_:
            return out[:, 0] if squeeze else out
        if from_list:
            return [out[k, : lens[k], 0] if squeeze else out[k, : lens[k]] for k in range(len(lens))]
        return out[..., 0] if squeeze else out

    def score(self, X, y, lengths=None):
        """Coefficient of determination R^2 over the valid targets."""
        Xs, lens, _ = self._check_X(X, lengths)
        return self._score_encoded(self._raw(Xs, lens), self._encode(y, lens, Xs.shape[1]), lens)

    def _score_encoded(self, out, Y, lens):
        if self.many_to_many_:
            mask = np.arange(Y.shape[1])[None, :] < lens[:, None]
            out, Y = out[mask], Y[mask]
        return _r2(np.asarray(Y, dtype=np.float64), np.asarray(out, dtype=np.float64))


class RNNClassifier(_RNNEstimator):
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
        many, _ = _target_kind(y)
        if many:
            labels = _pad(y, lens, T, None, "y")
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

    def predict_proba(self, X, lengths=None):
        """Class probabilities (softmax): (N, K), or (N, T, K) per step (NaN in
        the padding; a list of (T_i, K) arrays when ``X`` is a list)."""
        Xs, lens, from_list = self._check_X(X, lengths)
        out = self._raw(Xs, lens)
        with np.errstate(invalid="ignore"):
            e = np.exp(out - np.max(out, axis=-1, keepdims=True))
            p = e / e.sum(axis=-1, keepdims=True)
        if self.many_to_many_ and from_list:
            return [p[k, : lens[k]] for k in range(len(lens))]
        return p

    def predict(self, X, lengths=None):
        """Predicted labels: (N,), or (N, T) per step (padding holds
        ``classes_[0]``; a list of (T_i,) arrays when ``X`` is a list)."""
        Xs, lens, from_list = self._check_X(X, lengths)
        out = self._raw(Xs, lens)
        codes = np.argmax(np.nan_to_num(out, nan=0.0), axis=-1)
        labels = self.classes_[codes]
        if self.many_to_many_ and from_list:
            return [labels[k, : lens[k]] for k in range(len(lens))]
        return labels

    def score(self, X, y, lengths=None):
        """Accuracy over the valid labels."""
        Xs, lens, _ = self._check_X(X, lengths)
        return self._score_encoded(self._raw(Xs, lens), self._encode(y, lens, Xs.shape[1]), lens)

    def _score_encoded(self, out, codes, lens):
        pred = np.argmax(np.nan_to_num(out, nan=0.0), axis=-1)
        if self.many_to_many_:
            mask = np.arange(codes.shape[1])[None, :] < lens[:, None]
            pred, codes = pred[mask], codes[mask]
        return float(np.mean(pred == codes))


def fit(X, y, hidden=26, lengths=None, client=None, **options):
    """Train a recurrent model in one call.

    Parameters
    ----------
    X : array_like (N, T) or (N, T, I), or a list of sequences
    y : array_like
        Floats: an :class:`RNNRegressor`; integers, bools or strings: an
        :class:`RNNClassifier`.
    hidden : int, default 26
    lengths : array_like of int, optional
    client : distributed.Client, optional
        For dask arrays (see ``docs/dask.md``); default: the current client.
    **options
        Any hyper-parameter of :class:`RNNRegressor`.

    Returns
    -------
    RNNRegressor or RNNClassifier
        Fitted.

    Examples
    --------
    >>> import rnnumba
    >>> from rnnumba.datasets import make_toy
    >>> X, z = make_toy(2000, random_state=0)
    >>> model = rnnumba.fit(X, z, hidden=26, epochs=2, random_state=0)
    >>> model.n_params_
    755
    """
    first = y[0] if isinstance(y, (list, tuple)) and len(y) and np.ndim(y[0]) >= 1 else y
    kind = y.dtype.kind if is_dask_collection(y) else np.asarray(first).dtype.kind
    cls = RNNClassifier if kind in "biuUSO" else RNNRegressor
    return cls(hidden, **options).fit(X, y, lengths=lengths, client=client)


# -- helpers -------------------------------------------------------------------


def _target_kind(y):
    """(per-step list?, shape tag): "vector" when each target is a scalar."""
    if isinstance(y, (list, tuple)) and len(y) and np.ndim(y[0]) >= 1:
        return True, "vector" if np.ndim(y[0]) == 1 else "matrix"
    return False, "vector" if np.ndim(y) == 1 else "matrix"


def _same(value, default):
    try:
        return type(value) is type(default) and bool(value == default)
    except (TypeError, ValueError):  # arrays and other odd values: show them
        return False


def _numeric(a, what):
    arr = np.asarray(a)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{what} must be numeric, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def _pad(seqs, lens, T, dtype, what):
    """A list of per-step targets -> one right-padded array."""
    if len(seqs) != len(lens):
        raise ValueError(f"{what} has {len(seqs)} sequences but X has {len(lens)}")
    arrs = [np.asarray(s) if dtype is None else _numeric(s, f"{what}[{k}]") for k, s in enumerate(seqs)]
    for k, a in enumerate(arrs):
        if a.ndim < 1 or a.shape[0] != lens[k]:
            raise ValueError(f"{what}[{k}] has {a.shape[:1] or 'no'} steps but X[{k}] has {lens[k]}")
        if a.shape[1:] != arrs[0].shape[1:]:
            raise ValueError(f"{what}[{k}] has shape {a.shape}, unlike {what}[0] {arrs[0].shape}")
    out = np.zeros((len(arrs), T) + arrs[0].shape[1:], dtype=np.result_type(*arrs))
    for k, a in enumerate(arrs):
        out[k, : a.shape[0]] = a
    return out


def _r2(y, p):
    """scikit-learn's R^2, averaged uniformly over outputs."""
    y, p = y.reshape(y.shape[0], -1), p.reshape(p.shape[0], -1)
    ss_res = ((y - p) ** 2).sum(axis=0)
    ss_tot = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(ss_tot > 0, 1.0 - ss_res / ss_tot, np.where(ss_res == 0, 1.0, 0.0))
    return float(r2.mean())
