"""rnnumba: Numba-accelerated recurrent networks over one flat parameter vector.

Importing rnnumba compiles nothing; kernels compile on first use and are
cached on disk.
"""

from .layout import Layout
from .network import RNN

__version__ = "0.1.0"

__all__ = ["RNN", "Layout", "__version__"]
