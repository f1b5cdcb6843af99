"""A cold fit's compile helper (``rnnumba._prefetch``) and the compile locks that
let several processes share one cache folder (``rnnumba._locks``)."""

import json
import logging
import os
import subprocess
import sys
import time

import pytest
from numba.core import types
from numba.core.caching import NullCache
from test_coldstart import ROOT, run_python

import rnnumba
from rnnumba import _jit, _locks, _prefetch
from rnnumba.validation import first_nonfinite


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("family", _prefetch.FAMILIES)
def test_the_plan_is_what_training_compiles(family, dtype):
    """Every kernel the helper compiles has the signature that training
    compiled into the cache (by ``rnnumba.precompile``, as a fit would): a
    stale plan fails here."""
    rnnumba.precompile(cells=family, dtypes=dtype)  # loads, where CI's `rnnumba compile` ran
    steps = _prefetch.plan(family, dtype, "epoch")
    names = [kernel.py_func.__qualname__ for kernel, _ in steps]
    assert names == ["many_head", f"backward_walk_{family}", "update"]
    for kernel, argtypes in steps:
        assert _jit.in_cache(kernel, argtypes), kernel.py_func.__qualname__
    assert not _jit.in_cache(steps[0][0], (types.int64,))  # a signature nobody compiled
    assert steps[1][1][-1] == types.boolean  # "bool", whatever NumPy numba runs with
    # the full-batch objectives use no optimiser update
    assert [k.py_func.__qualname__ for k, _ in _prefetch.plan(family, dtype, "loss_and_grad")] == names[:2]


def test_a_helper_starts_only_for_training_on_a_cold_cache(monkeypatch):
    """Prediction alone, an unknown family or dtype, ``RNNUMBA_PREFETCH=0`` and
    a cache that holds the training kernels start no helper."""
    assert _prefetch.start("predict_elman", "float64") is None
    assert _prefetch.start("chunk_predict_lstm", "float32") is None
    assert _prefetch.start("epoch_elman_ck", "float64") is None  # checkpointed BPTT: no plan
    assert _prefetch.start("epoch_elman", "float16") is None
    rnnumba.precompile(cells="elman", dtypes="float64")
    assert _prefetch.training("elman", "float64") is None  # the cache holds them
    monkeypatch.setenv("RNNUMBA_PREFETCH", "0")
    assert _prefetch.start("epoch_gru_cho", "float64") is None


def test_a_failed_compile_lets_go_of_its_lock(monkeypatch):
    """A compile that fails (here, a typing error) leaves no compile lock held,
    so no other process waits for it."""
    with pytest.raises(Exception, match="(?i)typing|resolution"):
        first_nonfinite("text", 3)
    cache = first_nonfinite._cache
    assert not cache._held
    monkeypatch.setattr(_locks, "COMPILE_WAIT", 0.5)
    key = _jit._lock_key((types.unicode_type, types.int64), first_nonfinite.targetctx)
    lock = _locks.compile_lock(cache._cache_path, cache._impl.filename_base, key)
    assert lock is not None  # not held by a handle this process leaked
    _locks.unlock(lock)


def test_a_failing_hook_never_fails_a_compile():
    """An error in an ON_COMPILE hook (such as the helper's start) is not the user's."""

    def broken(qualname, dtype):
        raise TypeError("no executable")

    def driver(x):
        return x + 1

    driver.__module__ = "rnnumba.hook_test"  # the notice and its hooks are for rnnumba's drivers
    driver = _jit.jit(driver, driver=True, name="driver_for_a_hook_test")
    driver._cache = NullCache()  # compiled in every run, never loaded
    _jit.ON_COMPILE.append(broken)
    try:
        with pytest.warns(rnnumba.CompileWarning):
            assert driver(41) == 42
    finally:
        _jit.ON_COMPILE.remove(broken)


