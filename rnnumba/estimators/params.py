"""Hyper-parameters and fitted attributes as plain values.

:func:`init_with` gives an estimator subclass an ``__init__`` of its own
parameters (scikit-learn reads them from the signature); :data:`FITTED` and
:func:`jsonable` say what a saved file keeps, as JSON.
"""

import inspect
import json

import numpy as np

__all__ = ["FITTED", "init_with", "jsonable"]


# fitted attributes that go into a saved file (the training history included)
FITTED = (
    "n_features_in_",
    "feature_names_in_",
    "target_mean_",
    "target_std_",
    "_padded_T",
    "n_outputs_",
    "many_to_many_",
    "_y_shape",
    "loss_curve_",
    "n_iter_",
    "stop_reason_",
    "best_loss_",
    "validation_scores_",
    "best_validation_score_",
)


def jsonable(value):
    """``value`` when JSON can hold it exactly, else None (callbacks, Generators); arrays as lists."""
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        value = value.item()
    if isinstance(value, np.ndarray) and value.dtype.kind in "biufUO":
        value = value.tolist()
    if isinstance(value, np.dtype):
        return value.name
    if isinstance(value, type) and issubclass(value, np.generic):
        return np.dtype(value).name
    try:
        json.dumps(value, allow_nan=True)
    except (TypeError, ValueError):
        return None
    return value


def init_with(cls, **extra):
    """Make an ``__init__`` of ``cls``'s hyper-parameters plus ``extra``.

    scikit-learn reads the hyper-parameters from ``__init__``'s signature (no
    ``**kwargs``), so a subclass with parameters of its own gets a real
    signature: the base's, then ``extra`` as keyword-only parameters with
    their defaults. The ``__init__`` only stores them.

    Parameters
    ----------
    cls : type
        The base estimator class, whose ``__init__`` signature comes first.
    **extra
        The subclass's own hyper-parameters and their defaults.

    Returns
    -------
    function
    """
    base = inspect.signature(cls.__init__)
    kw = inspect.Parameter.KEYWORD_ONLY
    own = [inspect.Parameter(k, kw, default=v) for k, v in extra.items()]
    sig = base.replace(parameters=[*base.parameters.values(), *own])

    def __init__(self, *args, **kwargs):
        bound = sig.bind(self, *args, **kwargs)
        bound.apply_defaults()
        for name, value in list(bound.arguments.items())[1:]:
            setattr(self, name, value)

    __init__.__signature__ = sig
    return __init__
