"""The one place numba options live.

Every compiled function in rnnumba is decorated through :func:`jit`, so that

* nothing is compiled at import (no signatures: numba compiles on first call);
* compiled code is cached on disk, and a read-only install still imports
  (numba's ``cache=True`` raises at decoration when no cache folder is
  writable; here such a function simply compiles per process);
* a cached kernel is thrown away when any rnnumba source file with compiled
  code changes: numba only watches the function's own file, so a cached engine
  would otherwise keep running an old version of a cell it calls;
* fastmath never carries the ``nnan``/``ninf`` flags, so NaN and inf checks keep
  working inside kernels.
"""

import functools
import hashlib
import os

import numba
from numba.core.caching import FunctionCache

# fastmath without nnan/ninf: isfinite() must stay meaningful
FASTMATH = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})

_PACKAGE = os.path.dirname(os.path.abspath(__file__))


@functools.cache
def _package_stamp():
    """Size and mtime of every source file of the package that holds compiled
    code (uses ``@jit`` or ``@intrinsic``), hashed: editing the estimators or the command line
    does not throw the kernels away."""
    digest = hashlib.sha1()
    for folder, _, files in sorted(os.walk(_PACKAGE)):
        for name in sorted(files):
            path = os.path.join(folder, name)
            if not name.endswith(".py"):
                continue
            with open(path, encoding="utf-8") as source:
                text = source.read()
            if "@jit" not in text and "@intrinsic" not in text and path != __file__:
                continue
            st = os.stat(path)
            digest.update(f"{path}:{st.st_mtime_ns}:{st.st_size};".encode())
    return digest.hexdigest()


class _PackageCache(FunctionCache):
    """numba's on-disk cache, keyed on the whole package's source stamp."""

    def __init__(self, py_func):
        super().__init__(py_func)
        self._cache_file._source_stamp = _package_stamp()


def jit(fn=None, *, parallel=False, fastmath=True, inline="never"):
    """Decorate ``fn`` with ``numba.njit``, disk-cached where possible.

    Parameters
    ----------
    fn : callable, optional
        The function; when omitted, a decorator is returned.
    parallel : bool
        Let ``numba.prange`` loops run on several threads.
    fastmath : bool
        Use :data:`FASTMATH` (no ``nnan``/``ninf``).
    inline : {"never", "always"}
        Numba IR inlining, for tiny helpers inside hot loops.
    """

    def decorate(f):
        dispatcher = numba.njit(
            parallel=parallel,
            fastmath=set(FASTMATH) if fastmath else False,
            inline=inline,
            error_model="numpy",
        )(f)
        try:
            dispatcher._cache = _PackageCache(f)  # what cache=True does, with our stamp
        except RuntimeError:  # no writable cache folder: compile in each process
            pass
        return dispatcher

    return decorate if fn is None else decorate(fn)
