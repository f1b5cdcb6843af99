"""How a fitted estimator is saved and rebuilt: :class:`Persistent`, a base of the estimators.

The state is the network, the JSON-able hyper-parameters, the fitted
attributes (:data:`~rnnumba.estimators.params.FITTED`) with the scaler, and the
classes; :mod:`rnnumba.io` writes and reads it as one ``.npz`` file.
"""

import numpy as np

from ..io import save
from ..preprocessing import Standardizer
from .params import FITTED, jsonable


class Persistent:
    """``save``, ``to_state`` and ``from_state`` of :class:`~rnnumba.estimators.base.RNNEstimator`."""

    def save(self, path):
        """Write the fitted model to ``path`` (``.npz``); see :func:`rnnumba.io.save`.

        Parameters
        ----------
        path : str or os.PathLike
            Where to write; the file is replaced atomically.

        Returns
        -------
        self

        Examples
        --------
        >>> import os, tempfile
        >>> import numpy as np
        >>> import rnnumba
        >>> X = np.random.default_rng(0).normal(size=(20, 3))
        >>> model = rnnumba.RNNRegressor(hidden=4, epochs=1, random_state=0).fit(X, X[:, 0])
        >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
        >>> _ = model.save(path)
        >>> bool((rnnumba.load(path).predict(X) == model.predict(X)).all())
        True
        """
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

        Parameters
        ----------
        state : dict
            What :meth:`to_state` returned (or :func:`rnnumba.io.read` read).

        Returns
        -------
        RNNRegressor or RNNClassifier
            Fitted, predicting bitwise as the model that was saved.

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
            arrays = (("feature_names_in_", object), ("target_mean_", float), ("target_std_", float))
            for name, kind in arrays:
                if est.__dict__.get(name) is not None:
                    setattr(est, name, np.asarray(est.__dict__[name], dtype=kind))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bad estimator description ({exc})") from exc
        est._adopt_classes(state.get("classes"), state["net"])
        est.net_ = state["net"]
        return est

    def _adopt_classes(self, classes, net):
        pass
