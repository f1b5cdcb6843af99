"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

import os
import tempfile

import numpy as np


def atomic_savez(path, arrays, *, prefix=".rnnumba-"):
    """Write ``arrays`` to ``path`` as an uncompressed ``.npz``, atomically.

    Written to a temporary file in the same folder (so the rename stays on one
    file system), flushed to disk, then renamed over ``path`` with
    :func:`os.replace`. On any error, Ctrl-C included, the temporary file is
    removed and ``path`` is left as it was.

    Parameters
    ----------
    path : str or os.PathLike
        Written exactly there (no suffix is added).
    arrays : dict
        ``{name: array-like}``, as for :func:`numpy.savez`.
    prefix : str
        Start of the temporary file's name, which tells who left it behind
        should the process be killed mid-write.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".npz.tmp", dir=folder)
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
