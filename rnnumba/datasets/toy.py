"""The seed's toy problem: recover ``z`` from a short noisy sequence of ``f(z - t)``.

``f`` is a wavy curve, so one value ``f(z)`` is ambiguous (a horizontal line meets
the curve up to six times), while a few lagged evaluations pin ``z`` down. This is
the "inverse mapping" data of the 2015 Torch7 tutorial; the facts reproduced here
are written down in ``docs/toy-data.md``:

* ``z ~ Uniform[0, 10)``, the raw (unstandardised) regression target;
* position ``t = 0, 1, ..., L-1`` holds ``f(z - t) + e_t`` with ``e_t ~ N(0, 0.1^2)``
  (the spec counts ``t`` from 1 and writes ``f(z - (t-1))``), so the first column
  is ``f(z)``;
* 200,000 examples, the first 140,000 for training and the last 60,000 for testing;
* inputs standardised by ONE scalar mean and ONE scalar unbiased standard
  deviation fitted on the training inputs (near 2.87 and 0.93).

Variable-length data right-pads with zeros after each sequence's length; the
sequence-to-sequence variant targets ``z - t`` at every valid position.

This module needs numpy only: it is imported by the CLI and the docs, which
must not pay for numba's start-up.
"""

import math
import numbers
import operator
from dataclasses import dataclass

import numpy as np

from ..preprocessing import Standardizer

__all__ = [
    "ToyData",
    "eval_grid",
    "f",
    "load_toy",
    "make_toy",
    "make_toy_seq2seq",
    "make_toy_varlen",
]

N_SAMPLES = 200_000
TRAIN_FRACTION_TENTHS = 7  # first 70% train: 140,000 of 200,000
NOISE = 0.1  # sd, not the tutorial's "0.16" (a variance used for figures only)
LENGTH = 3
LENGTHS = (3, 4)  # {2, 3, 4} was dropped upstream: length 2 is nearly unidentifiable
Z_HIGH = 10.0
KINDS = ("fixed", "varlen", "seq2seq")


def f(x):
    """Evaluate the seed's wavy curve.

    ``f(x) = 2 + 0.5 sin(x/2 - 1) + sin(x) + sin(2x + 2) + sin(x/4 + 1)``

    Parameters
    ----------
    x : float or array_like
        Points to evaluate at.

    Returns
    -------
    float or ndarray
        ``f(x)``, elementwise, in float64 unless ``x`` is a lower-precision float
        array.

    Examples
    --------
    >>> from rnnumba.datasets import f
    >>> round(float(f(0.0)), 2)
    3.33
    """
    x = np.asarray(x)
    return 2 + 0.5 * np.sin(x / 2 - 1) + np.sin(x) + np.sin(2 * x + 2) + np.sin(x / 4 + 1)


# ---------------------------------------------------------------- validation


def count(value, name, minimum=1):
    """Return ``value`` as an int of at least ``minimum``, or raise a ValueError naming ``name``."""
    # operator.index takes numpy integers but refuses 3.0 and "3"; a bool is a flag
    ok = type(value) is not bool
    try:
        count = operator.index(value)
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if count < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {count}")
    return count


def _noise(noise):
    real = isinstance(noise, numbers.Real) and type(noise) is not bool
    value = float(noise) if real else math.nan
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"noise must be a finite real number >= 0, got {noise!r}")
    return value


def _lengths_set(lengths):
    text = isinstance(lengths, (str, bytes))  # iterable, but never meant as lengths
    try:
        values = None if text else list(lengths)
    except TypeError:
        values = None
    if values is None:
        raise ValueError(f"lengths must be a collection of positive integers, got {lengths!r}")
    if not values:
        raise ValueError("lengths must not be empty")
    # a set: duplicates must not tilt the uniform draw
    return np.array(sorted({count(v, "every length") for v in values}), dtype=np.int64)


def _float_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"dtype must be a floating-point type, got {dtype}")
    return dtype


