"""The long format (one row per step, an id column naming the sequence) into sequences."""

import numpy as np

from .parse import LONG, blank, column_names, floats, labels_or_floats, times


def long_columns(get, columns, id, time, features, target, target_per, where, source):
    """Convert long-format columns (``get(name)``); shared by :func:`read_csv` and :func:`from_long`."""
    if target_per not in ("step", "sequence"):
        raise ValueError(f"target_per must be 'step' or 'sequence', got {target_per!r}")
    if not isinstance(id, str) or not id:
        raise ValueError(f"id must name the column of the sequence ids, got {id!r}")
    targets = column_names(target, "target")
    special = [id] + ([time] if time is not None else []) + targets
    feats = column_names(features, "features") or [c for c in columns if c not in special]
    for name in special + feats:
        if name not in columns:
            raise ValueError(f"{source}: no column {name!r} (columns: {', '.join(map(str, columns))})")
    clash = [f for f in feats if f in special]
    if clash or len(set(special)) < len(special):
        raise ValueError(f"{source}: a column is used twice (id {id!r}, time {time!r}, targets {targets})")
    if not feats:
        raise ValueError(f"{source}: no feature columns besides id, time and target ({LONG})")
    order = {}
    for i, k in enumerate(get(id)):
        if blank(k):
            raise ValueError(f"{where(i)}: missing id in column {id!r}")
        k = k.item() if isinstance(k, np.generic) else k
        order.setdefault(k.strip() if isinstance(k, str) else k, []).append(i)
    X_all = np.column_stack([floats(get(f), f"column {f!r}", where) for f in feats])
    T_all = [labels_or_floats(get(t), f"column {t!r}", where) for t in targets]
    if len(T_all) > 1 and any(t.dtype.kind not in "biuf" for t in T_all):
        raise ValueError(
            f"{source}: several target columns ({', '.join(targets)}) must all hold numbers; "
            "class labels take one column"
        )
    Y_all = None if not T_all else T_all[0] if len(T_all) == 1 else np.column_stack(T_all).astype(float)
    stamps = None if time is None else times(get(time), time, where)
    X, y, ids = [], [], []
    for key, rows in order.items():
        rows = np.asarray(rows)
        if stamps is not None:
            rows = rows[np.argsort(stamps[rows], kind="stable")]
            same = np.flatnonzero(stamps[rows][1:] == stamps[rows][:-1])
            if same.size:
                raise ValueError(
                    f"{where(rows[same[0] + 1])}: sequence {key!r} has two rows at {time} "
                    f"{stamps[rows[same[0]]].tolist()!r} (one row per step)"
                )
        ids.append(key)
        X.append(X_all[rows])
        if Y_all is None:
            continue
        if target_per == "step":
            y.append(Y_all[rows])
            continue
        first = Y_all[rows[0]]
        changed = [r for r in rows[1:] if not np.array_equal(Y_all[r], first)]
        if changed:
            raise ValueError(
                f"{where(changed[0])}: the target of sequence {key!r} changes within the sequence "
                f"({Y_all[changed[0]].tolist()!r}, first {first.tolist()!r}); it must be constant"
            )
        y.append(first)
    if Y_all is None:
        y = None
    elif target_per == "sequence":
        y = np.asarray(y)
    return X, y, np.asarray(ids)


def from_long(data, id, time=None, features=None, target=None, target_per="step"):
    """Convert long-format data (one row per step) into lists of sequences.

    The pandas converter: ``data`` is a DataFrame (pandas is never imported:
    any object with ``columns`` whose ``data[name]`` gives a column works), a
    dict of 1-D arrays, or a numpy structured array.

    Parameters
    ----------
    data : pandas.DataFrame, dict of 1-D array_like, or structured ndarray
        One row per step.
    id : str
        The column naming each row's sequence. Sequences come out in the
        order of the first appearance of their ids.
    time : str, optional
        A column to sort the steps of a sequence by (numbers, datetimes, or
        text that sorts in time order such as ISO 8601 dates); two rows of a
        sequence at the same time are an error. Default: the order of the rows.
    features : str or list of str, optional
        The input columns; default every column that is not ``id``, ``time``
        or a target. Missing values are an error.
    target : str or list of str, optional
        The target column(s). Numbers are kept (floats for regression,
        integers and bools as class labels); text is class labels.
    target_per : {"step", "sequence"}, default "step"
        ``"step"``: one target per row, ``y`` a list of ``(T_i,)`` (or
        ``(T_i, O)``) arrays. ``"sequence"``: one per sequence, which must be
        the same on every row of the sequence; ``y`` an ``(N,)`` (or ``(N, O)``)
        array.

    Returns
    -------
    X : list of ndarray (T_i, I)
        Float inputs, ``I`` the number of feature columns.
    y : list of ndarray, ndarray, or None
        None without ``target``.
    ids : ndarray (N,)
        The id of each sequence.

    Raises
    ------
    ValueError
        An unknown column, a missing value, a non-number input, a duplicate
        time, or a per-sequence target that changes within a sequence.

    Examples
    --------
    >>> from rnnumba.formats import from_long
    >>> data = {
    ...     "id": ["a", "a", "b", "a", "b"],
    ...     "t": [2, 1, 1, 3, 2],
    ...     "x": [0.2, 0.1, 1.0, 0.3, 2.0],
    ...     "y": [1.5, 1.5, -1.0, 1.5, -1.0],
    ... }
    >>> X, y, ids = from_long(data, id="id", time="t", target="y", target_per="sequence")
    >>> ids.tolist(), y.tolist()
    (['a', 'b'], [1.5, -1.0])
    >>> X[0].ravel().tolist(), X[1].shape
    ([0.1, 0.2, 0.3], (2, 1))
    """
    if hasattr(data, "columns") or isinstance(data, dict):  # a pandas DataFrame, duck-typed, or a dict
        columns = list(data.columns if hasattr(data, "columns") else data)
    elif isinstance(data, np.ndarray) and data.dtype.names:
        columns = list(data.dtype.names)
    else:
        raise TypeError(
            f"from_long takes a DataFrame, a dict of arrays or a structured array, got {type(data).__name__}"
        )

    def get(name):
        return np.asarray(data[name])

    sizes = {np.shape(get(c)) for c in columns}
    if len(sizes) != 1 or len(next(iter(sizes))) != 1:
        raise ValueError(f"from_long: the columns must be 1-D and of one length, got shapes {sorted(sizes)}")
    return long_columns(
        get, columns, id, time, features, target, target_per, lambda i: f"row {i}", "from_long"
    )
