"""The GPU backend without a GPU: graceful absence, and every kernel through
the real CUDA compiler.

* ``import rnnumba.gpu`` works without numba-cuda, and ``available()`` says
  what to install;
* every kernel variant (both dtypes, every cell, both strategies, the
  solvers) compiles to PTX for compute capability 9.0 (H100/H200) with
  NVIDIA's NVVM, in a separate process (the simulator switch, read at
  ``numba.cuda`` import, must be off there). Skips where numba-cuda or the
  compiler wheels (nvidia-cuda-runtime, nvidia-cuda-nvrtc, nvidia-nvvm) are
  missing.
"""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SCRIPTS = os.path.join(HERE, "cuda_scripts")


def _run(code, timeout=300):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["PYTHONPATH"] = os.pathsep.join([ROOT, SCRIPTS, env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def test_import_without_numba_cuda():
    """As in CI, which installs only `.[test]`: no numba-cuda at all."""
    code = """
import sys
sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "NumbaCudaFinder"]  # its import hook
sys.modules["numba_cuda"] = None  # and the package itself
import rnnumba, rnnumba.gpu as rc
ok, why = rc.available()
assert not ok and "numba-cuda" in why, why
from rnnumba.layout import Layout
eng = rc.DeviceEngine(Layout("elman", 1, 4))  # constructing needs nothing
try:
    eng.predict([0.0] * Layout("elman", 1, 4).n_params, [[[0.0]]], [1])
except ImportError as exc:
    assert "numba-cuda" in str(exc)
else:
    raise AssertionError("expected an ImportError")
print("ok")
"""
    r = _run(code)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


def test_available_explains_itself():
    pytest.importorskip("numba_cuda")
    r = _run("import rnnumba.gpu as rc; print(repr(rc.available()))")
    assert r.returncode == 0, r.stderr[-2000:]
    ok, why = eval(r.stdout.strip())
    assert isinstance(ok, bool) and why
    if not ok:
        assert "GPU" in why or "CUDA" in why or "numba-cuda" in why


@pytest.mark.slow
def test_every_kernel_compiles_to_ptx_for_sm90():
    pytest.importorskip("numba_cuda")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    r = subprocess.run(
        [sys.executable, os.path.join(SCRIPTS, "compile_ptx.py")],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    if "skip" in out:
        pytest.skip(out["skip"])
    results = out["results"]
    failed = [(name, key, info) for name, key, ok, info in results if not ok]
    assert not failed, failed
    # every registered kernel was compiled, in both dtypes
    from rnnumba.gpu import _registry, catalog

    catalog.specs()  # imports every kernel module, registering its builders
    names = {name for name, *_ in results}
    assert names == set(_registry._BUILDERS), set(_registry._BUILDERS) ^ names
    assert {key[0] for _, key, *_ in results} == {"float32", "float64"}
    # the GEMM's 4x4 accumulator tile lives in registers, not local memory
    assert not any(info["local_memory"] for name, _, _, info in results if name == "gemm")


@pytest.mark.skipif(importlib.util.find_spec("numba_cuda") is None, reason="numba-cuda is not installed")
def test_kernel_list_covers_both_strategies():
    from rnnumba.gpu import catalog

    names = {name for name, _ in catalog.specs()}
    assert {"persistent_forward", "persistent_backward", "step_forward", "step_backward", "gemm"} <= names
