"""A second process that compiles half of a cold fit's kernels.

On an empty cache, a first fit compiles its kernels one after the other,
depth first, on one core: the forward walk, the head, the backward walk, the
chunk and epoch loops above them, then prediction. When a training kernel
family starts compiling, this module starts a helper process (``python -c
"...; helper(family, dtype, entry)"``, :func:`rnnumba._precompile.helper`) that
compiles, at the same time, the kernels the fit reaches last: the backward
walk, the many-to-many head, the solver's update, then the prediction kernels,
then the compiled epoch. Each process loads from the shared cache what the
other has saved, and waits for a kernel the other is compiling
(:mod:`rnnumba._locks`), so nothing compiles twice.

The epoch is not on a cold fit's path at all (:func:`compiling`): the fit
runs the epoch's Python body over the compiled minibatch kernels, the same
steps bit for bit, until the helper has compiled the epoch. A helper stopped
because its process exits ends after the kernel it is compiling, so that its
work is not lost.

The helper must know the kernels' signatures before the fit's own typing
reaches them: :data:`PLAN` lists them, as numba prints them, recorded by
``python tests/record_plan.py`` (run it again when a kernel's arguments change;
``tests/test_prefetch.py`` checks the plan against the signatures training
compiles, so a stale plan fails there; it could never give a wrong result: a
signature nobody calls only costs the helper's time).

No helper where it cannot help: ``RNNUMBA_PREFETCH=0`` in the environment,
one CPU (or a container's CPU quota under two), no file locks (Windows), a
frozen executable or an embedded interpreter, or a cache folder nobody may
write. A helper that fails is reported through :mod:`logging` (logger
``"rnnumba"``), with the file that holds its errors; the fit then compiles
what the helper would have.
"""

import atexit
import contextlib
import logging
import os
import subprocess
import sys
import threading

import numpy as np
from numba.core.dispatcher import Dispatcher

from . import _jit, _locks
from ._limits import usable_cpus
from .engine import FAMILIES, kernels

ENTRIES = ("epoch", "loss_and_grad", "chunks_loss_and_grad")  # training kernels called from Python

# what the helper compiles first, in this order (recorded by tests/record_plan.py)
PLANNED = (
    "rnnumba.lockstep.many_head",
    "rnnumba.segments.backward_walk_{family}",
    "rnnumba.solvers.kernels.update",
)

