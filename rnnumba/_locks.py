"""File locks that let several processes share one kernel cache folder.

Advisory ``flock`` locks (POSIX); where there are none (Windows), writes go
unlocked, as numba's own cache does, and processes compile side by side.

Lock files are created readable and writable by all (as far as the umask
allows), and a lock file another user created is opened read-only (``flock``
needs no write access): users sharing a cache folder lock each other out too.
"""

import contextlib
import hashlib
import os
import time

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


@contextlib.contextmanager
def locked(folder):
    """Hold an exclusive lock on ``folder/.lock`` (created with the folder).

    Where the file system has no ``flock`` (some network mounts), the body
    runs unlocked, as numba's own cache writes do.
    """
    os.makedirs(folder, exist_ok=True)
    if fcntl is None:  # pragma: no cover
        yield
        return
    with _open(os.path.join(folder, ".lock")) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            held = True
        except OSError:
            held = False
        try:
            yield
        finally:
            if held:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _open(path):
    """Open lock file ``path``, creating it (mode 0o666 less the umask); read-only if it is another user's."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:
        fd = os.open(path, os.O_RDONLY)  # (OSError where it cannot be read either)
    return os.fdopen(fd, "rb")


COMPILE_WAIT = 600.0  # seconds to wait for another process's compile before compiling anyway
WAIT_NOTICE = 2.0  # seconds of waiting before telling ``compile_lock``'s ``waiting``


def compile_lock(folder, name, key, waiting=None):
    """Take the lock on compiling kernel ``name`` for signature ``key`` in cache ``folder``.

    An exclusive ``flock`` on a file of its own under ``folder/.compiling``,
    held while this process compiles the kernel: a process that finds it held
    waits (at most :data:`COMPILE_WAIT` seconds), then loads the kernel from
    the cache. The operating system lets go of the lock of a process that
    dies. The kernels' calls form a DAG, so two processes never wait for each
    other. ``waiting()``, if given, is called once if the wait passes
    :data:`WAIT_NOTICE` seconds. Returns the open lock file, or None where
    there are no locks (no ``fcntl``, or a folder where the lock file cannot
    be made).
    """
    if fcntl is None:  # pragma: no cover
        return None
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    try:
        os.makedirs(os.path.join(folder, ".compiling"), exist_ok=True)
        handle = _open(os.path.join(folder, ".compiling", f"{name}-{digest}.lock"))
    except OSError:
        return None
    start = time.monotonic()
    told = waiting is None
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            waited = time.monotonic() - start
            if waited > COMPILE_WAIT:
                handle.close()
                return None
            if not told and waited > WAIT_NOTICE:
                told = True
                try:
                    waiting()
                except BaseException:
                    handle.close()
                    raise
            time.sleep(0.02)
        except OSError:  # a file system without flock (some network mounts): no lock
            handle.close()
            return None


def unlock(handle):
    """Let go of a lock from :func:`compile_lock`."""
    fcntl.flock(handle, fcntl.LOCK_UN)
    handle.close()


def available(folder):
    """Return whether processes can lock kernels in cache ``folder`` and save them there.

    ``fcntl``, a folder one may write, and a file system with ``flock``
    (tried on a probe file).
    """
    if fcntl is None:  # pragma: no cover
        return False
    try:
        os.makedirs(os.path.join(folder, ".compiling"), exist_ok=True)
        if not os.access(folder, os.W_OK) or not os.access(os.path.join(folder, ".compiling"), os.W_OK):
            return False
        with _open(os.path.join(folder, ".compiling", "probe.lock")) as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(handle, fcntl.LOCK_UN)
    except BlockingIOError:  # another process holds the probe: locks work
        return True
    except OSError:  # an unwritable folder, or no flock there
        return False
    return True
