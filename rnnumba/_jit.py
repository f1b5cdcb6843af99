"""The one place numba options and the kernel cache live.

Every compiled function in rnnumba is decorated through :func:`jit`, so that

* nothing is compiled at import (no signatures: numba compiles on first call);
* compiled code is cached on disk, in a folder named after the *contents* of
  the package's compiled sources (:func:`cache_dir`): reinstalling the same
  version, or touching a file without changing it, keeps the cache, and any
  change of a kernel's source (or of a helper it calls, or of a module whose
  constants it reads, in another file) starts a new one;
* several processes may fill one cache folder at once (Dask workers, parallel
  ``rnnumba compile`` jobs): writes hold a file lock, and a kernel one process
  is compiling, another waits for and then loads, instead of compiling it
  too (:mod:`rnnumba._locks`), saying so after two seconds;
* a read-only install, or a cache folder nobody may write, still works: the
  kernels are then read from the cache if it holds them, else compiled in
  each process;
* kernels built by factories (one family per cell) are cached under names of
  their own (``name=``), keyed on what their closures hold, not on
  ``pickle`` of it;
* the user is told, in one line, when a call has to compile
  (:class:`CompileWarning`), and nothing is said on a cache hit;
* a *driver* (``driver=True``: a kernel whose work is in the kernels it
  calls, such as the chunk loops and the epoch) is optimised on its own and
  calls the machine code its callees have already, instead of linking,
  optimising and emitting them again (:mod:`rnnumba._codegen`, which also
  copies the IR of inlined helpers faster);
* fastmath never carries the ``nnan``/``ninf`` flags, so NaN and inf checks keep
  working inside kernels.
"""

import contextlib
import functools
import hashlib
import logging
import os
import sys
import threading
import warnings

import numba
from numba.core import config, sigutils
from numba.core import event as _event
from numba.core.caching import CompileResultCacheImpl, FunctionCache, _CacheLocator
from numba.core.dispatcher import Dispatcher
from numba.core.runtime import rtsys as _rtsys

from . import _codegen
from ._locks import compile_lock, locked, unlock
from ._sources import stamp

# fastmath without nnan/ninf: isfinite() must stay meaningful
FASTMATH = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})

_PACKAGE = os.path.dirname(os.path.abspath(__file__))
_NUMBA = os.path.dirname(os.path.abspath(numba.__file__))


def cache_root():
    """Return the folder under which compiled kernels are cached.

    ``RNNUMBA_CACHE_DIR``, else ``NUMBA_CACHE_DIR``, else the user's cache
    folder (``$XDG_CACHE_HOME/rnnumba``, by default ``~/.cache/rnnumba``).
    """
    root = os.environ.get("RNNUMBA_CACHE_DIR") or config.CACHE_DIR
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "rnnumba")
    return os.path.abspath(root)


def cache_dir():
    """Return the folder of this installation's compiled kernels.

    One folder per content of the compiled sources, below :func:`cache_root`.

    Returns
    -------
    str
        An absolute path (it may not exist before the first compile).

    Examples
    --------
    >>> import os
    >>> import rnnumba
    >>> os.path.basename(rnnumba.cache_dir()).startswith("kernels-")
    True
    """
    return os.path.join(cache_root(), f"kernels-{stamp()[:16]}")


class _Locator(_CacheLocator):
    """Cache files of rnnumba's kernels go to :func:`cache_dir`."""

    def __init__(self, py_func, py_file):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno

    def ensure_cache_path(self):
        os.makedirs(self.get_cache_path(), exist_ok=True)  # writability: see _PackageCache

    def get_cache_path(self):
        return cache_dir()

    def get_source_stamp(self):
        return stamp()

    def get_disambiguator(self):
        return str(self._lineno)

    @classmethod
    def from_function(cls, py_func, py_file):
        return cls(py_func, py_file)


class _Impl(CompileResultCacheImpl):
    _locator_classes = [_Locator]


_unwritable = set()  # cache folders found read-only in this process (said once each)
# numba's (0.68) private steps of Cache.load_overload after its refresh; without them, numba's own
_LOAD_STEPS = ("_guard_against_spurious_io_errors", "_load_overload")
_LOAD_ALONE = all(hasattr(FunctionCache, name) for name in _LOAD_STEPS)


