"""The pieces every reader shares: files, missing values, numbers, labels and times.

Their errors are one line naming the file, the line and the layout expected.
"""

import os
from typing import NamedTuple

import numpy as np

MISSING = {"", "?", "na", "nan", "<na>", "none", "nat", "null"}
LEGACY = "one sequence per row: the target, then one value per step"
LONG = "one row per step under a header row, an id column naming the sequence"
TS = "the .ts layout: @-headers, then @data lines 'v,v,...:v,v,...:label'"


class DataFile(NamedTuple):
    """Sequences read by :func:`read_data`.

    ``X`` (an array or a list of arrays), ``y`` (None without targets), ``lengths``
    (``.npz`` only) and ``ids`` (long-format ``.csv`` only).

    Parameters
    ----------
    X : ndarray or list of ndarray
        The sequences.
    y : ndarray, list of ndarray or None
        The targets.
    lengths : ndarray or None
        Valid steps per row of a padded ``X``.
    ids : ndarray or None
        The sequences' ids.

    Examples
    --------
    >>> from rnnumba.formats import DataFile
    >>> DataFile(X=[[1.0, 2.0]], y=[0], lengths=None, ids=None).y
    [0]
    """

    X: object
    y: object
    lengths: object
    ids: object


def exists(path):
    """Raise ``FileNotFoundError`` unless ``path`` is an existing file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")


def open_text(path):
    """Open a text file (UTF-8, byte-order mark allowed) for the csv module."""
    exists(path)
    return open(path, newline="", encoding="utf-8-sig")


def missing(value):
    """Whether an input or time cell that is not a number stands for a missing value."""
    return value is None or str(value).strip().lower() in MISSING


def blank(value):
    """Whether an id or target is missing: None, empty, ``?``, NaN or pandas' NA."""
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return True
    if isinstance(value, (float, np.floating)):
        return bool(np.isnan(value))
    return isinstance(value, str) and value.strip() in ("", "?")


def floats(values, what, where, layout=LONG):
    """``values`` as a float array; a ValueError naming the row of a missing value or non-number."""
    try:
        out = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        out = np.empty(len(values))
        for i, v in enumerate(values):
            try:
                out[i] = float(v)
            except (TypeError, ValueError):
                if not missing(v):
                    raise ValueError(f"{where(i)}: {what} must be a number, got {v!r} ({layout})") from None
                out[i] = np.nan
    bad = np.flatnonzero(~np.isfinite(out))
    if bad.size:
        raise ValueError(f"{where(bad[0])}: missing value in {what} (inputs must be numbers; {layout})")
    return out


def labels_or_floats(values, what, where):
    """Targets: numbers as floats, else class labels as str; a ValueError on a missing one."""
    arr = np.asarray(values)
    if arr.dtype.kind in "biu":
        return arr
    gone = [i for i, v in enumerate(values) if blank(v)]
    if gone:
        raise ValueError(f"{where(gone[0])}: missing target in {what}")
    if arr.dtype.kind == "f":
        return arr
    try:
        return np.asarray(arr, dtype=np.float64)
    except (TypeError, ValueError):
        return np.asarray([str(v).strip() for v in values])


def times(values, column, where):
    """Sort keys of the time column: numbers if every value is one, else the text."""
    arr = np.asarray(values)
    numeric = arr.dtype.kind in "biufmM"
    if numeric:
        bad = np.flatnonzero(np.isnat(arr) if arr.dtype.kind in "mM" else np.isnan(arr.astype(float)))
    else:
        bad = [i for i, v in enumerate(values) if missing(v)]
    if len(bad):
        raise ValueError(f"{where(bad[0])}: missing time in column {column!r}")
    if numeric:
        return arr
    try:
        return np.asarray(arr, dtype=np.float64)
    except (TypeError, ValueError):
        return np.asarray([str(v).strip() for v in values])  # e.g. ISO 8601 dates sort as text


def column_names(value, what):
    """``None``, one column name or a list of them, as a list."""
    if value is None:
        return []
    names = [value] if isinstance(value, str) else list(value)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"{what} must be a column name or a list of them, got {value!r}")
    return names
