"""Keep the kernels' work buffers on the heap (glibc).

The kernels allocate their work buffers on every call: states, gates and
gradients of a chunk, from kilobytes up to tens of megabytes. glibc serves an
allocation above its mmap threshold (128 KiB at start) with a fresh ``mmap``
and gives freed memory above its trim threshold back to the system, so such a
buffer pays page faults and zeroing on every call: a training step ran much
slower in a process that loaded the kernels from the disk cache than in one
that had just compiled them (the compiler's own allocations had happened to
raise the thresholds). :func:`tune` raises both thresholds once per process,
the first time a kernel runs; it changes nothing else.
``RNNUMBA_MALLOC=default`` in the environment leaves malloc as it is.
"""

import ctypes
import functools
import os

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed value on 64-bit systems
TRIM_THRESHOLD = 128 << 20


@functools.cache
def tune():
    """Raise glibc's mmap and trim thresholds once; True if it did."""
    if os.environ.get("RNNUMBA_MALLOC") == "default":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows): nothing to do
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