# dtype -> [(kernel, argument types)], in the helper's order; "{family}" stands
# for the cell family (the types are the same for every family)
PLAN = {
    "float64": [
        (
            "rnnumba.lockstep.many_head",
            "(Array(float64, 2, 'C', False, aligned=True), Array(float64, 1, 'C', False, aligned=True),"
            " Array(float64, 3, 'C', False, aligned=True), Array(int64, 1, 'C', False, aligned=True), "
            "Array(float64, 3, 'C', False, aligned=True), int64, int64, float64, Array(float64, 3, 'C',"
            " False, aligned=True), Tuple((Array(float64, 2, 'C', False, aligned=True), Array(float64, "
            "1, 'C', False, aligned=True))))",
        ),
        (
            "rnnumba.segments.backward_walk_{family}",
            "(Tuple((Array(float64, 2, 'C', False, aligned=True), Array(float64, 1, 'C', False, "
            "aligned=True), Array(float64, 1, 'C', False, aligned=True))), Tuple((Array(float64, 2, "
            "'C', False, aligned=True), Array(float64, 1, 'C', False, aligned=True), Array(float64, 1, "
            "'C', False, aligned=True))), Tuple((Array(float64, 3, 'C', False, aligned=True), "
            "Array(float64, 3, 'C', False, aligned=True), int64, int64, int64)), Array(int64, 1, 'C', "
            "False, aligned=True), UniTuple(Array(float64, 3, 'C', False, aligned=True), 2), "
            "Tuple((Array(float64, 3, 'C', False, aligned=True), Array(float64, 2, 'A', False, "
            "aligned=True))), Array(float64, 3, 'C', False, aligned=True), Array(float64, 2, 'C', "
            "False, aligned=True), bool)",
        ),
        (
            "rnnumba.solvers.kernels.update",
            "(Array(float64, 1, 'C', False, aligned=True), Array(float64, 1, 'C', False, aligned=True),"
            " float64, int64, Array(float64, 1, 'C', False, aligned=True), Array(float64, 2, 'C', "
            "False, aligned=True), int64, Array(float64, 1, 'C', False, aligned=True))",
        ),
    ],
    "float32": [
        (
            "rnnumba.lockstep.many_head",
            "(Array(float32, 2, 'C', False, aligned=True), Array(float32, 1, 'C', False, aligned=True),"
            " Array(float32, 3, 'C', False, aligned=True), Array(int64, 1, 'C', False, aligned=True), "
            "Array(float32, 3, 'C', False, aligned=True), int64, int64, float64, Array(float32, 3, 'C',"
            " False, aligned=True), Tuple((Array(float32, 2, 'C', False, aligned=True), Array(float32, "
            "1, 'C', False, aligned=True))))",
        ),
        (
            "rnnumba.segments.backward_walk_{family}",
            "(Tuple((Array(float32, 2, 'C', False, aligned=True), Array(float32, 1, 'C', False, "
            "aligned=True), Array(float32, 1, 'C', False, aligned=True))), Tuple((Array(float32, 2, "
            "'C', False, aligned=True), Array(float32, 1, 'C', False, aligned=True), Array(float32, 1, "
            "'C', False, aligned=True))), Tuple((Array(float32, 3, 'C', False, aligned=True), "
            "Array(float32, 3, 'C', False, aligned=True), int64, int64, int64)), Array(int64, 1, 'C', "
            "False, aligned=True), UniTuple(Array(float32, 3, 'C', False, aligned=True), 2), "
            "Tuple((Array(float32, 3, 'C', False, aligned=True), Array(float32, 2, 'A', False, "
            "aligned=True))), Array(float32, 3, 'C', False, aligned=True), Array(float32, 2, 'C', "
            "False, aligned=True), bool)",
        ),
        (
            "rnnumba.solvers.kernels.update",
            "(Array(float32, 1, 'C', False, aligned=True), Array(float32, 1, 'C', False, aligned=True),"
            " float64, int64, Array(float64, 1, 'C', False, aligned=True), Array(float32, 2, 'C', "
            "False, aligned=True), int64, Array(float32, 1, 'C', False, aligned=True))",
        ),
    ],
}


def plan(family, dtype, entry):
    """Return ``[(dispatcher, argument types)]`` the helper compiles for a training ``entry``."""
    from numba.core import types

    names = {**vars(types), "bool": types.boolean}  # (numba names it "bool" only with NumPy 2)
    steps = []
    for name, text in PLAN[dtype]:
        if name.endswith(".update") and entry != "epoch":
            continue
        kernel = _jit.KERNELS[name.format(family=family)]
        steps.append((kernel, eval(text, {"__builtins__": {}}, names)))  # noqa: S307 (our own constants)
    return steps


_started = {}  # (family, dtype) -> (helper process, entry) of the helpers this process started
_stopped = set()  # pids of the helpers it stopped on its way out


def start(qualname, dtype):
    """Start the helper when a training kernel ``qualname`` compiles (``_jit.ON_COMPILE``'s hook).

    Once per family and dtype in a process; returns the process, or None.
    """
    for entry in ENTRIES:
        if qualname.startswith(entry + "_"):
            return _spawn(qualname[len(entry) + 1 :], dtype, entry)
    return None


def training(family, dtype):
    """Start the helper ahead of a training run whose first compile is prediction.

    ``rnnumba toy`` reports the test error before its first epoch. Nothing
    happens where the cache holds the family's BPTT kernels already.
    """
    dtype = str(np.dtype(dtype))
    if dtype not in PLAN or family not in FAMILIES:
        return None
    kernels(family)  # the walks made, so that KERNELS holds them (none under NUMBA_DISABLE_JIT)
    walk = _jit.KERNELS.get(PLANNED[1].format(family=family))
    if walk is None or _jit.in_cache(walk, dict(plan(family, dtype, "epoch"))[walk]):
        return None
    return _spawn(family, dtype, "epoch")