# ---------------------------------------------------------------- generators


def _draw(rng, n_samples, length, noise):
    # One draw order for every generator (z, then the noise of all cells): a seed
    # gives the same z whatever the length, and varlen data share make_toy's cells.
    z = rng.uniform(0.0, Z_HIGH, size=n_samples)
    e = rng.standard_normal((n_samples, length))
    X = f(z[:, None] - np.arange(length)) + noise * e
    return X, z


def _mask(lengths, max_len):
    return np.arange(max_len) < lengths[:, None]


def make_toy(n_samples=N_SAMPLES, length=LENGTH, noise=NOISE, random_state=None, dtype=np.float64):
    """Fixed-length toy sequences, raw (not standardised).

    Parameters
    ----------
    n_samples : int
        Number of sequences, >= 1.
    length : int
        Time steps per sequence, >= 1.
    noise : float
        Standard deviation of the Gaussian noise added to every cell, >= 0.
    random_state : int, numpy.random.Generator or None
        Seed for ``numpy.random.default_rng``; the same seed gives bitwise the
        same data.
    dtype : numpy float dtype
        Dtype of ``X`` and ``z``; the data are drawn in float64 and then cast.

    Returns
    -------
    X : ndarray of shape (n_samples, length)
        ``X[:, t] = f(z - t) + noise * N(0, 1)``; the first column is ``f(z)``.
    z : ndarray of shape (n_samples,)
        Targets, ``Uniform[0, 10)``.

    Notes
    -----
    ``z`` is drawn first, so one seed gives the same ``z`` for any ``length`` or
    ``noise``; the noise itself depends on ``length``.

    Examples
    --------
    >>> from rnnumba.datasets import make_toy
    >>> X, z = make_toy(1000, random_state=0)
    >>> X.shape, z.shape
    ((1000, 3), (1000,))
    >>> bool(0 <= z.min() and z.max() < 10)
    True
    """
    n_samples = count(n_samples, "n_samples")
    length = count(length, "length")
    noise = _noise(noise)
    dtype = _float_dtype(dtype)
    X, z = _draw(np.random.default_rng(random_state), n_samples, length, noise)
    return X.astype(dtype, copy=False), z.astype(dtype, copy=False)


def make_toy_varlen(
    n_samples=N_SAMPLES,
    lengths=LENGTHS,
    noise=NOISE,
    random_state=None,
    dtype=np.float64,
):
    """Variable-length toy sequences, right-padded with zeros, raw.

    Parameters
    ----------
    n_samples : int
        Number of sequences, >= 1.
    lengths : collection of int
        The set of lengths, each drawn with equal probability (duplicates are
        ignored). The seed's LSTM/GRU follow-ups used ``{3, 4}``.
    noise : float
        Standard deviation of the Gaussian noise, >= 0.
    random_state : int, numpy.random.Generator or None
        Seed for ``numpy.random.default_rng``.
    dtype : numpy float dtype
        Dtype of ``X`` and ``z``.

    Returns
    -------
    X : ndarray of shape (n_samples, max(lengths))
        ``X[i, t] = f(z_i - t) + noise`` for ``t < lengths[i]``, exactly 0 after.
    lengths : ndarray of shape (n_samples,), int64
        Valid length of each sequence.
    z : ndarray of shape (n_samples,)
        Targets, ``Uniform[0, 10)``; the prediction is read at ``t = lengths - 1``.

    Notes
    -----
    The lengths are drawn after ``z`` and the noise, so with one seed the valid
    cells equal those of :func:`make_toy` with ``length=max(lengths)``.

    Examples
    --------
    >>> from rnnumba.datasets import make_toy_varlen
    >>> X, lengths, z = make_toy_varlen(1000, random_state=0)
    >>> X.shape, sorted(set(lengths.tolist()))
    ((1000, 4), [3, 4])
    """
    n_samples = count(n_samples, "n_samples")
    choices = _lengths_set(lengths)
    noise = _noise(noise)
    dtype = _float_dtype(dtype)
    rng = np.random.default_rng(random_state)
    max_len = int(choices[-1])
    X, z = _draw(rng, n_samples, max_len, noise)
    lens = choices[rng.integers(0, len(choices), size=n_samples)]
    X[~_mask(lens, max_len)] = 0.0
    return X.astype(dtype, copy=False), lens, z.astype(dtype, copy=False)


