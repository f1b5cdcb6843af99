"""The UEA/UCR ``.ts`` format of sktime and aeon."""

import numpy as np

from .parse import TS, open_text


def _flag(value, where):
    """Parse a ``true``/``false`` header value."""
    v = value.strip().lower()
    if v not in ("true", "false"):
        raise ValueError(f"{where}: expected true or false, got {value!r} ({TS})")
    return v == "true"


def _series(text, where):
    """One dimension of a case: floats, trailing missing values (``?``) trimmed."""
    tokens = [t.strip() for t in text.split(",")]
    values = np.empty(len(tokens))
    for i, t in enumerate(tokens):
        try:
            values[i] = np.nan if t == "?" else float(t)
        except ValueError:
            raise ValueError(f"{where}: {t!r} is not a number ({TS})") from None
    n = len(values)
    while n and np.isnan(values[n - 1]):
        n -= 1
    if n == 0:
        raise ValueError(f"{where}: an empty series")
    if np.isnan(values[:n]).any() or np.isinf(values[:n]).any():
        raise ValueError(f"{where}: a missing value inside the series ('?' may only pad its end)")
    return values[:n]


def _ts_header(meta, line, where):
    """Apply one ``@`` line of a ``.ts`` file to ``meta``; return whether it is ``@data``."""
    key, _, rest = line[1:].partition(" ")
    key, words = key.lower(), rest.split() or [""]
    if key == "data":
        if meta["class_labels"] is not None and meta["target_label"]:
            raise ValueError(f"{where}: both @classLabel true and @targetLabel true ({TS})")
        return True
    if key == "problemname":
        meta["problem_name"] = rest.strip()
    elif key in ("dimensions", "dimension", "serieslength"):
        if not words[0].isdigit() or int(words[0]) < 1 or len(words) > 1:
            raise ValueError(f"{where}: @{key} needs a positive whole number, got {rest.strip()!r}")
        meta["series_length" if key == "serieslength" else "dimensions"] = int(words[0])
    elif key in ("timestamps", "missing", "univariate", "equallength", "classlabel", "targetlabel"):
        flag = _flag(words[0], where)
        if key == "timestamps" and flag:
            raise ValueError(f"{where}: @timeStamps true is not supported (drop the time stamps)")
        if key == "classlabel" and flag and len(words) < 2:
            raise ValueError(f"{where}: @classLabel true must list the class labels")
        name = {"equallength": "equal_length", "classlabel": "class_labels", "targetlabel": "target_label"}
        meta[name.get(key, key)] = (words[1:] if flag else None) if key == "classlabel" else flag
    return False  # other tags are metadata rnnumba does not need


def read_ts(path):
    r"""Read a UEA/UCR ``.ts`` file (the sktime and aeon format).

    Header lines (``@problemName``, ``@timeStamps``, ``@missing``, ``@univariate``,
    ``@dimensions``, ``@equalLength``, ``@seriesLength``, ``@classLabel true l1 l2 ...``
    or ``@targetLabel true``) precede ``@data``; ``#`` starts a comment. Each data line
    is one case: its dimensions separated by ``:``, values by ``,``, then its label.
    ``?`` (missing) may only pad the end of a series, and is trimmed. Cases may differ
    in length; the dimensions of one case may not. ``@timeStamps true`` is not supported.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    X : list of ndarray (T_i, C)
        Floats, ``C`` the number of dimensions.
    y : ndarray (N,) or None
        Labels as str (``@classLabel``), floats (``@targetLabel``), or None.
    meta : dict
        ``problem_name``, ``timestamps`` (False), ``missing``, ``univariate``, ``equal_length``,
        ``series_length`` (None where not declared), ``dimensions`` (as found),
        ``class_labels`` (list or None), ``target_label`` (bool).

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Content that does not fit the format (the message names the line).

    Examples
    --------
    >>> import os, tempfile
    >>> from rnnumba.formats import read_ts
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.ts")
    >>> text = "@problemName tiny\n@univariate true\n@classLabel true a b\n@data\n1,2,3:a\n4,5:b\n"
    >>> _ = open(path, "w").write(text)
    >>> X, y, meta = read_ts(path)
    >>> [x.shape for x in X], y.tolist()
    ([(3, 1), (2, 1)], ['a', 'b'])
    """
    meta = dict(problem_name=None, timestamps=False, missing=None, univariate=None, equal_length=None)
    meta.update(series_length=None, dimensions=None, class_labels=None, target_label=False)
    X, y, in_data = [], [], False
    try:
        with open_text(path) as fh:
            lines = list(enumerate(fh, 1))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from None
    for lineno, raw in lines:
        line, where = raw.strip(), f"{path}, line {lineno}"
        if not line or line.startswith("#"):
            continue
        if line.startswith("@"):
            if in_data:
                raise ValueError(f"{where}: a header line after @data ({TS})")
            in_data = _ts_header(meta, line, where)
            continue
        if not in_data:
            raise ValueError(f"{where}: data before the @data line ({TS})")
        labelled = meta["class_labels"] is not None or meta["target_label"]
        fields = line.split(":")
        if labelled:
            if len(fields) < 2:
                raise ValueError(f"{where}: expected the series, then ':' and the label ({TS})")
            label = fields.pop().strip()
            if meta["class_labels"] is not None and label not in meta["class_labels"]:
                raise ValueError(f"{where}: label {label!r} is not one of @classLabel {meta['class_labels']}")
            if meta["target_label"]:
                try:
                    label = float(label)
                except ValueError:
                    raise ValueError(f"{where}: target {label!r} is not a number (@targetLabel)") from None
            y.append(label)
        if meta["dimensions"] is None:
            meta["dimensions"] = len(fields)
        if len(fields) != meta["dimensions"]:
            raise ValueError(f"{where}: {len(fields)} dimension(s), expected {meta['dimensions']} ({TS})")
        dims = [_series(f, f"{where}, dimension {d + 1}") for d, f in enumerate(fields)]
        if len({len(d) for d in dims}) > 1:
            sizes = ", ".join(str(len(d)) for d in dims)
            raise ValueError(f"{where}: the dimensions of one case differ in length ({sizes} values)")
        if meta["equal_length"] and meta["series_length"] not in (None, len(dims[0])):
            raise ValueError(f"{where}: {len(dims[0])} values, but @seriesLength {meta['series_length']}")
        X.append(np.column_stack(dims))
    if not X:
        raise ValueError(f"{path}: no cases{'' if in_data else ' (no @data line)'} ({TS})")
    if meta["univariate"] and meta["dimensions"] != 1:
        raise ValueError(f"{path}: @univariate true, but the cases have {meta['dimensions']} dimensions")
    if meta["equal_length"] and len({len(x) for x in X}) > 1:
        raise ValueError(f"{path}: @equalLength true, but the cases differ in length")
    if not y:
        return X, None, meta
    return X, np.asarray(y, dtype=np.float64 if meta["target_label"] else str), meta
