"""The estimators' shared machinery: hyper-parameters, ``fit``, persistence.

:class:`RNNEstimator` turns user data into a :class:`~rnnumba.data.Batch`
(once), builds the :class:`~rnnumba.network.RNN` on its backend, runs the
solver and keeps the fitted attributes. Its subclasses say how targets are
encoded and scored: :class:`~rnnumba.estimators.RNNRegressor`,
:class:`~rnnumba.estimators.RNNClassifier`.
"""

import inspect
import json

import numpy as np

from ..data import Sequences, batch, sequences
from ..distributed import DaskBackend, DaskData, is_dask_collection
from ..distributed.cluster import import_dask, resolve_client
from ..io import save
from ..network import RNN
from ..preprocessing import Standardizer
from ..solvers import Problem, train
from ..solvers.options import check_dtype, check_options, generator
from ..validation import kernel_array

__all__ = ["FITTED", "NotFittedError", "RNNEstimator", "jsonable", "same"]


class NotFittedError(ValueError, AttributeError):
    """Raised when a model is used before ``fit`` (as scikit-learn's)."""


class RNNEstimator:
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
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if not same(v, defaults[k].default)]
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
        """Ndarray : The trained flat parameter vector (``net_.theta``)."""
        return self._fitted().theta

    @property
    def n_params_(self):
        """Int : Number of trained parameters."""
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
        cfg = check_options(self)
        rng = generator(self.random_state)
        if is_dask_collection(X) or is_dask_collection(y):
            data, net, score = self._dask_data(X, y, lengths, client, cfg, rng)
        else:
            data, net, score = self._memory_data(X, y, lengths, cfg, rng)
        callbacks = [lambda e, loss, cb=cb: cb(self, e, loss) for cb in cfg["callbacks"]]
        try:
            h = train(
                Problem(net, data),
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
            net.to("cpu")  # predict runs on the CPU, wherever it trained
            if isinstance(data, DaskData):
                data.close()
        self.loss_curve_, self.n_iter_, self.stop_reason_ = h.loss_curve, h.n_iter, h.stop_reason
        for name in ("validation_scores_", "best_validation_score_", "best_loss_", "optimize_result_"):
            self.__dict__.pop(name, None)
        if score is not None:
            self.validation_scores_, self.best_validation_score_ = (
                h.validation_scores,
                h.best_validation_score,
            )
        else:
            self.best_loss_ = h.best_loss
        if h.optimize_result is not None:
            self.optimize_result_ = h.optimize_result
        return self

    def _network(self, input_size, cfg, rng, device):
        """Build a fresh :class:`~rnnumba.network.RNN` of this estimator's architecture."""
        return RNN(
            input_size,
            self.hidden,
            self.n_outputs_,
            cell=self.cell,
            num_layers=self.num_layers,
            bidirectional=self.bidirectional,
            peephole=self.peephole,
            reset_after=self.reset_after,
            dtype=cfg["dtype"],
            random_state=rng,
            dropout=cfg["dropout"],
            device=device,
        )

    def _memory_data(self, X, y, lengths, cfg, rng):
        """In-memory data: ``(Batch, net, validation score or None)``; sets the scaler."""
        dtype = cfg["dtype"]
        seqs = sequences(X, lengths, None, dtype)  # the one validation of X
        Xp, lens = seqs.X, seqs.lengths
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
        scaler = Standardizer().fit(Xp, lens) if self.standardize else None
        # loss, gradients, steps and validation scores on the device asked for
        net = self._network(Xp.shape[2], cfg, rng, cfg["device"])
        self.scaler_, self.n_features_in_, self.net_ = scaler, Xp.shape[2], net
        Xs = self._scale(Xp, lens)
        if cfg["subsample"] is not None and cfg["solver"] not in ("sgd", "adam"):
            sub = cfg["subsample"]
            k = min(
                Xs.shape[0],
                sub if isinstance(sub, (int, np.integer)) else max(1, int(round(sub * Xs.shape[0]))),
            )
            rows = np.sort(rng.choice(Xs.shape[0], size=k, replace=False))
            Xs, lens, Yp = Xs[rows], lens[rows], Yp[rows]
        seqs = Sequences(kernel_array(Xs, dtype), lens, False)
        data = batch(seqs, Yp, None, self._loss, None, self.n_outputs_, dtype)
        if val is None:
            return data, net, None
        Xvs = Sequences(self._scale(Xv, Lv), Lv, False)
        return data, net, lambda: self._score_encoded(self._raw(Xvs), Yv, Lv)

    def _dask_data(self, X, y, lengths, client, cfg, rng):
        """Dask data: ``(DaskData, net on a DaskBackend, None)``; sets the scaler."""
        if cfg["device"] != "cpu":
            raise ValueError("device='cuda' does not apply to dask arrays: their fits run on the CPU")
        if self.early_stopping:
            raise ValueError(
                "early_stopping is not supported with dask arrays: hold out a validation set yourself"
            )
        if cfg["subsample"] is not None:
            raise ValueError("subsample is not supported with dask arrays: slice the dask array instead")
        client = resolve_client(client)
        _, da, _ = import_dask()
        if not isinstance(X, da.Array):
            raise TypeError(f"with a dask y, X must be a dask array too, got {type(X).__name__}")
        if X.ndim not in (2, 3):
            raise ValueError(f"X must have shape (N, T) or (N, T, I), got {X.ndim} dimension(s)")
        if not is_dask_collection(y):
            y = np.asarray(y)
        classes = self._dask_targets(X, y, lengths, client)
        I = 1 if X.ndim == 2 else int(X.shape[2])
        net = self._network(I, cfg, rng, "cpu")
        kernels = ("epoch", "objective") if cfg["solver"] in ("sgd", "adam") else ("objective",)
        data = DaskData(
            net,
            X,
            y,
            lengths,
            client,
            loss=self._loss,
            classes=classes,
            standardize=self.standardize,
            kernels=kernels,
        )
        net.to(DaskBackend(net.layout, net.dtype))
        self.scaler_, self.n_features_in_, self.net_ = data.scaler, I, net
        return data, net, None

    def _dask_targets(self, X, y, lengths, client):
        """Check dask targets and set the target attributes; the classes, or None."""
        raise NotImplementedError

    def _scale(self, Xp, lens):
        if self.scaler_ is None:
            return Xp
        return np.ascontiguousarray(self.scaler_.transform(Xp, lens), dtype=Xp.dtype)

    def _check_X(self, X, lengths):
        """``X`` validated once and scaled: :class:`~rnnumba.data.Sequences`."""
        net = self._fitted()
        seqs = sequences(X, lengths, self.n_features_in_, check_dtype(net.dtype))
        return seqs._replace(X=self._scale(seqs.X, seqs.lengths))

    def _raw(self, seqs):
        """Head outputs on validated, scaled inputs: (N, O) or (N, T, O), padded."""
        return self.net_.predict(seqs._replace(from_list=False), many_to_many=self.many_to_many_)

    # -- persistence -------------------------------------------------------------
    def save(self, path):
        """Write the fitted model to ``path`` (``.npz``); see :func:`rnnumba.io.save`."""
        save(self, path)
        return self

    def to_state(self):
        """Return the fitted model as :func:`rnnumba.io.save` writes it.

        Returns
        -------
        dict
            ``kind`` (the class name), ``net``, ``params`` (JSON-able
            hyper-parameters; callbacks and Generators become None),
            ``fitted`` (the fitted attributes and the scaler) and ``classes``.
        """
        net = self._fitted()
        params = {k: jsonable(v) for k, v in self.get_params().items()}
        params["callbacks"] = None
        fitted = {k: jsonable(self.__dict__[k]) for k in FITTED if k in self.__dict__}
        fitted["scaler"] = self.scaler_.to_dict() if self.scaler_ is not None else None
        state = {"kind": type(self).__name__, "net": net, "params": params, "fitted": fitted}
        return dict(state, classes=getattr(self, "classes_", None))

    @classmethod
    def from_state(cls, state):
        """Rebuild the estimator :meth:`to_state` described.

        Raises
        ------
        ValueError
            A state this class cannot take.
        """
        params, fitted = state["params"], dict(state["fitted"])
        try:
            est = cls(**{k: v for k, v in params.items() if k in cls._get_param_names()})
            scaler = fitted.pop("scaler", None)
            est.scaler_ = None if scaler is None else Standardizer.from_dict(scaler)
            for name, value in fitted.items():
                if name in FITTED:
                    setattr(est, name, value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bad estimator description ({exc})") from exc
        est._adopt_classes(state.get("classes"), state["net"])
        est.net_ = state["net"]
        return est

    def _adopt_classes(self, classes, net):
        pass


# fitted attributes that go into a saved file (the training history included)
FITTED = (
    "n_features_in_",
    "n_outputs_",
    "many_to_many_",
    "_y_shape",
    "loss_curve_",
    "n_iter_",
    "stop_reason_",
    "best_loss_",
    "validation_scores_",
    "best_validation_score_",
)


def jsonable(value):
    """``value`` when JSON can hold it exactly, else None (callbacks, Generators)."""
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        value = value.item()
    if isinstance(value, np.dtype):
        return value.name
    if isinstance(value, type) and issubclass(value, np.generic):
        return np.dtype(value).name
    try:
        json.dumps(value, allow_nan=True)
    except (TypeError, ValueError):
        return None
    return value


def same(value, default):
    """Return whether ``value`` is ``default``: the same type and an equal value.

    ``__repr__`` shows the hyper-parameters that are not; arrays and other
    values whose comparison is not a single bool count as changed.

    Parameters
    ----------
    value : object
        A hyper-parameter's value.
    default : object
        Its default in ``__init__``'s signature.

    Returns
    -------
    bool
    """
    try:
        return type(value) is type(default) and bool(value == default)
    except (TypeError, ValueError):  # arrays and other odd values: show them
        return False
