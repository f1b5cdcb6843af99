"""Validation of the training hyper-parameters: one clear error per bad value."""

import math
import numbers

import numpy as np

from ..backends import check_device
from ..validation import check_int
from .first_order import FIRST_ORDER
from .scipy_bridge import GRADIENT_METHODS, scipy_method


def _number(value, name, low=None, high=None, low_open=False, high_open=False):
    """``value`` as a finite float within the bounds (``*_open``: strict), or a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    value = float(value)
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value!r}")
    return value


def _flag(value, name):
    """``value`` as a bool (Python or NumPy bools only), or a ValueError naming it."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_dtype(dtype):
    """``dtype`` as numpy float32 or float64, else a ValueError.

    Parameters
    ----------
    dtype : dtype-like
        What the user gave (``"float32"``, ``np.float64``, ...).

    Returns
    -------
    numpy.dtype
        ``float32`` or ``float64``.
    """
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in (np.float32, np.float64):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return dt


def check_callbacks(callbacks):
    """None, one callable or a sequence of callables -> a list.

    Parameters
    ----------
    callbacks : None, callable, or list or tuple of callables

    Returns
    -------
    list
        The callables (empty for None); a ValueError for anything else.
    """
    if callbacks is None:
        return []
    if callable(callbacks):
        return [callbacks]
    if isinstance(callbacks, (list, tuple)) and all(callable(c) for c in callbacks):
        return list(callbacks)
    raise ValueError(f"callbacks must be a callable or a list of callables, got {callbacks!r}")


def generator(random_state):
    """Return the numpy Generator a fit draws from.

    Parameters
    ----------
    random_state : None, int, numpy.random.Generator or numpy.random.RandomState
        A Generator is used as it is; a RandomState (scikit-learn's convention)
        gives the seed of a new Generator, one draw from it, so that reusing one
        RandomState gives different fits, as in scikit-learn.

    Returns
    -------
    numpy.random.Generator
    """
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(int(random_state.randint(np.iinfo(np.int64).max, dtype=np.int64)))
    return np.random.default_rng(random_state)


def check_options(est):
    """Validate an estimator's hyper-parameters.

    Parameters
    ----------
    est : RNNRegressor or RNNClassifier
        The estimator whose attributes (``hidden``, ``solver``, ``lr``, ...)
        are checked.

    Returns
    -------
    dict
        ``solver`` (canonical name), ``epochs``, ``options`` (keywords of
        :class:`~rnnumba.solvers.FirstOrder`), ``tol``, ``n_iter_no_change``,
        ``dtype``, ``callbacks``, ``solver_options``, ``subsample``, ``device``, ``bptt_steps``,
        ``dropout``.
    """
    check_int(est.hidden, "hidden")
    check_int(est.num_layers, "num_layers")
    for name in (
        "bidirectional",
        "nesterov",
        "early_stopping",
        "shuffle",
        "warm_start",
        "peephole",
        "reset_after",
    ):
        _flag(getattr(est, name), name)
    if est.channels_first is not None:
        _flag(est.channels_first, "channels_first")  # or None: (N, T, I), warning on a doubtful shape
    if est.standardize != "global":
        _flag(est.standardize, "standardize")  # or "global"
    solver = est.solver.lower() if isinstance(est.solver, str) else est.solver
    if solver not in FIRST_ORDER:
        solver = scipy_method(est.solver)
        if solver is None:
            raise ValueError(
                f"solver must be 'sgd', 'adam' or a scipy.optimize gradient method "
                f"{GRADIENT_METHODS}, got {est.solver!r}"
            )
    momentum = _number(est.momentum, "momentum", 0.0, 1.0, high_open=True)
    if est.nesterov and momentum == 0.0:
        raise ValueError("nesterov=True needs momentum > 0")
    clip = None if est.clip is None else _number(est.clip, "clip", 0.0, low_open=True)
    options = dict(
        lr=_number(est.lr, "lr", 0.0, low_open=True),
        batch_size=check_int(est.batch_size, "batch_size"),
        momentum=momentum,
        nesterov=bool(est.nesterov),
        beta1=_number(est.beta1, "beta1", 0.0, 1.0, high_open=True),
        beta2=_number(est.beta2, "beta2", 0.0, 1.0, high_open=True),
        epsilon=_number(est.epsilon, "epsilon", 0.0, low_open=True),
        clip=clip,
        weight_decay=_number(est.weight_decay, "weight_decay", 0.0),
    )
    _number(est.validation_fraction, "validation_fraction", 0.0, 1.0, low_open=True, high_open=True)
    if est.verbose is not None and not isinstance(est.verbose, (bool, numbers.Integral)):
        raise ValueError(f"verbose must be a bool or an int, got {est.verbose!r}")
    if est.solver_options is not None and not isinstance(est.solver_options, dict):
        raise ValueError(f"solver_options must be a dict, got {est.solver_options!r}")
    if est.solver_options and solver in FIRST_ORDER:
        raise ValueError("solver_options are passed to scipy.optimize; use them with a scipy solver")
    subsample = est.subsample
    if subsample is not None:
        if isinstance(subsample, numbers.Integral) and not isinstance(subsample, bool):
            check_int(subsample, "subsample")
        else:
            _number(subsample, "subsample", 0.0, 1.0, low_open=True)
        if solver in FIRST_ORDER:
            raise ValueError("subsample applies to scipy solvers; minibatch solvers see every row")
    device = check_device(getattr(est, "device", "cpu"))
    dropout = _number(getattr(est, "dropout", 0.0), "dropout", 0.0, 1.0, high_open=True)
    if dropout and solver not in FIRST_ORDER:
        raise ValueError(
            f"dropout={dropout} needs a minibatch solver ('sgd' or 'adam'); {solver!r} minimises "
            "a deterministic objective"
        )
    rs = est.random_state
    if not (
        rs is None
        or isinstance(rs, (np.random.Generator, np.random.RandomState))
        or (isinstance(rs, numbers.Integral) and not isinstance(rs, bool) and rs >= 0)
    ):
        raise ValueError(
            f"random_state must be None, an int >= 0, a numpy Generator or RandomState, got {rs!r}"
        )
    bptt_steps = est.bptt_steps
    if bptt_steps is not None:
        bptt_steps = check_int(bptt_steps, "bptt_steps")
        if solver not in FIRST_ORDER:
            raise ValueError(f"bptt_steps (truncated BPTT) needs solver 'sgd' or 'adam', got {est.solver!r}")
        if dropout:
            raise ValueError("bptt_steps does not combine with dropout yet")
    return dict(
        solver=solver,
        bptt_steps=bptt_steps,
        epochs=check_int(est.epochs, "epochs", low=0),
        options=options,
        tol=_number(est.tol, "tol", 0.0),
        n_iter_no_change=check_int(est.n_iter_no_change, "n_iter_no_change"),
        dtype=check_dtype(est.dtype),
        callbacks=check_callbacks(est.callbacks),
        solver_options=dict(est.solver_options or {}),
        subsample=subsample,
        device=device,
        dropout=dropout,
    )
