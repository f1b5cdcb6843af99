"""Data sets: the seed's toy problem and machine runs.

The toy problem of the 2015 tutorial is :mod:`rnnumba.datasets.toy`; the
multivariate machine runs are :mod:`rnnumba.datasets.sensors`.

This package needs numpy only: it is imported by the CLI and the docs, which
must not pay for numba's start-up.
"""

from .sensors import make_sensors
from .toy import ToyData, eval_grid, f, load_toy, make_toy, make_toy_seq2seq, make_toy_varlen

__all__ = [
    "ToyData",
    "eval_grid",
    "f",
    "load_toy",
    "make_sensors",
    "make_toy",
    "make_toy_seq2seq",
    "make_toy_varlen",
]