def make_toy_seq2seq(
    n_samples=N_SAMPLES,
    lengths=LENGTHS,
    noise=NOISE,
    random_state=None,
    dtype=np.float64,
):
    """Variable-length toy sequences with a target at every valid step, raw.

    The inputs are those of :func:`make_toy_varlen` (same seed, same ``X`` and
    ``lengths``); this is the seed's "direct" variant.

    Parameters
    ----------
    n_samples : int
        Number of sequences, >= 1.
    lengths : collection of int
        The set of lengths, each drawn with equal probability.
    noise : float
        Standard deviation of the Gaussian noise, >= 0.
    random_state : int, numpy.random.Generator or None
        Seed for ``numpy.random.default_rng``.
    dtype : numpy float dtype
        Dtype of ``X`` and ``Y``.

    Returns
    -------
    X : ndarray of shape (n_samples, max(lengths))
        Inputs, zero-padded.
    lengths : ndarray of shape (n_samples,), int64
        Valid length of each sequence.
    Y : ndarray of shape (n_samples, max(lengths))
        ``Y[i, t] = z_i - t`` for ``t < lengths[i]`` (the spec's 1-based
        ``z - (t-1)``), exactly 0 after; ``Y[:, 0]`` is ``z``.

    Examples
    --------
    >>> from rnnumba.datasets import make_toy_seq2seq
    >>> X, lengths, Y = make_toy_seq2seq(1000, random_state=0)
    >>> X.shape == Y.shape == (1000, 4)
    True
    """
    dtype = _float_dtype(dtype)
    X, lens, z = make_toy_varlen(n_samples, lengths, noise, random_state, np.float64)
    max_len = X.shape[1]
    Y = z[:, None] - np.arange(max_len)
    Y[~_mask(lens, max_len)] = 0.0
    return X.astype(dtype, copy=False), lens, Y.astype(dtype, copy=False)


def eval_grid(n=200, length=LENGTH, dtype=np.float64):
    """Build the noise-free evaluation grid of the seed's figure.

    Parameters
    ----------
    n : int
        Number of grid points, >= 1.
    length : int
        Time steps per sequence, >= 1.
    dtype : numpy float dtype
        Dtype of ``X`` and ``z``.

    Returns
    -------
    X : ndarray of shape (n, length)
        ``X[:, t] = f(z - t)`` exactly.
    z : ndarray of shape (n,)
        ``numpy.linspace(0, 10, n)``.

    Examples
    --------
    >>> from rnnumba.datasets import eval_grid, f
    >>> X, z = eval_grid()
    >>> X.shape, float(z[0]), float(z[-1])
    ((200, 3), 0.0, 10.0)
    >>> bool((X[:, 0] == f(z)).all())
    True
    """
    n = count(n, "n")
    length = count(length, "length")
    dtype = _float_dtype(dtype)
    z = np.linspace(0.0, Z_HIGH, n)
    X = f(z[:, None] - np.arange(length))
    return X.astype(dtype, copy=False), z.astype(dtype, copy=False)


# ---------------------------------------------------------------- the seed's split


