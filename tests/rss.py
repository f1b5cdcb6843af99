"""The peak memory of one call in a child process, sampled from outside.

The child's own peak counter (``ru_maxrss``) would also hold whatever loading
its kernels took; the parent samples ``VmRSS`` every millisecond instead.
"""

import subprocess
import sys
import time


def rss(pid):
    """Resident memory of process ``pid`` in bytes, or None once it has gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return None


def peak_growth(code):
    """Run ``code`` in a child; return how far its RSS rose during its part after ``ready``.

    ``code`` prints ``ready`` (flushed) once set up, then waits for a line on
    stdin before the call to measure; it must exit with status 0.
    """
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout.readline().strip() == "ready"
    base = peak = rss(child.pid)
    child.stdin.write("go\n")
    child.stdin.flush()
    while child.poll() is None:
        peak = max(peak, rss(child.pid) or 0)
        time.sleep(0.001)
    assert child.returncode == 0
    return peak - base
