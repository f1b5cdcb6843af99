"""Every CUDA kernel variant rnnumba can launch, for compiling them all ahead (PTX tests).

Importing this module imports every kernel module, which registers its
builders in :mod:`rnnumba.gpu._registry`.
"""

from . import head, linalg, persistent, solvers, stepwise

__all__ = ["specs"]


def specs():
    """``[(name, key), ...]``: every kernel variant the engine and the solvers can launch.

    In both dtypes, at the production tile sizes.
    """
    out = []
    for module in (linalg, head, persistent, stepwise, solvers):
        out.extend(module.variants())
    return out