class _PackageCache(FunctionCache):
    """Numba's on-disk cache of compiled functions, for rnnumba's kernels.

    Kept in :func:`cache_dir`, written under a file lock, read-only where it
    cannot be written.
    """

    _impl_class = _Impl

    def __init__(self, py_func):
        super().__init__(py_func)
        self._held = {}  # signature -> the compile lock this process holds while compiling it

    def _index_key(self, sig, codegen):
        # numba pickles a closure's cell contents into the key; a dispatcher
        # pickles with a random id, so a factory-built kernel would never hit.
        # The family's identity is its cell values' names (the sources are in
        # the folder name already).
        cells = self._py_func.__closure__ or ()
        described = ";".join(_describe(c.cell_contents) for c in cells)
        code = hashlib.sha256(self._py_func.__code__.co_code + described.encode()).hexdigest()
        # (a driver's entry holds its callees' objects where _codegen links them by symbol)
        return (sig, codegen.magic_tuple(), code, _codegen.DRIVERS_LINKED_ONCE)

    def load_overload(self, sig, target_context):
        """Load ``sig`` from the cache; on a miss, take its compile lock (``_locks.compile_lock``).

        If another process is compiling the same kernel, wait for it and load
        what it saved. Otherwise return None with the lock held, so that this
        process compiles; :meth:`save_overload` (or a failed compile, through
        :meth:`release`) lets it go.
        """
        cres = self._load(sig, target_context)
        key = _signature_key(sig)
        if cres is not None or key in self._held or self._cache_path in _unwritable:
            return cres
        waiting = functools.partial(_waiting, self._py_func.__qualname__, self._cache_path)
        name = self._impl.filename_base
        lock = compile_lock(self._cache_path, name, _lock_key(sig, target_context), waiting)
        if lock is None:  # no locks here: compile without one
            return None
        try:
            cres = self._load(sig, target_context)  # saved by the process we waited for?
        except BaseException:
            unlock(lock)
            raise
        if cres is not None:
            unlock(lock)
            return cres
        self._held[key] = lock
        return None

    def holds(self, sig, target_context):
        """Return whether the cache holds ``sig`` (without loading it)."""
        try:
            return self._index_key(sig, target_context.codegen()) in self._cache_file._load_index()
        except OSError:
            return False

    def _load(self, sig, target_context):
        """Load ``sig`` from the disk cache, or return None.

        numba's ``load_overload`` first refreshes the target context, importing
        and installing every implementation numba has: about a tenth of a
        second in a process's first call, which only a compile needs. Loading
        needs numba's runtime alone, so a process that only loads skips the
        rest (a compile still refreshes first).
        """
        try:
            with _codegen.loading():  # (a kernel: drivers call its machine code by symbol)
                if not _LOAD_ALONE:
                    return super().load_overload(sig, target_context)
                _rtsys.initialize(target_context)
                with self._guard_against_spurious_io_errors():
                    return self._load_overload(sig, target_context)
        except OSError:  # an unreadable cache: compile instead
            return None

    def save_overload(self, sig, data):
        try:
            with locked(self._cache_path):
                super().save_overload(sig, data)
        except OSError as exc:
            if self._cache_path not in _unwritable:
                _unwritable.add(self._cache_path)
                warnings.warn(
                    f"rnnumba cannot write its kernel cache in {self._cache_path} ({exc.strerror or exc}); "
                    "kernels will compile in every process. Set RNNUMBA_CACHE_DIR to a writable folder.",
                    CompileWarning,
                    stacklevel=2,
                )
        finally:
            self.release(sig)

    def release(self, sig):
        """Let go of the compile lock of ``sig``, if this process holds it."""
        lock = self._held.pop(_signature_key(sig), None)
        if lock is not None:
            unlock(lock)


def _lock_key(sig, target_context):
    """Return the compile lock's key: the signature, and the CPU the code is for (as in numba's index)."""
    return f"{_signature_key(sig)} {target_context.codegen().magic_tuple()}"


def _waiting(qualname, folder):
    """Say that a call waits for another process compiling ``qualname``.

    Only for a call from Python (inside a compile, the compile notice was
    given), and not inside :func:`quiet`.
    """
    if not _notice.quiet and not _notice.stack():
        _warn_outside(
            f"waiting for another process compiling rnnumba's {qualname} into {folder}; "
            "this process loads it from there when it is done",
            CompileWarning,
        )


def _signature_key(sig):
    """Return the argument types of ``sig`` (a tuple of types, or a signature) as text."""
    return repr(tuple(sigutils.normalize_signature(sig)[0]))


def _describe(value):
    """Describe a closure cell's value for the cache key: a dispatcher by its qualified name."""
    if isinstance(value, Dispatcher):
        return f"{value.py_func.__module__}.{value.py_func.__qualname__}"
    return repr(value)


KERNELS = {}  # "module.qualified name" -> dispatcher, of every kernel made so far
_DRIVERS = set()  # qualified names of the functions compiled as drivers


def in_cache(kernel, argtypes):
    """Return whether the disk cache holds ``kernel`` (from :func:`jit`) compiled for ``argtypes``."""
    cache = getattr(kernel, "_cache", None)
    return isinstance(cache, _PackageCache) and cache.holds(tuple(argtypes), kernel.targetctx)


