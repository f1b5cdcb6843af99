"""rnnumba: Numba-accelerated recurrent networks over one flat parameter vector.

Importing rnnumba compiles nothing; kernels compile on first use (saying so
with a :class:`CompileWarning`) and are cached on disk, where
:func:`precompile` (``rnnumba compile``) can put them ahead of time.
"""

from . import _prefetch  # noqa: F401  (a helper process for a cold fit's compile)
from ._jit import CompileWarning, cache_dir
from ._version import __version__
from .layout import Layout
from .network import RNN

__all__ = [
    "RNN",
    "CompileWarning",
    "Layout",
    "RNNClassifier",
    "RNNRegressor",
    "cache_dir",
    "datasets",
    "fit",
    "formats",
    "load",
    "precompile",
    "__version__",
]

# loaded on first use: the estimators, their solvers and io stay out of `import rnnumba`
_LAZY = {
    "fit": ("estimators", "fit"),
    "RNNRegressor": ("estimators", "RNNRegressor"),
    "RNNClassifier": ("estimators", "RNNClassifier"),
    "load": ("estimators", "load"),
    "precompile": ("_precompile", "precompile"),
    "datasets": ("datasets", None),
    "formats": ("formats", None),
}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'rnnumba' has no attribute {name!r}")
    import importlib

    module, attr = _LAZY[name]
    mod = importlib.import_module(f".{module}", __name__)
    value = mod if attr is None else getattr(mod, attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
