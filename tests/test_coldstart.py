"""Cold start: per-cell kernel families, one signature per kernel, a cache keyed
on contents that several processes can fill at once, ``rnnumba compile`` and
the one-line compile notice (``rnnumba._jit``, ``rnnumba.precompile``)."""

import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

import rnnumba
from rnnumba import _sources, cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# an editable install's import hook finds the checkout before PYTHONPATH: a
# process that must import another copy of the package drops the hook first
FROM_PATH = """
import sys
sys.meta_path = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
"""


def run_python(code, cache=None, path=ROOT, **env):
    """Run ``code`` in a fresh interpreter importing rnnumba from ``path``, with
    its kernel cache in ``cache`` (default: this process's, warm after
    ``rnnumba compile``)."""
    env = dict(os.environ, PYTHONPATH=path, **env)
    if cache is not None:
        env["RNNUMBA_CACHE_DIR"] = str(cache)
    code = FROM_PATH + textwrap.dedent(code)
    where = os.path.dirname(str(cache or ROOT))  # not the checkout: "-c" puts the working folder first
    while not os.path.isdir(where):
        where = os.path.dirname(where)
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=900, cwd=where
    )


# the smallest workload that compiles (or loads) a prediction path: one chunk
PREDICT = """
    import sys, numpy as np, rnnumba
    net = rnnumba.RNN(2, 5, random_state=0)
    X = np.random.default_rng(0).normal(size=(4, 4, 2))
    print(net.predict(X).tobytes().hex())
    k = rnnumba.engine.kernels("elman")
    stats = [(sum(f.stats.cache_hits.values()), sum(f.stats.cache_misses.values())) for f in k[1:]]
    print("\\nSTATS", sum(h for h, _ in stats), sum(m for _, m in stats), file=sys.stderr)
"""


def stats(run):
    """(cache hits, cache misses) of the Elman family's entry points in ``run``."""
    line = [s for s in run.stderr.splitlines() if s.startswith("STATS")][-1]
    return tuple(int(v) for v in line.split()[1:])


