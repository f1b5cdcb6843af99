"""``.npz`` arrays and ``.csv`` tables: the headerless legacy rows and the long format."""

import csv

import numpy as np

from .long import long_columns
from .parse import LEGACY, LONG, exists, floats, labels_or_floats, open_text


def read_npz(path):
    """Read sequences from a ``.npz`` file (without pickles).

    Parameters
    ----------
    path : str or os.PathLike
        Arrays ``X`` (``(N, T)`` or ``(N, T, I)``), optionally ``y`` and ``lengths``.

    Returns
    -------
    X : ndarray
    y, lengths : ndarray or None

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not a readable ``.npz`` file, or no array ``X``.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from rnnumba.formats import read_npz
    >>> path = os.path.join(tempfile.mkdtemp(), "data.npz")
    >>> np.savez(path, X=np.zeros((4, 6, 2)), y=np.arange(4.0), lengths=[6, 5, 6, 2])
    >>> X, y, lengths = read_npz(path)
    >>> X.shape, lengths.tolist()
    ((4, 6, 2), [6, 5, 6, 2])
    """
    exists(path)
    try:
        with np.load(path, allow_pickle=False) as d:
            files, arrays = d.files, {k: d[k] for k in ("X", "y", "lengths") if k in d.files}
    except Exception as exc:  # zip, pickle and format errors all mean a bad file
        raise ValueError(f"{path}: not a readable .npz file ({type(exc).__name__}: {exc})") from None
    if "X" not in arrays:
        raise ValueError(f"{path}: no array 'X' (found {sorted(files)}; expected X, y, optional lengths)")
    return arrays["X"], arrays.get("y"), arrays.get("lengths")


def _rows(path):
    """``(line number, stripped cells)`` of the non-empty, non-comment rows of a CSV file."""
    try:
        with open_text(path) as fh:
            reader = csv.reader(fh)
            for row in reader:
                cells = [c.strip() for c in row]
                while cells and cells[-1] == "":
                    cells.pop()
                if cells and not cells[0].startswith("#"):
                    yield reader.line_num, cells
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise ValueError(f"{path}: not a CSV file ({exc})") from None


def read_legacy(path, target_column, need_y, header):
    """Read the headerless form: ``(X list of (T_i,) arrays, y or None)``."""
    first = 1 if target_column else 0
    targets, X, lines = [], [], []
    rows = _rows(path)
    if header:
        next(rows, None)
    for lineno, cells in rows:
        if len(cells) < first + 1:
            raise ValueError(f"{path}, line {lineno}: expected a target and at least one value ({LEGACY})")
        where = lambda i, n=lineno: f"{path}, line {n}, column {i + first + 1}"  # noqa: E731
        X.append(floats(cells[first:], "a step", where, LEGACY))
        targets.append(cells[0] if target_column else None)
        lines.append(lineno)
    if not X:
        raise ValueError(f"{path}: no sequences ({LEGACY})")
    if not (target_column and need_y):
        return X, None
    return X, labels_or_floats(targets, "column 1", lambda i: f"{path}, line {lines[i]}")


def read_csv(
    path, target=None, features=None, id=None, time=None, target_per="step", header=None, target_column=True
):
    r"""Read sequences from a CSV file, headerless or in long format.

    Without ``id``: the headerless form, one sequence per row, the target first
    (unless not ``target_column``), then one value per step; rows may differ
    in length. With ``id``: a header row naming the columns, then one row per
    step, converted as by :func:`from_long`. Empty rows and rows whose first
    cell starts with ``#`` are skipped in both.

    Parameters
    ----------
    path : str or os.PathLike
    target, features, id, time, target_per
        Long format: the columns and options of :func:`from_long`. Targets
        that are numbers are read as floats, others as class labels (str).
    header : bool, optional
        Whether the first row names the columns. Default: True with ``id``
        (which needs it), else False; True without ``id`` skips that row.
    target_column : bool, default True
        Headerless form: whether each row starts with its target.

    Returns
    -------
    X : list of ndarray
        ``(T_i,)`` arrays (headerless) or ``(T_i, I)`` arrays (long format).
    y : ndarray, list of ndarray, or None
    ids : ndarray or None
        Long format: the id of each sequence, in order of first appearance.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Content that does not fit the form (the message names the line).

    Examples
    --------
    The headerless form (the target, then the steps) and the long format:

    >>> import os, tempfile
    >>> from rnnumba.formats import read_csv
    >>> folder = tempfile.mkdtemp()
    >>> path = os.path.join(folder, "rows.csv")
    >>> _ = open(path, "w").write("# z, f(z), f(z-1), f(z-2)\n4.21,3.10,2.05,3.77\n0.57,2.44,1.91\n")
    >>> X, y, ids = read_csv(path)
    >>> [len(x) for x in X], y.tolist()
    ([3, 2], [4.21, 0.57])
    >>> path = os.path.join(folder, "long.csv")
    >>> text = "seq,time,a,b,y\ns2,1,10,-1,0.5\ns1,0,1,10,7\ns2,0,9,-2,0.5\ns1,1,2,20,7\n"
    >>> _ = open(path, "w").write(text)
    >>> X, y, ids = read_csv(path, id="seq", time="time", target="y", target_per="sequence")
    >>> ids.tolist(), X[0].tolist(), y.tolist()
    (['s2', 's1'], [[9.0, -2.0], [10.0, -1.0]], [0.5, 7.0])
    """
    if id is None:
        if any(v is not None for v in (target, features, time)):
            raise ValueError(f"{path}: target, features and time name columns of the long format: pass id=")
        X, y = read_legacy(path, target_column, True, bool(header))
        return X, y, None
    if header is False:
        raise ValueError(f"{path}: the long format (id={id!r}) needs a header row naming the columns")
    rows = _rows(path)
    try:
        head_line, columns = next(rows)
    except StopIteration:
        raise ValueError(f"{path}: empty file ({LONG})") from None
    if len(set(columns)) < len(columns) or "" in columns:
        raise ValueError(f"{path}, line {head_line}: column names must be distinct and non-empty ({LONG})")
    cells, lines = [], []
    for lineno, row in rows:
        if len(row) > len(columns):
            raise ValueError(
                f"{path}, line {lineno}: {len(row)} values under a header of {len(columns)} columns ({LONG})"
            )
        cells.append(row + [""] * (len(columns) - len(row)))
        lines.append(lineno)
    if not cells:
        raise ValueError(f"{path}: a header row but no data rows ({LONG})")
    index = {name: k for k, name in enumerate(columns)}

    def get(name):
        k = index[name]
        return [row[k] for row in cells]

    where = lambda i: f"{path}, line {lines[i]}"  # noqa: E731
    return long_columns(
        get, columns, id, time, features, target, target_per, where, f"{path}, line {head_line}"
    )
