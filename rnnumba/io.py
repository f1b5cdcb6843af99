"""Save and load models: one ``.npz`` with the flat vector and a JSON header.

The file holds

* ``theta``: the flat parameter vector, in the model's dtype;
* ``meta``: a JSON string: format name and version, the kind of object
  ("RNN", "RNNRegressor", "RNNClassifier"), the :class:`~rnnumba.layout.Layout`,
  the estimator's hyper-parameters, its fitted attributes and the input
  scaler;
* ``classes``: a classifier's labels, when it has them.

It is read with ``allow_pickle=False``: loading a file never runs code. The
parameters are stored bit for bit, so a loaded model predicts exactly what the
saved one did.
"""

import json
import os
import tempfile
import zipfile

import numpy as np

from . import __version__
from .layout import Layout

FORMAT = "rnnumba"
VERSION = 1
# fitted attributes kept in the JSON header (the training history included)
_FITTED = (
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


def _jsonable(value):
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


def _describe(obj):
    from .estimators import _RNNEstimator
    from .network import RNN

    if isinstance(obj, RNN):
        return "RNN", obj, {}, {}
    if isinstance(obj, _RNNEstimator):
        net = obj._fitted()
        params = {k: _jsonable(v) for k, v in obj.get_params().items()}
        params["callbacks"] = None
        fitted = {k: _jsonable(obj.__dict__[k]) for k in _FITTED if k in obj.__dict__}
        scaler = obj.scaler_.to_dict() if obj.scaler_ is not None else None
        return type(obj).__name__, net, params, dict(fitted, scaler=scaler)
    raise TypeError(f"can only save an RNN, RNNRegressor or RNNClassifier, got {type(obj).__name__}")


def save(obj, path):
    """Write a network or a fitted estimator to ``path`` (an ``.npz`` file).

    The file is written next to ``path`` under a temporary name and then
    renamed over it, so an existing file is never left half-written.

    Parameters
    ----------
    obj : RNN, RNNRegressor or RNNClassifier
    path : str or os.PathLike
        Written exactly there (no suffix is added).
    """
    kind, net, params, fitted = _describe(obj)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "rnnumba_version": __version__,
        "kind": kind,
        "layout": net.layout.to_dict(),
        "dtype": net.dtype.name,
        "dropout": net.dropout,
        "params": params,
        "fitted": fitted,
    }
    arrays = {"theta": net.theta, "meta": np.array(json.dumps(meta))}
    classes = getattr(obj, "classes_", None)
    if classes is not None:
        if classes.dtype == object:
            raise ValueError(
                "classes_ of dtype object cannot be saved without pickle; use numbers or strings"
            )
        arrays["classes"] = classes
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".rnnumba-", suffix=".npz.tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _bad(path, why):
    return ValueError(f"{os.fspath(path)} is not a valid rnnumba model file: {why}")


def _read(path):
    """(meta dict, theta, classes or None) from ``path``, or a ValueError."""
    with open(path, "rb") as fh:  # FileNotFoundError passes through
        head = fh.read(4)
    if head != b"PK\x03\x04":
        raise _bad(path, "not an .npz archive")
    try:
        with np.load(path, allow_pickle=False) as data:
            names = set(data.files)
            if not {"theta", "meta"} <= names:
                raise _bad(path, f"missing {sorted({'theta', 'meta'} - names)}")
            theta = data["theta"]
            meta_raw = data["meta"]
            classes = data["classes"] if "classes" in names else None
    except ValueError as exc:
        if str(exc).startswith(f"{os.fspath(path)} is not"):
            raise
        raise _bad(path, f"unreadable entry ({exc})") from exc
    except (OSError, EOFError, KeyError, zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        raise _bad(path, f"unreadable or truncated ({type(exc).__name__}: {exc})") from exc
    try:
        meta = json.loads(str(meta_raw[()]))
    except (ValueError, TypeError, IndexError) as exc:
        raise _bad(path, "the JSON header is corrupt") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _bad(path, "no rnnumba header")
    if not isinstance(meta.get("version"), int) or meta["version"] > VERSION:
        raise _bad(
            path, f"format version {meta.get('version')!r} is newer than this rnnumba reads ({VERSION})"
        )
    return meta, theta, classes


def load(path):
    """Read a model written by :func:`save`.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    RNN, RNNRegressor or RNNClassifier
        What was saved, predicting bitwise as before.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        A truncated, corrupt or foreign file.
    """
    from .estimators import RNNClassifier, RNNRegressor
    from .network import RNN
    from .preprocessing import Standardizer

    meta, theta, classes = _read(path)
    try:
        layout = Layout(**meta["layout"])
        dtype = np.dtype(meta["dtype"])
        kind = meta["kind"]
        params, fitted = dict(meta.get("params") or {}), dict(meta.get("fitted") or {})
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad(path, f"bad header ({exc})") from exc
    if dtype not in (np.float32, np.float64) or theta.dtype != dtype:
        raise _bad(path, f"theta has dtype {theta.dtype}, the header says {dtype}")
    if theta.shape != (layout.n_params,):
        raise _bad(path, f"theta has shape {theta.shape}, the architecture needs ({layout.n_params},)")
    if not np.all(np.isfinite(theta)):
        raise _bad(path, "theta holds non-finite values")
    net = RNN.__new__(RNN)
    try:
        dropout = float(meta.get("dropout", 0.0))  # older files have none: no dropout
    except (TypeError, ValueError) as exc:
        raise _bad(path, f"bad dropout ({exc})") from exc
    if not 0.0 <= dropout < 1.0:
        raise _bad(path, f"dropout {dropout} is not a probability in [0, 1)")
    net.__setstate__({"layout": layout.to_dict(), "dtype": dtype.str, "theta": theta, "dropout": dropout})
    if kind == "RNN":
        return net
    classes_by_kind = {"RNNRegressor": RNNRegressor, "RNNClassifier": RNNClassifier}
    if kind not in classes_by_kind:
        raise _bad(path, f"unknown kind {kind!r}")
    cls = classes_by_kind[kind]
    try:
        est = cls(**{k: v for k, v in params.items() if k in cls._get_param_names()})
        scaler = fitted.pop("scaler", None)
        est.scaler_ = None if scaler is None else Standardizer.from_dict(scaler)
        for name, value in fitted.items():
            if name in _FITTED:
                setattr(est, name, value)
    except (TypeError, ValueError) as exc:
        raise _bad(path, f"bad estimator description ({exc})") from exc
    if kind == "RNNClassifier":
        if classes is None or classes.shape != (layout.output_size,):
            raise _bad(path, "the classifier's classes are missing or do not match its outputs")
        est.classes_ = classes
    est.net_ = net
    return est
