"""Shared settings of the benchmark suite (run it with ``python -m pytest benchmarks``)."""

import functools
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for path in (ROOT, os.path.dirname(os.path.abspath(__file__))):
    if path not in sys.path:
        sys.path.insert(0, path)

# the engine's four sizes: (N, T, I, H)
SIZES = {
    "seed": (20, 3, 1, 26),
    "small-long": (32, 100, 1, 32),
    "medium": (64, 50, 8, 128),
    "large": (256, 100, 64, 512),
}
# speed-up over PyTorch the issues ask for, per size
TARGETS = {"seed": 20.0, "small-long": 10.0, "medium": 3.0, "large": 1.0}


@functools.cache  # fixed once the libraries have loaded; threadpoolctl scans them
def blas_kernels(peer):
    """Which matrix-product kernels a peer's process runs, for the report.

    OpenBLAS picks its kernels by CPU when it loads, unless ``OPENBLAS_CORETYPE``
    names them (some machines of this workplace set it to ``Haswell``, AVX2, on
    AVX-512 CPUs); rnnumba's kernels call SciPy's OpenBLAS, the NumPy baseline
    NumPy's, PyTorch its own (oneDNN / MKL, which pick by CPU).
    """
    pinned = os.environ.get("OPENBLAS_CORETYPE", "unset")
    if peer == "torch":
        import torch

        return f"PyTorch CPU capability {torch.backends.cpu.get_cpu_capability()}"
    if peer == "rnnumba":
        import scipy.linalg.cython_blas  # noqa: F401  (the library numba calls)
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return f"OpenBLAS (OPENBLAS_CORETYPE {pinned})"
    owner = "scipy" if peer == "rnnumba" else "numpy"
    kernels = sorted(
        f"{lib.get('architecture')}"
        for lib in threadpool_info()
        if lib.get("internal_api") == "openblas" and f"{owner}.libs" in lib.get("filepath", "")
    )
    return f"{owner}'s OpenBLAS {'/'.join(kernels) or '?'} kernels (OPENBLAS_CORETYPE {pinned})"
