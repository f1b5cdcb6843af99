"""What the machine, and a container around it, let this process use: CPUs and memory.

A container's limits live in its cgroup, which ``os.sched_getaffinity`` and
``/proc/meminfo`` do not see: a Docker container started with ``--cpus 1`` on a
16-core host has 16 CPUs in its affinity mask and one CPU's worth of time.
Both cgroup versions are read (v2: ``/sys/fs/cgroup/cpu.max`` and
``memory.max``; v1: ``cpu/cpu.cfs_quota_us`` and ``memory/memory.limit_in_bytes``).
"""

import math
import os

try:
    import resource
except ImportError:  # pragma: no cover - not on Windows: no address-space limit to read
    resource = None

CGROUP = "/sys/fs/cgroup"
# (limit, usage) files of the cgroup's memory: v2, then v1
_MEMORY = (("memory.max", "memory.current"), ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes"))


def usable_cpus():
    """Return the number of CPUs this process may keep busy (at least 1).

    The CPUs it may run on (its affinity), or fewer under a cgroup CPU quota
    (rounded up: a quota of 1.5 CPUs counts as 2).

    Examples
    --------
    >>> from rnnumba._limits import usable_cpus
    >>> 1 <= usable_cpus() <= (os.cpu_count() or 1)
    True
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        cpus = os.cpu_count() or 1
    quota = _cpu_quota()
    return max(1, min(cpus, math.ceil(quota)) if quota else cpus)


def _cpu_quota():
    """CPUs' worth of time a cgroup quota allows, or None without one."""
    v2 = _read_words(os.path.join(CGROUP, "cpu.max"))  # "max 100000" or "150000 100000"
    if v2 is not None:
        quota, period = (v2 + ["100000"])[:2]
    else:
        folder = os.path.join(CGROUP, "cpu")  # (also mounted as "cpu,cpuacct"; "cpu" links to it)
        quota = _read_int(os.path.join(folder, "cpu.cfs_quota_us"), signed=True)  # -1: none
        period = _read_int(os.path.join(folder, "cpu.cfs_period_us"))
    try:
        quota, period = int(quota), int(period)
    except (TypeError, ValueError):  # "max", or nothing readable
        return None
    return quota / period if quota > 0 and period > 0 else None


def available_bytes():
    """Bytes this process may still allocate, or None where nothing can be read.

    The least of: the machine's available memory (``MemAvailable``), the room
    under a cgroup memory limit (v2 or v1), and the room under an
    address-space limit (``RLIMIT_AS``) given the process's current size.

    Returns
    -------
    int or None
        Bytes.

    Examples
    --------
    >>> from rnnumba.memory import available_bytes
    >>> have = available_bytes()
    >>> have is None or have > 0
    True
    """
    room = []
    meminfo = _read_kb("/proc/meminfo", "MemAvailable:")
    if meminfo is not None:
        room.append(meminfo)
    for limit, used in _MEMORY:
        limit, used = _read_int(os.path.join(CGROUP, limit)), _read_int(os.path.join(CGROUP, used))
        if limit is not None and used is not None:  # (v2 "max": no limit; v1 says ~2**63)
            room.append(limit - used)
    soft, _ = resource.getrlimit(resource.RLIMIT_AS) if resource else (-1, -1)
    size = _read_kb("/proc/self/status", "VmSize:")
    if resource and soft != resource.RLIM_INFINITY and size is not None:
        room.append(soft - size)
    return max(0, min(room)) if room else None


def _read_words(path):
    try:
        with open(path) as fh:
            return fh.read().split()
    except OSError:
        return None


def _read_kb(path, key):
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _read_int(path, signed=False):
    words = _read_words(path)
    text = words[0] if words else ""
    digits = text[1:] if signed and text.startswith("-") else text
    return int(text) if digits.isdigit() else None
