"""A second process that compiles half of a cold fit's kernels.

On an empty cache, a first fit compiles its kernels one after the other,
depth first, on one core: the forward walk, the head, the backward walk, the
chunk and epoch loops above them, then prediction. When a training kernel
family starts compiling, this module starts a helper process (``python -c
"...; run(family, dtype, entry)"``) that compiles, at the same time, the kernels
the fit reaches last: the backward walk, the many-to-many head, the solver's
update, then the prediction kernels. Each process loads from the shared cache
what the other has saved, and waits for a kernel the other is compiling
(:mod:`rnnumba._locks`), so nothing compiles twice.

The helper must know the kernels' signatures before the fit's own typing
reaches them: :data:`PLAN` lists them, as numba prints them, recorded by
:func:`record` (run it again when a kernel's arguments change;
``tests/test_prefetch.py`` checks the plan against the signatures training
compiles, so a stale plan fails there; it could never give a wrong result: a
signature nobody calls only costs the helper's time).

No helper where it cannot help: ``RNNUMBA_PREFETCH=0`` in the environment,
one CPU, no file locks (Windows), a frozen executable, or a cache folder nobody
may write.
"""

import atexit
import os
import subprocess
import sys
import threading

import numpy as np

from . import _jit, _locks
from .engine import FAMILIES, kernels

ENTRIES = ("epoch", "loss_and_grad", "chunks_loss_and_grad")  # training kernels called from Python

# what the helper compiles first, in this order (recorded by record())
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


_started = set()


def _cell(family):
    """Return the network options of a kernel family."""
    return {"cell": "gru", "reset_after": False} if family == "gru_cho" else {"cell": family}


def _cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


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


def _spawn(family, dtype, entry):
    if family not in FAMILIES or dtype not in PLAN or (family, dtype) in _started:
        return None
    if os.environ.get("RNNUMBA_PREFETCH", "1") == "0" or _cpus() < 2:
        return None
    if not sys.executable or getattr(sys, "frozen", False):  # no Python to start (embedded, frozen)
        return None
    if not _locks.available(_jit.cache_dir()):
        return None
    _started.add((family, dtype))
    parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # this copy of rnnumba's folder
    env = dict(
        os.environ,
        RNNUMBA_CACHE_DIR=_jit.cache_root(),
        RNNUMBA_PREFETCH="0",  # no helper of the helper
        PYTHONPATH=os.pathsep.join(p for p in (parent, os.environ.get("PYTHONPATH")) if p),
    )
    try:
        helper = subprocess.Popen(
            [sys.executable, "-c", _HELPER.format(args=(family, dtype, entry))],
            cwd=parent,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    except (OSError, ValueError):
        return None
    threading.Thread(target=helper.wait, daemon=True).start()  # reaped when it ends
    atexit.register(_stop, helper)
    return helper


# the helper imports this copy of rnnumba (from its folder, first on the path),
# not one that an editable install's import hook would find first
_HELPER = """
import sys
sys.meta_path = [f for f in sys.meta_path if "__editable___rnnumba" not in getattr(f, "__module__", "")]
from rnnumba._prefetch import run
run{args!r}
"""


def _stop(helper):
    """Stop a helper still compiling when its process exits normally (what it saved stays in the cache)."""
    if helper.poll() is None:
        helper.terminate()
        try:
            helper.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            helper.kill()


def run(family, dtype, entry):
    """Compile (or load) the planned kernels, then the prediction kernels: the helper's work."""
    from .network import RNN
    from .solvers.kernels import epoch_kernel

    kernels(family)
    epoch_kernel(family)  # every kernel of the family made, so that KERNELS holds them
    with _jit.quiet():
        for kernel, argtypes in plan(family, dtype, entry):
            kernel.compile(argtypes)
        net = RNN(2, 3, **_cell(family), dtype=dtype)
        rng = np.random.default_rng(0)
        for N in (2, 40):  # one chunk, then several (as rnnumba.precompile)
            X = rng.normal(size=(N, 3, 2)).astype(dtype)
            net.backend.predict(net.theta, net.prepare(X), False, storage="full")


_RECORD = """
import json, numba.core.event as ev, numpy as np, rnnumba
seen = []
class Listener(ev.Listener):
    def on_start(self, e):
        f = e.data["dispatcher"].py_func
        seen.append((f.__module__ + "." + f.__qualname__, repr(tuple(e.data["args"]))))
    def on_end(self, e):
        pass
rng = np.random.default_rng(0)
X, y = rng.normal(size=(40, 3, 2)).astype({dtype!r}), rng.normal(size=40).astype({dtype!r})
with ev.install_listener("numba:compile", Listener()):
    rnnumba.fit(X, y, hidden=3, **{cell!r}, dtype={dtype!r}, epochs=1)
print(json.dumps(seen))
"""


def record():
    """Print :data:`PLAN` as fits compile it, each family and dtype in a process and empty cache of its own.

    ``python -c "from rnnumba._prefetch import record; record()"`` (about 30 s a family and dtype).
    """
    import json
    import tempfile
    import textwrap

    plans = {}
    for dtype in ("float64", "float32"):
        for family in FAMILIES:
            code = _RECORD.format(dtype=dtype, cell=_cell(family))
            with tempfile.TemporaryDirectory() as cache:
                env = dict(os.environ, RNNUMBA_CACHE_DIR=cache, RNNUMBA_PREFETCH="0", PYTHONWARNINGS="ignore")
                argv = [sys.executable, "-c", code]
                out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
            seen = dict(json.loads(out.stdout.splitlines()[-1]))
            steps = [(name, seen[name.format(family=family)]) for name in PLANNED]
            if plans.setdefault(dtype, steps) != steps:
                raise SystemExit(f"{family} {dtype}: other argument types than {FAMILIES[0]}'s: {steps}")
    print("PLAN = {")
    for dtype, steps in plans.items():
        print(f"    {dtype!r}: [")
        for name, text in steps:
            lines = textwrap.wrap(text, 90, break_long_words=False, drop_whitespace=False)
            assert "".join(lines) == text
            print(f"        (\n            {name!r},")
            print("\n".join(f"            {line!r}" for line in lines) + ",\n        ),")
        print("    ],")
    print("}")


_jit.ON_COMPILE.append(start)
