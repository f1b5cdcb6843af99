"""File locks that let several processes share one kernel cache folder.

Advisory ``flock`` locks (POSIX); where there are none (Windows), writes go
unlocked, as numba's own cache does, and processes compile side by side.
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
    with open(os.path.join(folder, ".lock"), "a+b") as handle:
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


COMPILE_WAIT = 600.0  # seconds to wait for another process's compile before compiling anyway


def compile_lock(folder, name, key):
    """Take the lock on compiling kernel ``name`` for signature ``key`` in cache ``folder``.

    An exclusive ``flock`` on a file of its own under ``folder/.compiling``,
    held while this process compiles the kernel: a process that finds it held
    waits (at most :data:`COMPILE_WAIT` seconds), then loads the kernel from
    the cache. The operating system lets go of the lock of a process that
    dies. The kernels' calls form a DAG, so two processes never wait for each
    other. Returns the open lock file, or None where there are no locks (no
    ``fcntl``, or a folder nobody may write).
    """
    if fcntl is None:  # pragma: no cover
        return None
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    try:
        os.makedirs(os.path.join(folder, ".compiling"), exist_ok=True)
        handle = open(os.path.join(folder, ".compiling", f"{name}-{digest}.lock"), "a+b")  # noqa: SIM115
    except OSError:
        return None
    deadline = time.monotonic() + COMPILE_WAIT
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if time.monotonic() > deadline:
                handle.close()
                return None
            time.sleep(0.02)
        except OSError:  # a file system without flock (some network mounts): no lock
            handle.close()
            return None


def unlock(handle):
    """Let go of a lock from :func:`compile_lock`."""
    fcntl.flock(handle, fcntl.LOCK_UN)
    handle.close()


def available(folder):
    """Return whether processes can lock kernels in cache ``folder``.

    ``fcntl``, a folder one may write, and a file system with ``flock``
    (tried on a probe file).
    """
    if fcntl is None:  # pragma: no cover
        return False
    try:
        os.makedirs(os.path.join(folder, ".compiling"), exist_ok=True)
        with open(os.path.join(folder, ".compiling", "probe.lock"), "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(handle, fcntl.LOCK_UN)
    except BlockingIOError:  # another process holds the probe: locks work
        return True
    except OSError:  # an unwritable folder, or no flock there
        return False
    return True
