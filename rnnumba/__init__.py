"""rnnumba: Numba-accelerated recurrent networks over one flat parameter vector.

Importing rnnumba compiles nothing; kernels compile on first use and are
cached on disk.
"""

from .layout import Layout
from .network import RNN

__version__ = "0.1.0"

__all__ = ["RNN", "Layout", "RNNClassifier", "RNNRegressor", "datasets", "fit", "load", "__version__"]

# loaded on first use: the estimators, their solvers and io stay out of `import rnnumba`
_LAZY = {
    "fit": ("estimators", "fit"),
    "RNNRegressor": ("estimators", "RNNRegressor"),
    "RNNClassifier": ("estimators", "RNNClassifier"),
    "load": ("io", "load"),
    "datasets": ("datasets", None),
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
