"""The one place numba options live.

Every compiled function in rnnumba is decorated through :func:`jit`, so that

* nothing is compiled at import (no signatures: numba compiles on first call);
* compiled code is cached on disk, and a read-only install still imports
  (``cache=True`` raises at decoration when no cache locator is writable);
* fastmath never carries the ``nnan``/``ninf`` flags, so NaN and inf checks keep
  working inside kernels.
"""

import numba

# fastmath without nnan/ninf: isfinite() must stay meaningful
FASTMATH = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})


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
        options = dict(
            parallel=parallel,
            fastmath=set(FASTMATH) if fastmath else False,
            inline=inline,
            error_model="numpy",
        )
        try:
            return numba.njit(cache=True, **options)(f)
        except RuntimeError:  # no writable cache locator: compile per process
            return numba.njit(cache=False, **options)(f)

    return decorate if fn is None else decorate(fn)