def jit(fn=None, *, parallel=False, fastmath=True, inline="never", name=None, driver=False):
    """Decorate ``fn`` with ``numba.njit``, disk-cached (see the module docstring).

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
    name : str, optional
        The name the compiled function is cached (and reported) under; needed
        for functions made by a factory, which all share one Python name.
    driver : bool
        Link the compiled callees without optimising them again (see the
        module docstring): for functions whose own loops are light.
    """

    def decorate(f):
        if name is not None:
            f.__name__ = name
            f.__qualname__ = name
        if driver:
            _DRIVERS.add(f.__qualname__)
        dispatcher = numba.njit(
            parallel=parallel,
            fastmath=set(FASTMATH) if fastmath else False,
            inline=inline,
            error_model="numpy",
        )(f)
        if isinstance(dispatcher, Dispatcher):  # not under NUMBA_DISABLE_JIT
            dispatcher._cache = _PackageCache(f)  # what cache=True does, in our folder
            KERNELS[f"{f.__module__}.{f.__qualname__}"] = dispatcher
        return dispatcher

    return decorate if fn is None else decorate(fn)


# -- saying what is happening -----------------------------------------------------------------


class CompileWarning(UserWarning):
    """A call had to compile rnnumba's kernels (once; later processes load them from the disk cache).

    Silence it with ``warnings.simplefilter("ignore", rnnumba.CompileWarning)``.

    Examples
    --------
    >>> import warnings
    >>> import rnnumba
    >>> issubclass(rnnumba.CompileWarning, UserWarning)
    True
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", rnnumba.CompileWarning)   # no notice, compiled or not
    ...     net = rnnumba.RNN(1, 4, random_state=0)
    ...     _ = net.predict([[0.1, 0.2, 0.3]])
    """


class _Notice(_event.Listener):
    """Listener of numba's compile events: the compile notice and the stack of compiling functions.

    Says, once per compile of a driver called from Python (a kernel family's
    entry point), which kernels compile; and keeps the stack of functions
    compiling in each thread, for :func:`_finalize_driver`.
    """

    def __init__(self):
        self.local = threading.local()
        self.quiet = 0  # > 0 inside quiet(): precompile reports on its own

    def on_start(self, event):
        func = getattr(event.data.get("dispatcher"), "py_func", None)  # None: lifted loops, other targets
        ours = func is not None and getattr(func, "__module__", "").startswith("rnnumba")
        stack = self.stack()
        stack.append(func.__qualname__ if ours else None)
        if len(stack) > 1 or self.quiet or stack[0] not in _DRIVERS:  # helpers: well under a second
            return
        dtypes = [str(getattr(a, "dtype", "")) for a in event.data.get("args", ())]
        floats = [d for d in dtypes if d.startswith("float")]
        what = func.__qualname__ + (f" for {floats[0]}" if floats else "")
        for hook in ON_COMPILE:  # (rnnumba._prefetch's helper process): never fails a compile
            try:
                hook(func.__qualname__, floats[0] if floats else None)
            except Exception:
                logging.getLogger("rnnumba").warning("rnnumba's compile hook %r failed", hook, exc_info=True)
        # (raised, with warnings as errors: numba still sends the end event)
        _warn_outside(
            f"compiling rnnumba's {what}, once: later runs load it from the cache in {cache_dir()} "
            "('rnnumba compile' fills it ahead of time)",
            CompileWarning,
        )

    def on_end(self, event):
        self.stack().pop()
        dispatcher = event.data.get("dispatcher")
        cache = getattr(dispatcher, "_cache", None)
        # a failed compile adds no overload, and no save_overload is to come (this
        # asks the dispatcher: numba 0.68's Event.is_failed answers the opposite)
        args = tuple(event.data.get("args", ()))
        if isinstance(cache, _PackageCache) and args not in dispatcher.overloads:
            cache.release(args)

    def stack(self):
        """Return the qualified names of the functions compiling in this thread.

        Outermost first; None for functions outside rnnumba.
        """
        try:
            return self.local.stack
        except AttributeError:
            self.local.stack = []
            return self.local.stack


# f(qualified name, float dtype or None), called when a driver called from
# Python starts compiling (where the compile notice is given)
ON_COMPILE = []
_notice = _Notice()
_event.register("numba:compile", _notice)


@contextlib.contextmanager
def quiet():
    """No :class:`CompileWarning` inside the block."""
    _notice.quiet += 1
    try:
        yield
    finally:
        _notice.quiet -= 1


_STDLIB = os.path.dirname(os.path.abspath(contextlib.__file__))


def _warn_outside(message, category):
    """Warn at the first frame outside numba, rnnumba and the standard library (the user's call)."""
    frame = sys._getframe(1)
    while frame is not None and (frame.f_code.co_filename.startswith((_PACKAGE, _NUMBA, _STDLIB, "<frozen"))):
        frame = frame.f_back
    if frame is None:
        warnings.warn(message, category, stacklevel=2)
        return
    registry = frame.f_globals.setdefault("__warningregistry__", {})
    warnings.warn_explicit(
        message, category, frame.f_code.co_filename, frame.f_lineno, frame.f_globals.get("__name__"), registry
    )


_codegen.install(_notice.stack, _DRIVERS)