def test_an_elman_fit_compiles_no_other_cell():
    """A network compiles its own cell's kernels only: after an Elman fit and
    predict, no LSTM or GRU kernel, and no kernel of checkpointed BPTT, has a
    compiled (or loaded) signature."""
    run = run_python(
        """
        import numpy as np, rnnumba
        from numba.core.dispatcher import Dispatcher
        from rnnumba import engine
        from rnnumba.cells import gru, lstm
        from rnnumba.solvers import kernels
        X = np.random.default_rng(0).normal(size=(30, 3, 1)); y = X.sum(axis=(1, 2))
        rnnumba.fit(X, y, hidden=4, epochs=1, random_state=0).predict(X)
        others = [f for fam in ("lstm", "gru", "gru_cho")
                  for f in (*engine.kernels(fam)[1:], kernels.epoch_kernel(fam))]
        others += [f for ck in (True, 2)
                   for f in (*engine.kernels("elman", checkpoint=ck)[1:], kernels.epoch_kernel("elman", ck))]
        others += [v for m in (lstm, gru) for v in vars(m).values()
                   if isinstance(v, Dispatcher) and v.py_func.__module__ == m.__name__]
        assert len(others) > 20
        print([f.py_func.__qualname__ for f in others if f.signatures] or "none")
        print(sum(len(f.signatures) for f in engine.kernels("elman")[1:]) > 0)
        """
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["none", "True"]


LOAD_ONLY = """
    import numba, numpy as np
    from numba.core import base
    refreshed = []
    refresh = base.BaseContext.refresh
    base.BaseContext.refresh = lambda self: (refreshed.append(type(self).__name__), refresh(self))[1]
    import rnnumba
    net = rnnumba.RNN(2, 5, random_state=0)
    print(net.predict(np.random.default_rng(0).normal(size=(4, 4, 2))).tobytes().hex())
    print(len(refreshed))
    total = numba.njit(lambda a: a.sum())  # never cached: compiles, after a refresh
    print(total(np.ones(3)), len(refreshed) > 0)
"""


def test_a_process_that_only_loads_kernels_skips_the_compilers_setup(tmp_path):
    """Loading a kernel from the cache refreshes none of numba's compile-time
    registries (a tenth of a second of every cached process); the predictions are
    those of a process that compiled, and a compile after the loads still works."""
    compiled = run_python(PREDICT, tmp_path, RNNUMBA_PREFETCH="0")  # an empty cache: compiles
    loaded = run_python(LOAD_ONLY)  # the warm cache: loads
    assert compiled.returncode == 0 and loaded.returncode == 0, loaded.stderr
    predicted, refreshed, later = loaded.stdout.split("\n")[:3]
    assert predicted == compiled.stdout.split()[0]
    assert refreshed == "0"
    assert later == "3.0 True"  # a compile after the loads


def test_every_input_form_shares_one_signature_per_kernel():
    """Lists, padded arrays with lengths, strided views and other dtypes of
    the same data, through the network and the estimator (its compiled epoch),
    compile each kernel once per dtype: no layout, read-only or literal
    variants."""
    run = run_python(
        """
        import numpy as np, rnnumba
        from rnnumba import engine
        from rnnumba.solvers import kernels
        rng = np.random.default_rng(0)
        net = rnnumba.RNN(2, 5, random_state=0)
        X = rng.normal(size=(40, 6, 2)); y = rng.normal(size=40)
        lengths = rng.integers(1, 7, size=40)
        seqs = [X[i, : lengths[i]] for i in range(40)]
        wide = np.zeros((40, 6, 4)); wide[:, :, ::2] = X  # a strided view: X[..., ::2] of wide
        ro = X.copy(); ro.flags.writeable = False
        for Xf, L in ((X, None), (seqs, None), (X, lengths), (wide[:, :, ::2], None), (ro, None),
                      (X.astype(np.float32), None), (np.asfortranarray(X), lengths), (X[:2], None)):
            net.predict(Xf, lengths=L)
            net.predict(Xf, lengths=L, many_to_many=True)
            net.loss_and_grad(Xf, y[: len(Xf)], lengths=L)
        rnnumba.RNNRegressor(5, epochs=1, batch_size=20).fit(seqs, y)
        rnnumba.RNNRegressor(5, epochs=1, batch_size=7).fit(X, y, lengths=lengths)
        rnnumba.RNNRegressor(5, epochs=1, batch_size=40).fit(wide[:, :, ::2], y)
        for f in (*engine.kernels("elman")[1:], kernels.epoch_kernel("elman")):
            print(f.py_func.__qualname__, len(f.signatures))
        """
    )
    assert run.returncode == 0, run.stderr
    counts = dict(line.split() for line in run.stdout.splitlines())
    assert set(counts) == {
        "chunk_loss_and_grad_elman",
        "loss_and_grad_elman",
        "chunks_loss_and_grad_elman",
        "chunk_predict_elman",
        "predict_elman",
        "epoch_elman",
    }
    # none compiled twice; every one that Python calls has its one signature
    # (the chunk kernel may have none: a caller loaded from the cache holds its code)
    assert all(int(n) <= 1 for n in counts.values()), counts
    assert all(int(n) == 1 for k, n in counts.items() if k != "chunk_loss_and_grad_elman"), counts


@pytest.mark.slow
def test_two_processes_fill_one_empty_cache_at_once(tmp_path):
    """Two cold processes compiling into one empty folder both succeed and
    agree bitwise; a third then loads everything from the cache."""
    cache = tmp_path / "cache"
    env = dict(os.environ, PYTHONPATH=ROOT, RNNUMBA_CACHE_DIR=str(cache))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(PREDICT)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1].decode()[-2000:] for o in outs]
    assert outs[0][0] == outs[1][0] and len(outs[0][0].split()[0]) == 4 * 8 * 2
    third = run_python(PREDICT, cache)
    assert third.returncode == 0, third.stderr
    hits, misses = stats(third)
    assert misses == 0 and hits >= 1, third.stderr
    assert "CompileWarning" not in third.stderr  # nothing is said on a cache hit
    assert third.stdout.encode() == outs[0][0]


