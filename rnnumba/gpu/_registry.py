"""Every CUDA kernel of rnnumba, built by a factory and compiled on demand.

A *builder* ``build(*key) -> (python_function, signature)`` writes one kernel
specialised for ``key`` (dtype, cell, tile sizes: compile-time constants, so
dead branches vanish). :func:`compiled` turns it into a numba-cuda dispatcher
once per process; :func:`specs` lists every variant the engine can launch, so
that ``tests/test_cuda_ptx.py`` compiles each one to PTX without a GPU.

All kernels take flat 1-D C-contiguous arrays plus int64 offsets and strides:
the parameter vector ``theta`` (and ``grad``) is one device array, and the
kernels address ``W``, ``b``, ... inside it through the offsets of
:class:`rnnumba.layout.Layout`, exactly as on the CPU.
"""

import functools

import numpy as np
from numba import types

from ._device import cuda

_BUILDERS = {}


def builder(name):
    """Register ``build(*key)`` under ``name``."""

    def register(fn):
        _BUILDERS[name] = fn
        return fn

    return register


def nbtype(dtype):
    """Return the numba scalar type of ``dtype``: float32, else float64."""
    return types.float32 if np.dtype(dtype) == np.float32 else types.float64


def vec(dtype):
    """Return the signature type of a flat array of ``dtype``."""
    return types.Array(nbtype(dtype), 1, "C")


I64 = types.int64
IVEC = types.Array(types.int64, 1, "C")


@functools.cache
def compiled(name, *key):
    """Return the dispatcher of kernel ``name`` specialised for ``key``."""
    fn, sig = _BUILDERS[name](*key)
    kernel = cuda().jit(sig)(fn)
    from ._device import simulator

    return _Checked(kernel, sig, name) if simulator() else kernel


class _Checked:
    """Simulator only: the simulator ignores signatures, a GPU does not.

    Check each launch's arguments against the kernel's signature as strictly as
    numba-cuda's dispatch would (exact dtypes, 1-D C-contiguous arrays).
    """

    def __init__(self, kernel, sig, name):
        self.kernel, self.sig, self.name = kernel, sig, name

    def __getitem__(self, config):
        launch = self.kernel[config]

        def checked(*args):
            check_args(self.name, self.sig, args)
            return launch(*args)

        return checked


def check_args(name, sig, args):
    """TypeError unless ``args`` match ``sig`` as numba-cuda's dispatch requires (see :class:`_Checked`)."""
    if len(args) != len(sig):
        raise TypeError(f"{name}: {len(args)} arguments for {len(sig)} parameters")
    for k, (arg, ty) in enumerate(zip(args, sig, strict=True)):
        where = f"{name} argument {k}"
        if isinstance(ty, types.Array):
            ary = getattr(arg, "_ary", arg)  # the simulator's device arrays wrap a NumPy array
            want = np.dtype(str(ty.dtype))
            if not hasattr(ary, "dtype") or ary.dtype != want or ary.ndim != 1 or not ary.flags.c_contiguous:
                raise TypeError(
                    f"{where}: expected a 1-D C-contiguous {want} array, got "
                    f"{getattr(ary, 'dtype', type(ary))} {getattr(ary, 'shape', '')}"
                )
        elif ty == types.int64:
            if isinstance(arg, (bool, np.bool_)) or not isinstance(arg, (int, np.integer)):
                raise TypeError(f"{where}: expected an integer, got {type(arg).__name__}")
        else:
            want = np.dtype(str(ty))
            ok = (isinstance(arg, np.floating) and arg.dtype == want) or (
                want == np.float64 and isinstance(arg, float)
            )
            if not ok:
                raise TypeError(f"{where}: expected a {want} scalar, got {type(arg).__name__}")


def source(name, *key):
    """``(python_function, signature)`` of one kernel variant (for compile_ptx)."""
    return _BUILDERS[name](*key)
