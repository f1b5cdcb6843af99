"""numba.cuda, imported lazily, and what the kernels need to know of the device.

Nothing here imports ``numba.cuda`` at module import (it is slow to import):
:func:`cuda` does, on first use, so ``import rnnumba.gpu`` works without numba-cuda and
without a GPU. The simulator (``NUMBA_ENABLE_CUDASIM=1``, read by numba when
``numba.cuda`` is first imported) reports a fictitious small device so that
the size-based choices below are exercised at tiny sizes.
"""

import functools
import importlib.util
import os

INSTALL_HINT = "pip install 'rnnumba[cuda]' (i.e. numba-cuda, plus an NVIDIA driver)"

# the static limit every block gets without an opt-in
DEFAULT_SMEM = 48 * 1024
# what the simulator pretends to have (tests force both strategies anyway)
SIM_SMEM = 48 * 1024
SIM_SMS = 2


def _has_numba_cuda():
    """Whether the ``numba_cuda`` package is installed (without importing it)."""
    try:
        return importlib.util.find_spec("numba_cuda") is not None
    except (ImportError, ValueError):  # e.g. sys.modules["numba_cuda"] = None
        return False


@functools.lru_cache(maxsize=1)
def cuda():
    """Import and return ``numba.cuda``, on first use.

    An ImportError with a hint if the CUDA target (the ``numba-cuda``
    package) is missing.
    """
    if not _has_numba_cuda():
        raise ImportError(f"rnnumba's GPU backend needs the numba-cuda package: {INSTALL_HINT}")
    from numba import cuda as _cuda

    return _cuda


def simulator():
    """Tell whether numba runs CUDA kernels in its Python simulator."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        return True
    try:
        import numba

        return bool(getattr(numba.config, "ENABLE_CUDASIM", 0))
    except Exception:  # pragma: no cover
        return False


def available():
    """``(ok, reason)``: whether rnnumba can run kernels on a GPU (or the simulator)."""
    if not _has_numba_cuda():
        return False, f"numba-cuda is not installed: {INSTALL_HINT}"
    try:
        c = cuda()
    except Exception as exc:  # pragma: no cover - a broken install
        return False, f"numba.cuda failed to import ({exc}); reinstall with {INSTALL_HINT}"
    if simulator():
        return True, "the CUDA simulator (NUMBA_ENABLE_CUDASIM=1): correct but very slow"
    try:
        if not c.is_available():
            return False, (
                "no CUDA GPU is visible (check `nvidia-smi`, the driver and CUDA_VISIBLE_DEVICES); "
                "numba-cuda also needs the CUDA runtime: pip install nvidia-cuda-runtime nvidia-cuda-nvrtc "
                "nvidia-nvvm"
            )
        dev = c.get_current_device()
        name = dev.name.decode() if isinstance(dev.name, bytes) else dev.name
        return True, f"{name} (cc {dev.compute_capability})"
    except Exception as exc:
        return False, f"CUDA is not usable: {exc}"


@functools.lru_cache(maxsize=1)
def properties():
    """``(multiprocessors, shared-memory bytes a block may opt in to)``."""
    if simulator():
        return SIM_SMS, SIM_SMEM
    c = cuda()
    dev = c.get_current_device()
    sms = int(dev.MULTIPROCESSOR_COUNT)
    try:
        optin = int(dev.MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)
    except Exception:  # pragma: no cover - older drivers
        optin = DEFAULT_SMEM
    return sms, optin


_OPTED = {}


def allow_shared(kernel, nbytes):
    """Let ``kernel`` launch with ``nbytes`` of dynamic shared memory.

    ``kernel`` is a dispatcher compiled with one signature. Returns False
    where that cannot be arranged (the caller then chooses the kernels that
    need less).
    """
    if nbytes <= DEFAULT_SMEM or simulator():
        return True
    key = id(kernel)
    if _OPTED.get(key, 0) >= nbytes:
        return True
    try:
        from numba.cuda.cudadrv.driver import binding, driver

        for compiled in kernel.overloads.values():
            cufunc = compiled._codelibrary.get_cufunc()
            attr = binding.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
            driver.cuKernelSetAttribute(attr, int(nbytes), cufunc.handle, cufunc.device.id)
    except Exception:
        return False
    _OPTED[key] = nbytes
    return True


def max_threads(kernel):
    """Return the largest block ``kernel`` (compiled with one signature) can launch with.

    Its register use limits it; 1024 in the simulator or if unknown.
    """
    if simulator():
        return 1024
    try:
        return min(int(k._codelibrary.get_cufunc().attrs.maxthreads) for k in kernel.overloads.values())
    except Exception:
        return 1024
