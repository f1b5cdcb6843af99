"""Dropout between stacked layers: the seed, the key mixing and the mask.

One owner for the counter-based masks: the CPU engine applies them
(:func:`apply`), and the compiled epoch (:mod:`rnnumba.solvers.kernels`) derives
each update's key with :func:`update_key`. A mask depends on the seed, the layer, the
sample, the step and the unit only, never on the chunking or the thread count.
"""

import numpy as np

from ._jit import jit

__all__ = ["GOLDEN", "apply", "mix", "plan", "update_key"]


GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def plan(p, seed=None):
    """Make the ``drop`` argument of the kernels: int64 ``(key, threshold)``.

    Parameters
    ----------
    p : float
        The probability of dropping a layer's output, in [0, 1).
    seed : int, sequence of int or None
        Any ``numpy.random.SeedSequence`` entropy; it picks the masks.

    Returns
    -------
    ndarray of int64, shape (2,)
        ``key`` (a 64-bit hash of ``seed``) and ``threshold = round(p * 2**53)``
        (see :func:`apply`); ``(0, 0)``, no dropout, when ``p == 0`` or
        ``seed is None``.
    """
    if not p or seed is None:
        return np.zeros(2, dtype=np.int64)
    key = np.random.SeedSequence(seed).generate_state(1, np.uint64).view(np.int64)[0]
    return np.array([key, int(round(p * 2.0**53))], dtype=np.int64)


@jit(inline="always")
def mix(x):
    """splitmix64's finaliser: a bijection of uint64 that scrambles every bit.

    ``x ^= x >> 30; x *= 0xBF58476D1CE4E5B9; x ^= x >> 27; x *= 0x94D049BB133111EB;
    x ^= x >> 31`` (uint64 arithmetic, wrapping).
    """
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@jit(inline="always")
def update_key(base, u):
    """Return the dropout key of update number ``u``: ``mix(base + u)`` (uint64, wrapping), as int64.

    ``base`` is :func:`plan`'s key; ``u`` counts the updates from 0 over all
    epochs. A function of its own so that the epoch's Python body (which
    calls it compiled) wraps as the compiled epoch does.
    """
    return np.int64(mix(np.uint64(base) + np.uint64(u)))


@jit
def apply(A, drop, layer, s0, lens, a):
    """Apply inverted dropout, in place, to a layer's outputs ``A`` (T, n, H*D).

    Or to a segment's: original step ``t`` in row ``t - a`` of ``A``, for
    ``a <= t < a + len(A)``.

    At every valid step each entry is zeroed or scaled by 1 / (keep
    probability).

    ``drop`` is ``(key, threshold)``, ``threshold = p * 2**53``. Entry
    ``(sample s = s0+i, original step t, unit j)`` is multiplied by::

        row = mix(mix(mix(key ^ layer) ^ s) ^ t)
        u   = mix(row + j * GOLDEN) >> 11                     (53 bits)
        m   = 0  if u < threshold  else  2**53 / (2**53 - threshold)   (= 1/(1-p))

    with ``mix`` = :func:`mix` and ``GOLDEN = 0x9E3779B97F4A7C15``. A
    counter-based mask: the same on any chunking or thread count, and the
    backward pass multiplies dL/dA by the same ``m`` (recomputing it instead
    of storing it). ``threshold == 0``: no dropout. No GPU sibling (the GPU
    backend refuses dropout).
    """
    key, threshold = drop[0], drop[1]
    if threshold == 0:
        return
    scale = 9007199254740992.0 / (9007199254740992.0 - threshold)  # 2**53 / (2**53 - threshold)
    for i in range(A.shape[1]):
        for t in range(a, min(lens[i], a + A.shape[0])):
            row = mix(mix(mix(np.uint64(key) ^ np.uint64(layer)) ^ np.uint64(s0 + i)) ^ np.uint64(t))
            for j in range(A.shape[2]):
                u = np.int64(mix(row + np.uint64(j) * GOLDEN) >> np.uint64(11))
                A[t - a, i, j] = A[t - a, i, j] * scale if u >= threshold else 0.0