@pytest.mark.slow
def test_a_copy_with_new_modification_times_hits_the_cache(tmp_path):
    """The cache is keyed on contents: a reinstall (here, a copy of the package
    whose files all have new modification times) loads the kernels compiled
    by the original, and a changed kernel source starts a new cache folder."""
    cache = tmp_path / "cache"
    first = run_python(PREDICT, cache)
    assert first.returncode == 0, first.stderr
    assert stats(first)[1] >= 1 and "CompileWarning" in first.stderr  # it compiled, and said so once
    assert first.stderr.count("CompileWarning") == 1
    copy = tmp_path / "site"
    shutil.copytree(
        os.path.join(ROOT, "rnnumba"), copy / "rnnumba", ignore=shutil.ignore_patterns("__pycache__")
    )
    for folder, _, files in os.walk(copy):
        for name in files:
            os.utime(os.path.join(folder, name), (1e9, 1e9))
    second = run_python(PREDICT, cache, path=str(copy))
    assert second.returncode == 0, second.stderr
    hits, misses = stats(second)
    assert misses == 0 and hits >= 1, second.stderr
    assert first.stdout == second.stdout
    where = run_python("import rnnumba; print(rnnumba.cache_dir())", cache, path=str(copy))
    imported = run_python("import rnnumba; print(rnnumba.__file__)", cache, path=str(copy))
    assert imported.stdout.startswith(str(copy)), imported.stdout
    with open(copy / "rnnumba" / "_linalg.py", "a") as f:
        f.write("\n# a changed kernel source\n")
    moved = run_python("import rnnumba; print(rnnumba.cache_dir())", cache, path=str(copy))
    assert where.stdout.startswith(str(cache)) and moved.stdout.startswith(str(cache))
    assert where.stdout != moved.stdout


def test_the_cache_counts_every_module_whose_names_kernels_read(tmp_path):
    """A kernel reads the constants of the modules it imports (``layout``'s
    spec positions) when it compiles: those count in the cache's key, however
    indirectly imported; the estimators, the command line and the locks do not."""
    copy = tmp_path / "rnnumba"
    shutil.copytree(os.path.join(ROOT, "rnnumba"), copy, ignore=shutil.ignore_patterns("__pycache__"))
    sources = _sources.compiled_sources(str(copy))
    compiled = {"layout.py", "engine.py", "cells/elman.py", "solvers/kernels.py", "_jit.py", "_codegen.py"}
    assert compiled <= set(sources)
    assert not [
        p
        for p in sources
        if p.startswith(("estimators/", "cli.py", "_locks.py", "_prefetch.py", "memory.py"))
    ]
    (copy / "layout.py").write_bytes(sources["layout.py"] + b"\n# a changed constant\n")
    assert _sources.compiled_sources(str(copy))["layout.py"] != sources["layout.py"]
    (copy / "estimators" / "base.py").write_text("# not compiled code\n", encoding="utf-8")
    assert set(_sources.compiled_sources(str(copy))) == set(sources)
    # a kernel module taking names through a parenthesised import, and a module through
    # "from . import": what that module imports counts too
    (copy / "kernel.py").write_text(
        "from .layout import (\n    GATES,\n    HIDDEN,\n)\nfrom . import memory\n@jit\n"
    )
    assert {"memory.py", "_limits.py", "segments.py"} <= set(_sources.compiled_sources(str(copy)))


