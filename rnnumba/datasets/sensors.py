"""Machine runs: a multivariate data set of varying length, three sensors in very different units.

The worked example of ``docs/data.md``: a fault label to classify and a load
to estimate. Numpy only, as :mod:`rnnumba.datasets.toy`.
"""

import numpy as np

from .toy import count

__all__ = ["make_sensors"]


def make_sensors(n_samples=400, min_length=20, max_length=60, fault_rate=0.3, random_state=None):
    """Machine runs: three sensors in mixed units, of varying length (generated).

    Run ``i`` lasts ``T_i ~ U{min_length..max_length}`` seconds under a load
    ``L_i ~ U[0.5, 2]`` (kN) and is faulty with probability ``fault_rate``.
    Sampled once a second (``t = 0..T_i-1``)::

        temperature  60 + 8 L (1 - exp(-t / 15)) (1 + 0.5 fault)  + N(0, 0.3^2)   degC
        pressure     2e5 + 3e3 L + 500 sin(t / 5 + phase)          + N(0, 100^2)   Pa
        vibration    1e-3 (1 + 1.5 fault [t >= onset]) |N(0, 1)|                    g

    so the load shows in the temperature's rise and the pressure's level, and
    a fault in a faster warm-up and, after a random onset, more vibration.

    Parameters
    ----------
    n_samples : int, default 400
    min_length, max_length : int, default 20, 60
    fault_rate : float, default 0.3
    random_state : int, numpy.random.Generator or None

    Returns
    -------
    X : list of ndarray (T_i, 3)
        Temperature, pressure, vibration.
    fault : ndarray (N,) of int
        1 for a faulty run.
    load : ndarray (N,)
        The load, in kN.

    Examples
    --------
    >>> from rnnumba.datasets import make_sensors
    >>> X, fault, load = make_sensors(50, random_state=0)
    >>> len(X), X[0].shape[1], sorted(set(fault.tolist()))
    (50, 3, [0, 1])
    """
    n_samples = count(n_samples, "n_samples")
    min_length = count(min_length, "min_length")
    max_length = count(max_length, "max_length", min_length)
    rng = np.random.default_rng(random_state)
    lengths = rng.integers(min_length, max_length + 1, size=n_samples)
    load = rng.uniform(0.5, 2.0, size=n_samples)
    fault = (rng.random(n_samples) < fault_rate).astype(np.int64)
    X = []
    for T, L, bad in zip(lengths, load, fault, strict=True):
        t = np.arange(T, dtype=np.float64)
        temp = 60 + 8 * L * (1 - np.exp(-t / 15)) * (1 + 0.5 * bad) + rng.normal(0, 0.3, T)
        pres = 2e5 + 3e3 * L + 500 * np.sin(t / 5 + rng.uniform(0, 2 * np.pi)) + rng.normal(0, 100, T)
        onset = rng.integers(0, T)
        vib = 1e-3 * (1 + 1.5 * bad * (t >= onset)) * np.abs(rng.normal(size=T))
        X.append(np.column_stack([temp, pres, vib]))
    return X, fault, load