@pytest.mark.parametrize(
    ("code", "reported"),
    [
        ("import sys; sys.stderr.write('no numba here'); sys.exit(3)", "exit code 3"),
        ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", "exit code -9"),  # e.g. out of memory
        ("pass", None),
    ],
)
def test_a_failing_helper_is_reported_with_its_errors(tmp_path, monkeypatch, caplog, code, reported):
    """A helper that fails says so through logging, naming the file with its
    errors; one that ends well leaves no file behind."""
    monkeypatch.setenv("RNNUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_prefetch, "usable_cpus", lambda: 2)
    monkeypatch.setattr(_prefetch, "_HELPER", code)
    monkeypatch.setattr(_prefetch, "_started", {})
    logs = os.path.join(_jit.cache_dir(), ".compiling")
    with caplog.at_level(logging.WARNING, logger="rnnumba"):
        helper = _prefetch._spawn("elman", "float64", "epoch")
        assert helper is not None
        helper.wait(timeout=60)
        for _ in range(500):  # the reaper thread reports, or tidies, just after
            said = [r.getMessage() for r in caplog.records if f"pid {helper.pid}" in r.getMessage()]
            left = [f for f in os.listdir(logs) if f.startswith("helper-elman")]
            if said or not left:
                break
            time.sleep(0.01)
    if reported is None:
        assert not said and not left  # ended well: nothing said, its log removed
        return
    assert len(said) == 1 and reported in said[0], said
    log = said[0].split("Its errors are in ")[1].split(". Set")[0]
    with open(log) as f:
        assert f.read() == ("no numba here" if "exit code 3" in reported else "")


@pytest.mark.parametrize("entry", ["epoch", "loss_and_grad"])
def test_a_helper_asked_to_stop_finishes_the_kernel_it_is_compiling(monkeypatch, entry):
    """The helper's work: the planned kernels, prediction, then (for epochs) the
    epoch. SIGTERM (its process exiting) lets the kernel being compiled finish,
    and saved, and starts no other."""
    import signal

    from rnnumba import _precompile

    done = []

    class Kernel:
        def __init__(self, name, stop=False):
            self.name, self.stop = name, stop

        def compile(self, argtypes):
            if self.stop:
                os.kill(os.getpid(), signal.SIGTERM)  # (handled between bytecodes: before the append)
            done.append(self.name)

    monkeypatch.setattr(_precompile, "predictions", lambda net: done.append("predictions"))
    monkeypatch.setattr(_precompile, "epoch", lambda net: done.append("epoch"))
    previous = signal.getsignal(signal.SIGTERM)
    try:
        monkeypatch.setattr(_prefetch, "plan", lambda *a: [(Kernel("a"), ()), (Kernel("b"), ())])
        _precompile.helper("elman", "float64", entry)
        assert done == ["a", "b", "predictions", *(["epoch"] if entry == "epoch" else [])]
        done.clear()
        monkeypatch.setattr(_prefetch, "plan", lambda *a: [(Kernel("a", stop=True), ()), (Kernel("b"), ())])
        _precompile.helper("elman", "float64", entry)
        assert done == ["a"]
    finally:
        signal.signal(signal.SIGTERM, previous)
        _precompile._Stop.asked = False


@pytest.mark.parametrize(
    ("executable", "python"),
    [("/usr/bin/python3.11", True), ("/venv/bin/python", True), ("/opt/pypy3/bin/pypy3", True),
     ("/usr/bin/uwsgi", False), ("/Applications/Blender.app/Contents/MacOS/Blender", False), ("", False)],
)  # fmt: skip
def test_no_helper_from_a_program_embedding_python(monkeypatch, executable, python):
    monkeypatch.setattr(sys, "executable", executable)
    assert _prefetch._python() is python


def test_no_helper_without_compiled_kernels():
    """Under NUMBA_DISABLE_JIT (plain Python kernels) ``rnnumba toy``'s call starts nothing."""
    run = run_python(
        "from rnnumba._prefetch import training; print(training('elman', 'float64'))",
        NUMBA_DISABLE_JIT="1",
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["None"]


def test_no_lock_on_a_file_system_without_flock(tmp_path, monkeypatch):
    """Where flock fails (some network mounts), processes compile and write the
    cache without a lock, and start no helper."""

    def flock(handle, op):
        raise OSError(37, "No locks available")

    assert _locks.available(str(tmp_path))
    monkeypatch.setattr(_locks.fcntl, "flock", flock)
    assert _locks.compile_lock(str(tmp_path), "kernel", "(int64,)") is None
    assert not _locks.available(str(tmp_path))  # so no helper: its saves would race the fit's
    with _locks.locked(str(tmp_path / "kernels")):  # the cache's writes go on, unlocked
        (tmp_path / "kernels" / "index").write_text("written")
    assert (tmp_path / "kernels" / "index").read_text() == "written"


def test_a_lock_file_of_another_user_still_locks(tmp_path, monkeypatch):
    """A lock file this process may not write (another user's, in a shared
    cache) is opened read-only: flock still excludes the others."""
    held = _locks.compile_lock(str(tmp_path), "kernel", "(int64,)")  # creates the file
    _locks.unlock(held)
    opened = os.open

    def no_write(path, flags, *mode):
        if flags & os.O_RDWR:
            raise PermissionError(13, "Permission denied", path)
        return opened(path, flags, *mode)

    monkeypatch.setattr(_locks.os, "open", no_write)
    lock = _locks.compile_lock(str(tmp_path), "kernel", "(int64,)")
    assert lock is not None and not lock.writable()
    monkeypatch.setattr(_locks.os, "open", opened)
    monkeypatch.setattr(_locks, "COMPILE_WAIT", 0.3)
    assert _locks.compile_lock(str(tmp_path), "kernel", "(int64,)") is None  # held: waited, gave up
    _locks.unlock(lock)
    again = _locks.compile_lock(str(tmp_path), "kernel", "(int64,)")
    assert again is not None
    _locks.unlock(again)
    mode = os.stat(tmp_path / ".compiling" / os.listdir(tmp_path / ".compiling")[0]).st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask  # as open as the umask allows


def test_a_long_wait_is_told_once(tmp_path, monkeypatch):
    """``waiting`` is called once, after WAIT_NOTICE seconds, however long the wait."""
    monkeypatch.setattr(_locks, "WAIT_NOTICE", 0.1)
    monkeypatch.setattr(_locks, "COMPILE_WAIT", 0.6)
    lock = _locks.compile_lock(str(tmp_path), "kernel", "(int64,)")
    told = []
    t0 = time.monotonic()
    got = _locks.compile_lock(str(tmp_path), "kernel", "(int64,)", lambda: told.append(time.monotonic()))
    assert got is None
    assert len(told) == 1 and told[0] - t0 >= 0.1
    _locks.unlock(lock)


def test_the_compile_lock_is_per_cpu():
    """Hosts with other CPUs sharing one cache folder compile side by side (numba
    keeps one entry per CPU): the lock's key names the CPU."""
    key = _jit._lock_key((types.int64,), first_nonfinite.targetctx)
    assert key.startswith("(int64,) ") and repr(first_nonfinite.targetctx.codegen().magic_tuple()) in key


WAITED = """
import sys, warnings, numpy as np
from rnnumba import _locks
_locks.WAIT_NOTICE = 0.5
from rnnumba.validation import first_nonfinite
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as seen:
    print(first_nonfinite(np.zeros((2, 3, 1), dtype=np.float32), np.array([3, 3])), flush=True)
print("|".join(str(w.message) for w in seen))
"""

HOLDER = """
import sys, time, numpy as np, numba
from rnnumba import _jit, _locks
from rnnumba.validation import first_nonfinite as kernel
sig = (numba.typeof(np.zeros((2, 3, 1), dtype=np.float32)), numba.typeof(np.array([3, 3])))
lock = _locks.compile_lock(kernel._cache._cache_path, kernel._cache._impl.filename_base,
                           _jit._lock_key(sig, kernel.targetctx))
print("held", flush=True)
sys.stdin.readline()
_locks.unlock(lock)
"""


def test_a_call_waiting_for_another_process_says_so(tmp_path):
    """A call from Python whose kernel another process is compiling says, once,
    that it waits, then goes on (here it compiles: the holder saved nothing)."""
    env = dict(os.environ, PYTHONPATH=ROOT, RNNUMBA_CACHE_DIR=str(tmp_path))
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline() == "held\n"
    waiter = subprocess.Popen([sys.executable, "-c", WAITED], env=env, stdout=subprocess.PIPE, text=True)
    time.sleep(3.0)
    assert waiter.poll() is None  # waiting
    holder.communicate("go\n", timeout=60)
    result, messages = waiter.communicate(timeout=300)[0].splitlines()
    assert result == "-1"
    assert messages.startswith("waiting for another process compiling rnnumba's first_nonfinite into ")
    assert "|" not in messages and str(tmp_path) in messages  # said once


WAIT = """
import sys, time
from rnnumba import _locks
lock = _locks.compile_lock(sys.argv[1], "kernel", "(int64,)")
print(time.time(), lock is not None, flush=True)
"""

HOLD_AND_DIE = """
import os, sys
from rnnumba import _locks
lock = _locks.compile_lock(sys.argv[1], "kernel", "(int64,)")
print("held", flush=True)
os._exit(0)  # without letting go
"""


def test_a_process_waits_for_a_kernel_another_is_compiling(tmp_path):
    """A second process asking for the lock of a kernel being compiled gets it
    only once the first lets go; the lock of a process that died is free."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    lock = _locks.compile_lock(str(tmp_path), "kernel", "(int64,)")
    waiter = subprocess.Popen(
        [sys.executable, "-c", WAIT, str(tmp_path)], env=env, stdout=subprocess.PIPE, text=True
    )
    time.sleep(2.0)
    assert waiter.poll() is None  # still waiting
    released = time.time()
    _locks.unlock(lock)
    got, ok = waiter.communicate(timeout=60)[0].split()
    assert ok == "True" and float(got) >= released
    died = subprocess.run([sys.executable, "-c", HOLD_AND_DIE, str(tmp_path)], env=env, capture_output=True)
    assert died.stdout == b"held\n"
    t0 = time.perf_counter()
    lock = _locks.compile_lock(str(tmp_path), "kernel", "(int64,)")
    assert lock is not None and time.perf_counter() - t0 < 1.0
    _locks.unlock(lock)


FIT = """
import json, numba.core.event as ev, numpy as np, rnnumba
from rnnumba.datasets import make_toy
X, z = make_toy(400, random_state=0)
compiled = []
class Listener(ev.Listener):
    def on_start(self, e):
        compiled.append(e.data["dispatcher"].py_func.__qualname__)
    def on_end(self, e):
        pass
with ev.install_listener("numba:compile", Listener()):
    model = rnnumba.fit(X, z, hidden=5, epochs=1, random_state=0)
    pred = model.predict(X)
print(json.dumps(compiled))
print(model.net_.theta.tobytes().hex())
print(pred.tobytes().hex())
"""


@pytest.mark.slow
def test_a_cold_fit_shares_its_compile_with_a_helper(tmp_path):
    """On an empty cache a fit starts a helper: the BPTT side and prediction
    compile there (the fit loads them), the fit runs its epoch's Python body
    while the helper compiles the epoch, and the results are bitwise those of
    a fit that compiled everything itself. The helper, asked to stop when the
    fit's process exits, saves the kernel it is compiling: the next process
    compiles nothing."""
    alone = run_python(FIT, tmp_path / "alone", RNNUMBA_PREFETCH="0")
    helped = run_python(FIT, tmp_path / "helped")
    assert alone.returncode == 0, alone.stderr
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.splitlines()[1:] == alone.stdout.splitlines()[1:]
    by_alone, by_fit = (set(json.loads(r.stdout.splitlines()[0])) for r in (alone, helped))
    # the helper starts on these as soon as it has imported rnnumba, while the fit
    # still compiles its forward pass; it reaches prediction later, and on a loaded
    # machine the fit may get there first (and then compiles it; nothing is lost)
    for name in ("many_head", "backward_walk_elman", "epoch_elman"):
        assert name in by_alone and name not in by_fit, (name, sorted(by_fit))
    assert "chunk_loss_and_grad_elman" in by_fit and "forward_walk_elman" in by_fit
    deadline = time.monotonic() + 300
    while not list(tmp_path.glob("helped/*/*.epoch_elman-*.nbi")) and time.monotonic() < deadline:
        time.sleep(0.5)  # the helper, on its own now, finishing the epoch
    time.sleep(1.0)
    again = run_python(FIT, tmp_path / "helped", RNNUMBA_PREFETCH="0")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.splitlines()[0]) == []
    assert again.stdout.splitlines()[1:] == alone.stdout.splitlines()[1:]