def compiling(epoch, args, family):
    """Return the helper process that compiles a fit's ``epoch`` for ``args``, or None.

    The helper compiles the epoch of the default storage last
    (``rnnumba.solvers.kernels.epoch_kernel(family)``); it is started here
    unless it runs already. None where the epoch is compiled in this process or
    in the disk cache for ``args``, for another storage, under
    ``NUMBA_DISABLE_JIT``, or where no helper runs nor can start: the fit then
    calls the epoch, compiling it if it must.
    """
    from .solvers.kernels import epoch_kernel  # (solvers import this module)

    if not isinstance(epoch, Dispatcher) or family not in FAMILIES or epoch is not epoch_kernel(family):
        return None
    argtypes = tuple(epoch.typeof_pyval(a) for a in args)
    if argtypes in epoch.overloads or _jit.in_cache(epoch, argtypes):
        return None
    dtype = str(args[0].dtype)
    helper, entry = _started.get((family, dtype), (None, None))
    if (family, dtype) not in _started:  # (a start tried once is remembered there, failed or not)
        helper, entry = _spawn(family, dtype, "epoch"), "epoch"
    return helper if helper is not None and entry == "epoch" and helper.poll() is None else None


def _spawn(family, dtype, entry):
    if family not in FAMILIES or dtype not in PLAN or (family, dtype) in _started:
        return None
    if os.environ.get("RNNUMBA_PREFETCH", "1") == "0" or usable_cpus() < 2 or not _python():
        return None
    folder = _jit.cache_dir()
    if not _locks.available(folder):
        return None
    _started[family, dtype] = (None, entry)  # (tried once only)
    parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # this copy of rnnumba's folder
    env = dict(os.environ, RNNUMBA_CACHE_DIR=_jit.cache_root(), RNNUMBA_PREFETCH="0")  # no helper's helper
    log = os.path.join(folder, ".compiling", f"helper-{family}-{dtype}-{os.getpid()}.log")
    try:
        with open(log, "w") as stderr:  # (the child keeps its own handle)
            helper = subprocess.Popen(
                [sys.executable, "-c", _HELPER.format(parent=parent, args=(family, dtype, entry))],
                cwd=parent,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
    except (OSError, ValueError):
        return None
    _started[family, dtype] = (helper, entry)
    threading.Thread(target=_reap, args=(helper, log), daemon=True).start()
    atexit.register(_stop, helper)
    return helper


def _python():
    """Return whether ``sys.executable`` is a Python interpreter that can start the helper.

    Not a frozen program, and not a host program embedding Python (uWSGI,
    Blender), whose ``sys.executable`` is the host.
    """
    if not sys.executable or getattr(sys, "frozen", False):
        return False
    name = os.path.basename(sys.executable).lower()
    return name.startswith(("python", "pypy"))


# the helper imports this copy of rnnumba (its folder first on the path), not
# one that an editable install's import hook would find first
_HELPER = """
import sys
sys.path.insert(0, {parent!r})
sys.meta_path = [f for f in sys.meta_path if "__editable___rnnumba" not in getattr(f, "__module__", "")]
from rnnumba._precompile import helper
helper{args!r}
"""


def _reap(helper, log):
    """Wait for the helper; say so if it failed (the fit compiles what it would have), else drop its log."""
    code = helper.wait()
    if code and helper.pid not in _stopped:  # (a negative code: killed by that signal)
        logging.getLogger("rnnumba").warning(
            "rnnumba's compile helper (pid %d) failed with exit code %d; the fit compiles on its own. "
            "Its errors are in %s. Set RNNUMBA_PREFETCH=0 to start none.",
            helper.pid,
            code,
            log,
        )
        return
    with contextlib.suppress(OSError):
        os.remove(log)


def _stop(helper):
    """Ask a helper still compiling to stop when its process exits normally.

    It ends after the kernel it is compiling (:func:`rnnumba._precompile.helper`),
    which it saves to the cache; this process does not wait for it.
    """
    if helper.poll() is None:
        _stopped.add(helper.pid)
        with contextlib.suppress(OSError):
            helper.terminate()


_jit.ON_COMPILE.append(start)
