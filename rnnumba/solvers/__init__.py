"""Optimisers over a network's flat parameter vector.

* :class:`FirstOrder`: minibatch SGD (momentum, Nesterov) and Adam, with
  global gradient-norm clipping and weight decay. A whole epoch is one
  compiled call (:mod:`rnnumba.solvers.kernels`).
* :func:`minimize`: any gradient method of ``scipy.optimize.minimize``
  (:data:`GRADIENT_METHODS`) on the full data.
* :func:`train`: the epoch loop shared by both (stopping rules, callbacks,
  Ctrl-C, divergence, progress), used by the estimators.

See ``docs/training.md``.
"""

from .first_order import FIRST_ORDER, FirstOrder
from .loop import History, Problem, train
from .scipy_bridge import GRADIENT_METHODS, ScipyObjective, minimize, scipy_method

__all__ = [
    "FIRST_ORDER",
    "GRADIENT_METHODS",
    "FirstOrder",
    "History",
    "Problem",
    "ScipyObjective",
    "minimize",
    "scipy_method",
    "train",
]
