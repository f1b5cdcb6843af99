"""Keep BLAS single-threaded while rnnumba's own threads run.

numba's ``np.dot`` calls the OpenBLAS that SciPy ships. The engine already
splits a batch into chunks run on numba's threads; if each of those threads
also asked OpenBLAS for its thread pool, the cores would be oversubscribed
(and OpenBLAS serialises concurrent callers of its pool). :func:`single_threaded`
sets that OpenBLAS to one thread for the duration of a parallel kernel call
and restores it after. Where the library cannot be found (not Linux, another
BLAS) it does nothing.
"""

import ctypes
import functools


@functools.cache
def _controls():
    """(get, set) pairs of SciPy's OpenBLAS thread-count functions."""
    try:
        import scipy.linalg.cython_blas  # noqa: F401  (loads the library numba calls)

        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower()}
    except (ImportError, OSError):
        return ()
    found = []
    for path in sorted(paths):
        if "numpy" in path:  # numpy's own copy: not the one numba calls
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("", "64_"):
                get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if get is not None and put is not None:
                    get.restype, put.argtypes = ctypes.c_int, [ctypes.c_int]
                    found.append((get, put))
    return tuple(found)


class single_threaded:
    """Within the block, SciPy's OpenBLAS runs on one thread (if ``active``).

    A plain class rather than ``contextlib.contextmanager``: it wraps every
    kernel call, so the generator-based manager's overhead would matter at the
    seed's size.

    Parameters
    ----------
    active : bool, default True
        False makes the block a no-op.
    """

    __slots__ = ("active", "saved")

    def __init__(self, active=True):
        self.active = active

    def __enter__(self):
        if self.active:
            self.saved = [(put, get()) for get, put in _controls()]
            for put, _ in self.saved:
                put(1)
        return self

    def __exit__(self, *exc):
        if self.active:
            for put, n in self.saved:
                put(n)
        return False
