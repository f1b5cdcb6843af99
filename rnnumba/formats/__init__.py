"""Reading sequence files into what the estimators take (numpy and the standard library only).

* ``.npz``: arrays ``X``, ``y``, ``lengths`` (:func:`read_npz`);
* a headerless ``.csv``, one sequence per row, the target first (:func:`read_csv`);
* a ``.csv`` in *long format*: a header row, then one row per step, an ``id`` column
  naming the sequence (:func:`read_csv` with ``id``; from a pandas DataFrame or a dict
  of arrays, :func:`from_long`);
* the UEA/UCR ``.ts`` format of sktime and aeon (:func:`read_ts`).

:func:`read_data` picks the reader by suffix (the command line's entry). Content that
does not fit raises a ``ValueError`` whose one line names the file, the line and the
layout expected; a missing file raises ``FileNotFoundError``.
"""

import os

from .long import from_long
from .parse import DataFile, exists
from .tables import read_csv, read_legacy, read_npz
from .ts import read_ts

__all__ = ["SUFFIXES", "DataFile", "from_long", "read_csv", "read_data", "read_npz", "read_ts"]

SUFFIXES = (".npz", ".csv", ".ts")


def read_data(path, need_y=True, target_column=True, **csv_options):
    """Read a data file by its suffix: ``.npz``, ``.csv`` or ``.ts``.

    Parameters
    ----------
    path : str or os.PathLike
    need_y : bool, default True
        Whether targets are needed: their absence is then an error. Without,
        ``y`` is None and the first value of headerless CSV rows goes unread.
    target_column : bool, default True
        Headerless CSV: whether each row starts with its target.
    **csv_options
        ``target``, ``features``, ``id``, ``time``, ``target_per``, ``header``
        of :func:`read_csv`.

    Returns
    -------
    DataFile

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        An unknown suffix, CSV options for another format, content that does
        not fit, or no targets when ``need_y``.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from rnnumba.formats import read_data
    >>> path = os.path.join(tempfile.mkdtemp(), "data.npz")
    >>> np.savez(path, X=np.ones((3, 5)), y=[0, 1, 0])
    >>> data = read_data(path)
    >>> data.X.shape, data.y.tolist(), data.lengths, data.ids
    ((3, 5), [0, 1, 0], None, None)
    """
    exists(path)
    ext = os.path.splitext(str(path))[1].lower()
    if ext not in SUFFIXES:
        raise ValueError(f"{path}: unknown data format {ext or '(no suffix)'!r}; use {', '.join(SUFFIXES)}")
    if csv_options and ext != ".csv":
        raise ValueError(f"{path}: {', '.join(sorted(csv_options))} apply to .csv files")
    lengths = ids = None
    if ext == ".npz":
        X, y, lengths = read_npz(path)
    elif ext == ".ts":
        X, y, _ = read_ts(path)
    elif csv_options.get("id") is None:
        if any(csv_options.get(k) is not None for k in ("target", "features", "time", "target_per")):
            raise ValueError(f"{path}: target, features and time name columns of the long format: pass id=")
        X, y = read_legacy(path, target_column, need_y, bool(csv_options.get("header")))
    else:
        X, y, ids = read_csv(path, **csv_options)
    if need_y and y is None:
        how = {".npz": "an array 'y'", ".ts": "@classLabel or @targetLabel", ".csv": "a target column"}
        raise ValueError(f"{path}: no targets (expected {how[ext]})")
    return DataFile(X, y if need_y else None, lengths, ids)
