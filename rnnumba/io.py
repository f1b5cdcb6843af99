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
import zipfile

import numpy as np

from ._files import atomic_savez
from ._version import __version__
from .layout import Layout
from .network import RNN

FORMAT = "rnnumba"
VERSION = 1


def save(obj, path):
    """Write a network or a fitted estimator to ``path`` (an ``.npz`` file).

    The file is written next to ``path`` under a temporary name and then
    renamed over it, so an existing file is never left half-written.

    Parameters
    ----------
    obj : RNN, RNNRegressor or RNNClassifier
        Anything with a ``to_state()`` that gives ``{"kind", "net", "params",
        "fitted"}`` (and ``"classes"``, optional): JSON-able dicts and an RNN.
    path : str or os.PathLike
        Written exactly there (no suffix is added).

    Examples
    --------
    >>> import os, tempfile
    >>> import rnnumba
    >>> from rnnumba.io import read, save
    >>> net = rnnumba.RNN(2, 8, cell="gru", random_state=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "gru.npz")
    >>> save(net, path)
    >>> read(path)["kind"]
    'RNN'
    """
    if not hasattr(obj, "to_state"):
        raise TypeError(f"can only save an RNN, RNNRegressor or RNNClassifier, got {type(obj).__name__}")
    state = obj.to_state()
    kind, net, params, fitted = state["kind"], state["net"], state["params"], state["fitted"]
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
    classes = state.get("classes")
    if classes is not None:
        if classes.dtype == object:
            raise ValueError(
                "classes_ of dtype object cannot be saved without pickle; use numbers or strings"
            )
        arrays["classes"] = classes
    atomic_savez(path, arrays)


def bad_file(path, why):
    """Make the ValueError for a file that is not a valid model file."""
    return ValueError(f"{os.fspath(path)} is not a valid rnnumba model file: {why}")


def _read(path):
    """(meta dict, theta, classes or None) from ``path``, or a ValueError."""
    with open(path, "rb") as fh:  # FileNotFoundError passes through
        head = fh.read(4)
    if head != b"PK\x03\x04":
        raise bad_file(path, "not an .npz archive")
    try:
        with np.load(path, allow_pickle=False) as data:
            names = set(data.files)
            if not {"theta", "meta"} <= names:
                raise bad_file(path, f"missing {sorted({'theta', 'meta'} - names)}")
            theta = data["theta"]
            meta_raw = data["meta"]
            classes = data["classes"] if "classes" in names else None
    except ValueError as exc:
        if str(exc).startswith(f"{os.fspath(path)} is not"):
            raise
        raise bad_file(path, f"unreadable entry ({exc})") from exc
    except (OSError, EOFError, KeyError, zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        raise bad_file(path, f"unreadable or truncated ({type(exc).__name__}: {exc})") from exc
    try:
        meta = json.loads(str(meta_raw[()]))
    except (ValueError, TypeError, IndexError) as exc:
        raise bad_file(path, "the JSON header is corrupt") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise bad_file(path, "no rnnumba header")
    if not isinstance(meta.get("version"), int) or meta["version"] > VERSION:
        raise bad_file(
            path, f"format version {meta.get('version')!r} is newer than this rnnumba reads ({VERSION})"
        )
    return meta, theta, classes


def read(path):
    """Read a file written by :func:`save` into its state (the inverse of ``to_state``).

    :func:`rnnumba.load` turns the state into the saved object.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    dict
        ``kind`` ("RNN", "RNNRegressor", "RNNClassifier"), ``net`` (the
        :class:`~rnnumba.network.RNN`, predicting bitwise as the saved one),
        ``params``, ``fitted`` (dicts) and ``classes`` (ndarray or None).

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        A truncated, corrupt or foreign file.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> import rnnumba
    >>> from rnnumba.io import read, save
    >>> net = rnnumba.RNN(1, 4, random_state=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "net.npz")
    >>> save(net, path)
    >>> state = read(path)
    >>> bool(np.array_equal(state["net"].theta, net.theta))
    True
    """
    meta, theta, classes = _read(path)
    try:
        layout = Layout(**meta["layout"])
        dtype = np.dtype(meta["dtype"])
        kind = meta["kind"]
        params, fitted = dict(meta.get("params") or {}), dict(meta.get("fitted") or {})
    except (KeyError, TypeError, ValueError) as exc:
        raise bad_file(path, f"bad header ({exc})") from exc
    if dtype not in (np.float32, np.float64) or theta.dtype != dtype:
        raise bad_file(path, f"theta has dtype {theta.dtype}, the header says {dtype}")
    if theta.shape != (layout.n_params,):
        raise bad_file(path, f"theta has shape {theta.shape}, the architecture needs ({layout.n_params},)")
    if not np.all(np.isfinite(theta)):
        raise bad_file(path, "theta holds non-finite values")
    try:
        dropout = float(meta.get("dropout", 0.0))  # older files have none: no dropout
    except (TypeError, ValueError) as exc:
        raise bad_file(path, f"bad dropout ({exc})") from exc
    if not 0.0 <= dropout < 1.0:
        raise bad_file(path, f"dropout {dropout} is not a probability in [0, 1)")
    net = RNN.__new__(RNN)
    net.__setstate__({"layout": layout.to_dict(), "dtype": dtype.str, "theta": theta, "dropout": dropout})
    return {"kind": kind, "net": net, "params": params, "fitted": fitted, "classes": classes}