@pytest.mark.slow
def test_an_unwritable_cache_still_runs_and_says_so_once(tmp_path):
    """A cache folder that cannot be created (a file stands in its way, as in a
    read-only install) costs a compile per process, never an error."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    run = run_python(
        """
        import warnings, numpy as np, rnnumba
        warnings.simplefilter("always")
        net = rnnumba.RNN(1, 3, random_state=0)
        print(net.predict(np.ones((2, 3))).shape, net.predict(np.ones((3, 3))).shape)
        """,
        blocker / "cache",
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["(2,", "1)", "(3,", "1)"]
    assert run.stderr.count("cannot write its kernel cache") == 1


def test_compile_command_fills_the_cache_and_rejects_bad_flags(capsys):
    for argv, what in (
        (["compile", "--cells", "elman,cnn"], "unknown cell 'cnn'"),
        (["compile", "--dtypes", "float16"], "unknown dtype 'float16'"),
        (["compile", "--jobs", "0"], "must be > 0"),
        (["compile", "--jobs", "two"], "expected a int"),
        (["compile", "--cells", ","], "expected comma-separated names"),
        (["compile", "--threads", "2"], "unrecognized arguments"),
    ):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("rnnumba: error:") and what in err, (argv, err)
    # the real thing, into this session's cache (a cold compile of two dtypes
    # side by side in CI's own "rnnumba compile" step, before the tests)
    argv = [sys.executable, "-m", "rnnumba", "compile", "--cells", "elman", "--dtypes", "float64,float32"]
    run = subprocess.run(
        [*argv, "--jobs", "2"], env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    for line, dtype in zip(lines, ("float64", "float32"), strict=False):
        assert re.fullmatch(
            rf" *elman {dtype}: +[0-9.]+ s \((cached|compiled \d+, loaded \d+ from the cache)\)", line
        )
    assert len(lines) == 3 and lines[-1] == "kernel cache: " + rnnumba.cache_dir()
    assert "CompileWarning" not in run.stderr and "warning" not in run.stderr
    again = run_python(
        """
        import rnnumba
        r = rnnumba.precompile(cells="elman", dtypes=["float32", "float64"])
        print([(x["cell"], x["dtype"], x["compiled"], x["loaded"] > 0) for x in r])
        """
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "[('elman', 'float32', 0, True), ('elman', 'float64', 0, True)]"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_compile_workers_exit_when_the_command_is_killed(tmp_path):
    """``rnnumba compile --jobs 2`` killed outright (a job's time limit): its pool
    cannot shut down, and its workers would compile on, then wait for work
    forever. They exit within seconds (``_precompile._follow_parent``)."""
    import time

    def stat(pid):  # (state, parent) from /proc, or None once the process is gone
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return fields[0], int(fields[1])
        except (OSError, IndexError, ValueError):
            return None

    def alive(pids):  # a zombie is gone, only not reaped yet
        return [p for p in pids if (st := stat(p)) is not None and st[0] != "Z"]

    def children(pid):
        procs = [int(e) for e in os.listdir("/proc") if e.isdigit()]
        return [p for p in alive(procs) if (st := stat(p)) is not None and st[1] == pid]

    argv = [sys.executable, "-m", "rnnumba", "compile", "--cells", "elman", "--jobs", "2"]
    env = dict(os.environ, PYTHONPATH=ROOT, RNNUMBA_CACHE_DIR=str(tmp_path))  # nothing cached
    command = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        workers, deadline = [], time.monotonic() + 60
        while len(workers) < 3 and time.monotonic() < deadline:  # two workers, the resource tracker
            time.sleep(0.2)
            workers = children(command.pid)
        assert len(workers) == 3, workers
        time.sleep(2)  # the workers compiling
    finally:
        command.kill()
        command.wait()
    deadline = time.monotonic() + 30
    while alive(workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(workers)


def test_precompile_warms_the_checkpointed_kernels_on_request():
    """``checkpoint=True`` adds two jobs per cell and dtype: the kernels of
    checkpointed BPTT (and of bidirectional lockstep), which a long sequence
    then loads instead of compiling."""
    run = run_python(
        """
        import rnnumba
        from rnnumba import engine
        from rnnumba.solvers import kernels
        r = rnnumba.precompile(cells="elman", dtypes="float64", checkpoint=True)
        print([(x["cell"], x["dtype"], x["storage"], x["compiled"] + x["loaded"] > 0) for x in r])
        # what Python calls
        for ck in (True, 2):
            tops = [*engine.kernels("elman", checkpoint=ck)[2:], kernels.epoch_kernel("elman", ck)]
            print(all(f.signatures for f in tops))
        """
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split("\n")[:3] == [
        "[('elman', 'float64', 'full', True), ('elman', 'float64', 'checkpoint', True), "
        "('elman', 'float64', 'lockstep', True)]",
        "True",
        "True",
    ]


def test_precompile_checks_its_arguments():
    for kwargs, what in (
        (dict(cells="transformer"), "unknown cell"),
        (dict(cells=[]), "no cell"),
        (dict(dtypes="int8"), "unknown dtype"),
        (dict(jobs=0), "jobs"),
        (dict(jobs=True), "jobs"),
        (dict(checkpoint="yes"), "checkpoint"),
    ):
        with pytest.raises(ValueError, match=what):
            rnnumba.precompile(**kwargs)
    with pytest.raises(ValueError, match="unknown cell family"):
        rnnumba.engine.kernels("rnn")


@pytest.mark.slow
def test_compile_notice_names_what_compiles(tmp_path):
    """The first call that compiles says so in one line: what, once, where the
    cache is; the same line reaches the command line's output."""
    run = run_python(
        """
        import numpy as np, rnnumba
        rnnumba.RNN(1, 3, dtype="float32").predict(np.ones((2, 3)))
        """,
        tmp_path / "cache",
    )
    assert run.returncode == 0, run.stderr
    notes = [line for line in run.stderr.splitlines() if "CompileWarning" in line]
    assert len(notes) == 1, run.stderr
    assert "chunk_predict_elman for float32" in notes[0] and str(tmp_path / "cache") in notes[0]


@pytest.mark.slow
def test_compile_notice_raised_as_an_error_leaves_the_kernels_usable(tmp_path):
    """With warnings as errors the compiling call raises the notice; the next
    call compiles and runs as usual."""
    run = run_python(
        """
        import warnings, numpy as np, rnnumba
        net = rnnumba.RNN(1, 3, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("error", rnnumba.CompileWarning)
            try:
                net.predict(np.ones((2, 3)))
            except rnnumba.CompileWarning:
                print("raised")
        print(net.predict(np.ones((2, 3))).shape)
        """,
        tmp_path / "cache",
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["raised", "(2,", "1)"]


@pytest.mark.slow
def test_a_parallel_kernel_compiled_over_a_cached_chunk_kernel(tmp_path):
    """The epoch's prange loop calls the chunk kernel by symbol while it
    compiles (``_codegen._finalize_driver``): that must work when the chunk kernel
    came from the cache (an earlier process compiled it for ``loss_and_grad``),
    and the epoch it caches must then load on its own."""
    cache = tmp_path / "cache"
    first = run_python(
        """
        import numpy as np, rnnumba
        net = rnnumba.RNN(1, 5, random_state=0)
        print(net.loss_and_grad(np.ones((2, 3, 1)), np.zeros(2))[0])
        """,
        cache,
    )
    assert first.returncode == 0, first.stderr
    fit = """
        import numpy as np, rnnumba
        from rnnumba import engine
        X = np.random.default_rng(0).normal(size=(200, 3, 1)); y = X.sum(axis=(1, 2))
        model = rnnumba.fit(X, y, hidden=5, epochs=2, batch_size=40, random_state=0)
        hits = engine.kernels("elman").chunk_loss_and_grad.stats.cache_hits
        print(sum(hits.values()), model.predict(X[:3]).tobytes().hex())
        """
    # no helper: the fit compiles the epoch itself (a helper would, while the fit
    # ran the epoch's Python body)
    second, third = (run_python(fit, cache, RNNUMBA_PREFETCH="0") for _ in range(2))
    assert second.returncode == 0 and third.returncode == 0, second.stderr + third.stderr
    assert second.stdout.split()[0] == "1"  # the chunk kernel came from the cache
    assert third.stdout.split() == ["0", second.stdout.split()[1]]  # the epoch loads whole: same model


@pytest.mark.slow
def test_linking_drivers_once_changes_no_result(tmp_path):
    """numba's own finalize (RNNUMBA_DRIVERS=0) and the patched one that links a
    driver's callees without optimising them again give bitwise the same loss,
    gradient and predictions."""
    code = """
        import hashlib, numpy as np, rnnumba, rnnumba._codegen as c
        rng = np.random.default_rng(0)
        net = rnnumba.RNN(2, 6, random_state=0)
        X, y = rng.normal(size=(3, 5, 2)), rng.normal(size=3)
        loss, grad = net.loss_and_grad(X, y, lengths=[5, 2, 4])
        out = net.predict(X, lengths=[5, 2, 4], many_to_many=True)
        print(c.DRIVERS_LINKED_ONCE, hashlib.sha256(grad.tobytes() + out.tobytes()).hexdigest(), repr(loss))
        """
    patched = run_python(code, tmp_path / "a")
    plain = run_python(code, tmp_path / "b", RNNUMBA_DRIVERS="0")
    assert patched.returncode == 0 and plain.returncode == 0, patched.stderr + plain.stderr
    assert patched.stdout.split()[0] == "True" and plain.stdout.split()[0] == "False"
    assert patched.stdout.split()[1:] == plain.stdout.split()[1:]


def test_an_inlined_helpers_blocks_are_copied_with_one_scope():
    """``_codegen._BlockCopies`` copies the blocks of one IR with one memo: the
    copies equal numba's block-by-block ones, share one scope (as the IR's
    blocks do) and nothing with the original; the same IR copied again gets
    objects of its own."""
    import copy

    from numba.core import compiler

    from rnnumba import _codegen

    def helper(x):
        y = 0
        for i in range(x):
            if i % 2:
                y += i
            else:
                y -= 1
        return y

    blocks = compiler.run_frontend(helper).blocks
    assert len(blocks) > 3
    copies = _codegen._BlockCopies()
    first = {label: copies.deepcopy(block) for label, block in blocks.items()}
    again = {label: copies.deepcopy(block) for label, block in blocks.items()}
    for label, block in blocks.items():
        assert first[label] == copy.deepcopy(block) == again[label]
        assert first[label] is not block and first[label].scope is not block.scope
        assert again[label] is not first[label] and again[label].scope is not first[label].scope
    assert len({id(b.scope) for b in first.values()}) == len({id(b.scope) for b in again.values()}) == 1
    assert copies.copy is copy.copy and copies.deepcopy(blocks, {}) is not blocks  # the rest: the module's


@pytest.mark.slow
def test_copying_inlined_helpers_with_one_scope_changes_no_code(tmp_path):
    """Every kernel an Elman fit and prediction compile has the same LLVM IR with
    numba's own copies of inlined helpers (RNNUMBA_INLINE_COPIES=0) as with
    ``_codegen._BlockCopies``, but for the process's addresses and the hash of the
    compile flags in the mangled names."""
    code = """
        import sys, numpy as np, rnnumba, rnnumba._codegen as c, rnnumba._jit as j
        rng = np.random.default_rng(0)
        net = rnnumba.RNN(2, 6, random_state=0)
        X, y = rng.normal(size=(3, 5, 2)), rng.normal(size=3)
        net.loss_and_grad(X, y, lengths=[5, 2, 4])
        net.predict(X, lengths=[5, 2, 4], many_to_many=True)
        kernels = [f for _, f in sorted(j.KERNELS.items())]
        texts = [f.overloads[s].library.get_llvm_str() for f in kernels for s in f.overloads]
        with open(sys.argv[1], "w") as out:
            out.write("".join(texts))
        print(c.INLINE_COPIES_SHARED, len(texts))
        """

    def llvm(folder, **env):  # (no helper: every kernel compiled in the process, none loaded)
        path = tmp_path / f"{folder}.ll"
        script = code.replace("sys.argv[1]", repr(str(path)))
        run = run_python(script, tmp_path / folder, RNNUMBA_PREFETCH="0", **env)
        assert run.returncode == 0, run.stderr
        return run.stdout.split(), path.read_text()

    (shared, n), ours = llvm("a")
    (plain, m), numbas = llvm("b", RNNUMBA_INLINE_COPIES="0")
    assert (shared, plain) == ("True", "False") and n == m and int(n) > 10

    def normal(text):  # the flags' hash (an abi tag "B<length><base64>") and addresses vary by process
        text = re.sub(r"0x[0-9a-f]{8,}|kernel\.\d+___|\[\d+ x i8\] c\"missing Environment", "X", text)
        tag = re.compile(r"(?<=[0-9A-Za-z])B(\d{2,3})([0-9A-Za-z_]+)")
        return tag.sub(lambda m: "B" + m.group(2)[int(m.group(1)) :], text)

    assert normal(ours) == normal(numbas)


@pytest.mark.slow
def test_a_driver_compiled_over_kernels_loaded_in_anothers_entry_loads_on_its_own(tmp_path):
    """A driver calls its callees' machine code by symbol, and its cache entry
    carries their objects (``_codegen._serialize``). A process that loaded the
    forward pass inside prediction's entry and then compiles training over it
    must save an entry that a fresh process can load and run on its own: the
    same loss and gradient as numba's own linking (``RNNUMBA_DRIVERS=0``)."""
    cache = tmp_path / "cache"
    predict = """
        import numpy as np, rnnumba
        X = np.random.default_rng(0).normal(size=(64, 6, 2))
        print(rnnumba.RNN(2, 5, random_state=0).predict(X).tobytes().hex())
        """
    train = """
        import hashlib, numpy as np, rnnumba
        from rnnumba import engine
        rng = np.random.default_rng(0)
        X, y = rng.normal(size=(64, 6, 2)), rng.normal(size=64)
        net = rnnumba.RNN(2, 5, random_state=0)
        out = net.predict(X).tobytes().hex() if PREDICT_FIRST else ""
        loss, grad = net.loss_and_grad(X, y)
        k = engine.kernels("elman")
        hits = sum(sum(f.stats.cache_hits.values()) for f in (k.loss_and_grad, k.chunks_loss_and_grad))
        print(hits, repr(loss), hashlib.sha256(grad.tobytes()).hexdigest(), out)
        """
    runs = {}
    first = run_python(predict, cache, RNNUMBA_PREFETCH="0")
    assert first.returncode == 0, first.stderr
    for name, predict_first, env in (
        ("over loaded", True, {}),  # prediction loads; training compiles over its kernels
        ("alone", False, {}),  # a fresh process loads training's entry
        ("numba", False, {"RNNUMBA_DRIVERS": "0"}),
    ):
        where = tmp_path / "numba" if env else cache
        code = train.replace("PREDICT_FIRST", str(predict_first))
        run = run_python(code, where, RNNUMBA_PREFETCH="0", **env)
        assert run.returncode == 0, name + run.stderr
        runs[name] = run.stdout.split()
    assert runs["over loaded"][0] == "0" and runs["alone"][0] == "1"  # compiled, then loaded
    assert runs["over loaded"][3] == first.stdout.split()[0]
    assert runs["over loaded"][1:3] == runs["alone"][1:3] == runs["numba"][1:3]
