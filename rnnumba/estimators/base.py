"""The estimators' shared machinery: hyper-parameters and ``fit`` (persistence: :mod:`.persistence`).

:class:`RNNEstimator` turns user data into a :class:`~rnnumba.data.Batch`
(once), builds the :class:`~rnnumba.network.RNN` on its backend, runs the
solver and keeps the fitted attributes. Its subclasses say how targets are
encoded and scored: :class:`~rnnumba.estimators.RNNRegressor`,
:class:`~rnnumba.estimators.RNNClassifier`.
"""

import warnings

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.utils import metadata_routing
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from ..data import Sequences, batch
from ..distributed import DaskBackend, DaskData, is_dask_collection
from ..distributed.cluster import import_dask, resolve_client
from ..network import RNN
from ..preprocessing import Standardizer
from ..solvers import Problem, train
from ..solvers.options import check_dtype, check_options, generator
from ..validation import kernel_array
from .inputs import as_sequences, sample_weights
from .persistence import Persistent

__all__ = ["NotFittedError", "RNNEstimator"]


class RNNEstimator(Persistent, BaseEstimator):
    """Shared machinery; see :class:`RNNRegressor` for the parameters."""

    _loss = None
    # metadata routing: ``lengths`` belongs to X, so it goes wherever X goes
    # (fit, predict, score) unless the user says otherwise; ``client`` is not data
    __metadata_request__fit = {"lengths": True, "client": metadata_routing.UNUSED}
    __metadata_request__partial_fit = {"lengths": True}
    __metadata_request__predict = {"lengths": True}
    __metadata_request__score = {"lengths": True}

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
        channels_first=None,
        warm_start=False,
        dtype="float64",
        random_state=None,
        verbose=False,
        callbacks=None,
        solver_options=None,
        subsample=None,
        bptt_steps=None,
        device="cpu",
    ):
        # scikit-learn convention: store only; fit() validates
        for name, value in locals().items():
            if name not in ("self", "__class__"):
                setattr(self, name, value)

    # -- scikit-learn protocol -------------------------------------------------
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True  # (N, T, I); and lists of sequences
        tags.target_tags.required = True
        tags.non_deterministic = self.random_state is None
        return tags

    def __sklearn_is_fitted__(self):
        return "net_" in self.__dict__

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
        check_is_fitted(self)
        return self.net_

    # -- fitting -----------------------------------------------------------------
    def fit(self, X, y, lengths=None, *, sample_weight=None, client=None):
        """Train on sequences.

        Parameters
        ----------
        X : list of (T_i,) / (T_i, I) arrays, or array_like (N, T) or (N, T, I)
            Padded arrays end each sequence at ``lengths`` or at its first
            trailing all-NaN step; ``channels_first=True`` reads (N, C, T).
            A dask array chunked along samples trains on a Dask cluster (see
            ``docs/dask.md``).
        y : array_like
            One target per sequence, or one per step (see the class docs).
        lengths : array_like of int (N,), optional
            Valid steps of each row of a right-padded ``X``.
        sample_weight : array_like (N,), optional
            Weight of each sequence in the loss (``sum w * loss / sum w``), in
            the scaler's statistics and in validation scores.
        client : distributed.Client, optional
            For dask arrays; default: the current client.

        Returns
        -------
        self

        Examples
        --------
        A padded array with its lengths, and the same data as a list of sequences:

        >>> import numpy as np
        >>> from rnnumba import RNNRegressor
        >>> X = np.array([[0.1, 0.5, 0.9], [0.2, 0.4, 0.0]])
        >>> model = RNNRegressor(hidden=4, epochs=1, random_state=0)
        >>> model.fit(X, [1.0, 2.0], lengths=[3, 2]).n_iter_
        1
        >>> model.fit([X[0], X[1, :2]], [1.0, 2.0]).n_iter_
        1
        """
        warm = self.warm_start and self.__sklearn_is_fitted__()
        return self._fit(X, y, lengths, sample_weight, client, warm)

    @available_if(lambda self: str(self.solver).lower() in ("sgd", "adam"))
    def partial_fit(self, X, y, lengths=None, *, sample_weight=None, classes=None):
        """Train one epoch more on ``X``, continuing from the current parameters.

        Only with the solvers "sgd" and "adam" (else the attribute is absent,
        as scikit-learn's ``available_if`` makes it). The first call
        initialises the model (and fits the scaler on its data); each later
        call runs one epoch with the optimiser state (momentum, Adam's
        moments and step count) carried on.

        Parameters
        ----------
        X, y, lengths, sample_weight
            As for :meth:`fit` (in memory).
        classes : array_like, optional
            Classifier: every label of the whole data, on the first call (by
            default the labels of the first call's ``y``).

        Returns
        -------
        self

        Examples
        --------
        >>> import numpy as np
        >>> from rnnumba import RNNRegressor
        >>> X = np.random.default_rng(0).normal(size=(40, 5))
        >>> model = RNNRegressor(hidden=4, random_state=0)
        >>> for part in (X[:20], X[20:]):
        ...     model = model.partial_fit(part, part.sum(axis=1))
        >>> model.n_iter_
        2
        """
        if is_dask_collection(X) or is_dask_collection(y):
            raise ValueError("partial_fit takes in-memory data; fit dask arrays with fit()")
        if self.early_stopping:
            raise ValueError("partial_fit does not combine with early_stopping: hold out data yourself")
        if getattr(self, "class_weight", None) == "balanced":
            raise ValueError(
                "class_weight='balanced' is not supported by partial_fit (later batches' class counts are "
                "unknown): pass a dict of class weights"
            )
        warm = self.__sklearn_is_fitted__()
        return self._fit(X, y, lengths, sample_weight, None, warm, epochs=1, classes=classes)

    def _fit(self, X, y, lengths, sample_weight, client, warm, epochs=None, classes=None):
        before = dict(self.__dict__)
        try:
            return self._fit_or_raise(X, y, lengths, sample_weight, client, warm, epochs, classes)
        except Exception:  # bad data or options: the fitted model the user had stays as it was
            self.__dict__.clear()
            self.__dict__.update(before)
            raise

    def _fit_or_raise(self, X, y, lengths, sample_weight, client, warm, epochs, classes):
        if y is None:  # scikit-learn's wording
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        cfg = check_options(self)
        if epochs is not None:
            cfg["epochs"] = epochs
        if warm and self.early_stopping:
            raise ValueError("warm_start and partial_fit do not combine with early_stopping")
        rng = self.__dict__.get("_rng") if warm else None
        rng = generator(self.random_state) if rng is None else rng
        if is_dask_collection(X) or is_dask_collection(y):
            if warm:
                raise ValueError("warm_start is not supported with dask arrays: set warm_start=False")
            data, net, score = self._dask_data(X, y, lengths, sample_weight, client, cfg, rng)
        else:
            data, net, score = self._memory_data(X, y, lengths, sample_weight, cfg, rng, warm, classes)
        callbacks = [lambda e, loss, cb=cb: cb(self, e, loss) for cb in cfg["callbacks"]]
        resume = self.__dict__.get("_optimizer") if warm else None
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
                resume=resume,
                bptt_steps=cfg["bptt_steps"],
            )
        finally:
            net.to("cpu")  # predict runs on the CPU, wherever it trained
            if isinstance(data, DaskData):
                data.close()
        self._rng, self._optimizer = rng, h.optimizer_state
        if warm:  # the history goes on
            self.loss_curve_, self.n_iter_ = self.loss_curve_ + h.loss_curve, self.n_iter_ + h.n_iter
            h.best_loss = min(h.best_loss, self.__dict__.get("best_loss_", np.inf))
        else:
            self.loss_curve_, self.n_iter_ = h.loss_curve, h.n_iter
        self.stop_reason_ = h.stop_reason
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

    def _memory_data(self, X, y, lengths, sample_weight, cfg, rng, warm, classes):
        """In-memory data: ``(Batch, net, validation score or None)``; sets the scaler."""
        dtype = cfg["dtype"]
        seqs = as_sequences(self, X, lengths, dtype, reset=not warm)  # the one validation of X
        Xp, lens = seqs.X, seqs.lengths
        N = Xp.shape[0]
        self._padded_T = Xp.shape[1] if lengths is not None and lens.min() < Xp.shape[1] else None
        Yp, M = self._encode(y, lens, Xp.shape[1], "refit" if warm else "fit", classes)  # M: missing steps
        sw = sample_weights(sample_weight, N)
        W = self._loss_weights(Yp, M, lens)
        if sw is not None:  # the loss and the validation score weigh by sample_weight
            W, M = (sw.reshape(N, 1, 1) * (1.0 if A is None else A) for A in (W, M))
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
            Xv, Lv, Yv, Mv = Xp[val], lens[val], Yp[val], None if M is None else M[val]
            Xp, lens, Yp, W = Xp[tr], lens[tr], Yp[tr], None if W is None else W[tr]
            sw = None if sw is None else sw[tr]
        Yp = self._targets_in(Yp, W, lens, fitting=not warm)  # on the training rows
        if val is not None:
            Yv = self._targets_in(Yv, Mv, Lv, fitting=False)
        if warm:
            net = self._fitted()
            self._same_architecture(net, cfg)
            net.to(cfg["device"])
        else:
            per_feature = self.standardize != "global"
            scaler = Standardizer(per_feature).fit(Xp, lens, sw) if self.standardize else None
            # loss, gradients, steps and validation scores on the device asked for
            net = self._network(Xp.shape[2], cfg, rng, cfg["device"])
            self.scaler_, self.net_ = scaler, net
        Xs = self._scale(Xp, lens)
        if cfg["subsample"] is not None and cfg["solver"] not in ("sgd", "adam"):
            sub = cfg["subsample"]
            k = min(
                Xs.shape[0],
                sub if isinstance(sub, (int, np.integer)) else max(1, int(round(sub * Xs.shape[0]))),
            )
            rows = np.sort(rng.choice(Xs.shape[0], size=k, replace=False))
            Xs, lens, Yp, W = Xs[rows], lens[rows], Yp[rows], None if W is None else W[rows]
        seqs = Sequences(kernel_array(Xs, dtype), lens, False)
        # as data.batch takes targets: (N, O) / (N, T, O) values, (N,) / (N, T) class indices
        Yk = Yp[..., 0] if self._loss == "xent" else Yp
        Yk = Yk if self.many_to_many_ else Yk[:, 0]
        data = batch(seqs, Yk, None, self._loss, None, self.n_outputs_, dtype, weights=W)
        if val is None:
            return data, net, None
        Xvs = Sequences(self._scale(Xv, Lv), Lv, False)
        return data, net, lambda: self._score_encoded(self._raw(Xvs), Yv, Mv, Lv)

    def _same_architecture(self, net, cfg):
        """Refuse a warm start whose hyper-parameters no longer describe the fitted network."""
        now = dict(net.layout.to_dict(), dtype=net.dtype.name, dropout=net.dropout)
        want = {k: getattr(self, k) for k in ("cell", "hidden", "num_layers", "bidirectional", "peephole")}
        want.update(reset_after=self.reset_after, dtype=cfg["dtype"].name, dropout=cfg["dropout"])
        changed = [f"{k} {now[k]!r} -> {v!r}" for k, v in want.items() if now[k] != v]
        if now["cell"] != "gru":
            changed = [c for c in changed if not c.startswith("reset_after")]
        if now["cell"] != "lstm":
            changed = [c for c in changed if not c.startswith("peephole")]
        if changed:
            raise ValueError(
                f"warm_start: the network was fitted with other hyper-parameters ({', '.join(changed)}); "
                "set warm_start=False to start afresh"
            )

    def _loss_weights(self, Y, W, lens):
        """Return the target weights the loss uses (the classifier adds its class weights)."""
        return W

    def _targets_in(self, Y, W, lens, fitting):
        """Return the encoded targets as the network learns them (the regressor may scale them)."""
        return Y

    def _dask_data(self, X, y, lengths, sample_weight, client, cfg, rng):
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
        targets = self._dask_targets(X, y, lengths, client)  # classes and class weights, or nothing
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
            **targets,
            standardize=self.standardize and ("global" if self.standardize == "global" else "feature"),
            sample_weight=sample_weight,
            kernels=kernels,
        )
        net.to(DaskBackend(net.layout, net.dtype))
        self.scaler_, self.n_features_in_, self.net_ = data.scaler, I, net
        return data, net, None

    def _dask_targets(self, X, y, lengths, client):
        """Check dask targets and set the target attributes; return DaskData's target keywords."""
        raise NotImplementedError

    def _scale(self, Xp, lens):
        if self.scaler_ is None:
            return Xp
        return np.ascontiguousarray(self.scaler_.transform(Xp, lens), dtype=Xp.dtype)

    def _check_X(self, X, lengths):
        """``X`` validated once and scaled: :class:`~rnnumba.data.Sequences`."""
        net = self._fitted()
        seqs = as_sequences(self, X, lengths, check_dtype(net.dtype), reset=False)
        padded_T = self.__dict__.get("_padded_T")
        T = seqs.X.shape[1]
        if lengths is None and padded_T == T and not seqs.from_list and seqs.lengths.min() == T:
            warnings.warn(
                f"X is an array of T={padded_T} steps, as the padded data fit() was given with lengths=, "
                "but no lengths came with it: every step is read as data. Pass lengths= (with scikit-learn's "
                "metadata routing on, lengths follow X), pad with NaN, or pass a list of sequences.",
                UserWarning,
                stacklevel=3,
            )
        return seqs._replace(X=self._scale(seqs.X, seqs.lengths))

    def _raw(self, seqs):
        """Head outputs on validated, scaled inputs: (N, O) or (N, T, O), padded."""
        return self.net_.predict(seqs._replace(from_list=False), many_to_many=self.many_to_many_)