@dataclass
class ToyData:
    """A train/test split of toy data, inputs already standardised.

    Attributes
    ----------
    X_train, X_test : ndarray of shape (n, max_len)
        Standardised inputs (padding exactly 0).
    y_train, y_test : ndarray
        Raw targets: ``z`` of shape (n,), or ``Y`` of shape (n, max_len) for
        ``kind="seq2seq"``.
    lengths_train, lengths_test : ndarray of int64 or None
        Valid lengths (None for ``kind="fixed"``).
    scaler : Standardizer
        Fitted on the training inputs only.
    kind : str
        ``"fixed"``, ``"varlen"`` or ``"seq2seq"``.

    Parameters
    ----------
    X_train, y_train, X_test, y_test, scaler, kind, lengths_train, lengths_test
        The attributes below, in this order; made by :func:`load_toy`.

    Examples
    --------
    >>> from rnnumba.datasets import load_toy
    >>> data = load_toy("varlen", n_samples=1000)
    >>> data.kind, data.X_train.shape, data.lengths_test.shape
    ('varlen', (700, 4), (300,))
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    scaler: Standardizer
    kind: str
    lengths_train: np.ndarray = None
    lengths_test: np.ndarray = None


def load_toy(
    kind="fixed",
    n_samples=N_SAMPLES,
    n_train=None,
    random_state=0,
    noise=NOISE,
    length=LENGTH,
    lengths=LENGTHS,
    dtype=np.float64,
):
    """Load the seed's toy data, split and standardised as in the original.

    Parameters
    ----------
    kind : {"fixed", "varlen", "seq2seq"}
        :func:`make_toy`, :func:`make_toy_varlen` or :func:`make_toy_seq2seq`.
    n_samples : int
        Total number of sequences, >= 1.
    n_train : int, optional
        The first ``n_train`` rows train, the rest test. Default: 70%
        (140,000 of 200,000), at least 1.
    random_state : int, numpy.random.Generator or None
        Seed; the default 0 makes the data reproducible.
    noise : float
        Noise standard deviation, >= 0.
    length : int
        Sequence length for ``kind="fixed"``.
    lengths : collection of int
        Length set for the variable-length kinds.
    dtype : numpy float dtype
        Dtype of the inputs and targets.

    Returns
    -------
    ToyData
        ``X_train, y_train, X_test, y_test`` (+ ``lengths_train, lengths_test``
        for variable lengths) and the fitted ``scaler``.

    Examples
    --------
    >>> from rnnumba.datasets import load_toy
    >>> data = load_toy()                      # the seed's 200,000 sequences, 70% train
    >>> data.X_train.shape, data.X_test.shape
    ((140000, 3), (60000, 3))
    >>> round(float(data.scaler.mean_), 2), round(float(data.scaler.std_), 2)
    (2.87, 0.93)
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    n_samples = count(n_samples, "n_samples")
    if n_train is None:
        # integer arithmetic: exactly 140,000 of 200,000, no float rounding
        n_train = max(1, n_samples * TRAIN_FRACTION_TENTHS // 10)
    n_train = count(n_train, "n_train")
    if n_train > n_samples:
        raise ValueError(f"n_train must be <= n_samples ({n_samples}), got {n_train}")

    if kind == "fixed":
        X, y = make_toy(n_samples, length, noise, random_state, dtype)
        lens = None
    elif kind == "varlen":
        X, lens, y = make_toy_varlen(n_samples, lengths, noise, random_state, dtype)
    else:
        X, lens, y = make_toy_seq2seq(n_samples, lengths, noise, random_state, dtype)

    def split(a):
        return (None, None) if a is None else (a[:n_train], a[n_train:])

    (X_tr, X_te), (y_tr, y_te), (l_tr, l_te) = split(X), split(y), split(lens)
    # statistics from the training inputs only, then applied to both halves
    scaler = Standardizer().fit(X_tr, l_tr)
    return ToyData(
        X_train=scaler.transform(X_tr, l_tr),
        y_train=y_tr.copy(),
        X_test=scaler.transform(X_te, l_te),
        y_test=y_te.copy(),
        scaler=scaler,
        kind=kind,
        lengths_train=None if l_tr is None else l_tr.copy(),
        lengths_test=None if l_te is None else l_te.copy(),
    )
