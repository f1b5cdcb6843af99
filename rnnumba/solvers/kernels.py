"""One compiled epoch of minibatch SGD / Adam over the flat vector.

The whole epoch (slicing the minibatches, forward, BPTT, clipping, weight
decay, the update and the divergence check) is one call: the seed run is
140,000 steps of a 755-parameter model, where any per-step Python dispatch
would cost more than the arithmetic.

The epoch is itself a ``parallel=True`` function called from Python, one per
cell family (:func:`epoch_kernel`): each minibatch's chunks run on numba's
threads (``prange``) and are summed in chunk order, exactly as
:func:`rnnumba.engine.loss_and_grad` does, so a step's gradient is bitwise the
public one. (It cannot call the engine's parallel function instead: a cached
njit function calling a parallel one crashes a later process, numba issue
8578.) The optimiser's step is a plain function of its own (:func:`update`),
so that the parallel function stays small: numba's parallel passes cost
compile time in proportion to its size.

GPU sibling: ``rnnumba.gpu.solvers`` (``DeviceTrainer.epoch`` and the kernels
``norm_check``, ``update``, ``theta_check``, ``restore``).
"""

import functools
import math

import numpy as np
from numba import prange

from .. import engine
from .._jit import jit
from ..chunks import chunk_bounds, sum_chunks
from ..dropout import update_key
from ..layout import MANY, OUTPUTS
from ..losses import MSE, weighted

SGD, ADAM = 0, 1
# layout of the ``hp`` vector of hyper-parameters
LR, MOMENTUM, NESTEROV, BETA1, BETA2, EPS, CLIP, DECAY = range(8)
N_HP = 8
OK, NONFINITE = 0, 1


def epoch_kernel(family, checkpoint=False):
    """Return the compiled epoch of a cell family.

    Parameters
    ----------
    family : str
        A cell family of :func:`rnnumba.engine.kernels`.
    checkpoint : {False, True, LOCKSTEP}, default False
        Steps by checkpointed BPTT (the kernels of
        ``rnnumba.engine.kernels(family, checkpoint)``).

    Returns
    -------
    numba dispatcher
        ``epoch(theta, grad, spec, offsets, X, lengths, Y, loss, order,
        batch_size, plan, method, hp, state, step, prev, totals)``, documented
        on the function itself; made once per process, family and storage. Its
        Python body (``.py_func``) takes the same steps, bit for bit, calling
        the compiled kernels below it: what a cold fit runs while a helper
        process compiles the epoch (:meth:`rnnumba.solvers.FirstOrder.epoch`).
    """
    return _epoch(family, int(checkpoint))


@functools.cache
def _epoch(family, checkpoint):
    """Build the epoch of :func:`epoch_kernel` (once per process, family and storage)."""
    chunk_loss_and_grad = engine.kernels(family, checkpoint).chunk_loss_and_grad

    # fastmath off: its own arithmetic (the loss totals) is then IEEE's, as its Python body's
    @jit(parallel=True, fastmath=False, name=f"epoch_{family}{('', '_ck', '_ls')[checkpoint]}", driver=True)
    def epoch(
        theta,
        grad,
        spec,
        offsets,
        X,
        lengths,
        Y,
        loss,
        order,
        batch_size,
        plan,
        method,
        hp,
        state,
        step,
        prev,
        totals,
    ):
        """Run the minibatches ``order`` (block indices) once.

        The k-th block of this epoch is update ``u = step + k`` (counted from 0
        over all epochs): its minibatch's loss and gradient (the engine's
        chunks, summed in chunk order) use the dropout key ``update_key(base, u)``,
        then :func:`update` steps with ``t = u + 1``. A minibatch whose target
        weights are all 0 takes no step; its number ``u`` is spent all the same.

        Parameters
        ----------
        theta, grad : ndarray (P,)
            Parameters (updated in place) and a gradient buffer.
        spec, offsets : from :class:`~rnnumba.layout.Layout`
        X, lengths, Y : the padded training arrays (see :mod:`rnnumba.validation`)
        loss : int
            Loss code (:data:`rnnumba.losses.LOSSES`).
        order : int64 (n_blocks,)
            Block ``k`` holds rows ``k*batch_size`` up to ``(k+1)*batch_size``.
        plan : int64 (4,)
            ``rnnumba.chunks.n_chunks`` of a full block and of the last block,
            then dropout between layers: a base key and the threshold
            (:func:`rnnumba.dropout.apply`); update number ``u`` (counted over
            all epochs) draws its masks with the key
            :func:`rnnumba.dropout.update_key` of ``(base, u)``.
        method : int
            :data:`SGD` or :data:`ADAM`.
        hp : float64 (N_HP,)
            lr, momentum, nesterov flag, beta1, beta2, eps, clip (0: none),
            weight decay.
        state : ndarray (2, P)
            Momentum buffer (SGD) or first and second moments (Adam), carried
            across epochs.
        step : int
            Updates done before this epoch (Adam's bias correction).
        prev : ndarray (P,)
            The parameters before the latest update: the last ones whose loss was
            finite, restored into ``theta`` when a step goes non-finite.
        totals : float64 (2,)
            Added to, step by step: the sum over the minibatches of loss times
            rows (weighted targets :func:`rnnumba.losses.weighted`: times their
            weight), and the rows (or weight) of the completed steps. An epoch
            run in pieces (``order`` split, ``step`` advanced) adds up to the
            same bits as in one call.

        Returns
        -------
        steps : int
            Completed updates.
        status : int
            :data:`OK`, or :data:`NONFINITE` (``theta`` then holds ``prev``).
        """
        N = X.shape[0]
        P = theta.shape[0]
        per = spec[OUTPUTS] if loss == MSE else 1
        has_w = weighted(Y[0, 0], spec[OUTPUTS], loss)
        drop = np.empty(2, dtype=np.int64)
        drop[1] = plan[3]
        most = max(plan[0], plan[1])
        partial = np.empty((most, P), dtype=theta.dtype)  # every entry gets written
        values = np.empty(most, dtype=np.float64)
        no_state = np.empty((0, 0, 0), dtype=theta.dtype)  # zero initial states, no dL/dh0
        for k in range(order.shape[0]):
            s0 = order[k] * batch_size
            s1 = min(N, s0 + batch_size)
            if has_w:  # the minibatch's weight; a weightless one takes no step
                count = _weight(Y, lengths, spec[MANY], per, s0, s1)
                if count == 0.0:
                    continue
                scale = 1.0 / count
                share = count
            else:
                count = s1 - s0
                if spec[MANY]:
                    count = 0
                    for i in range(s0, s1):
                        count += lengths[i]
                scale = 1.0 / (count * per)
                share = float(s1 - s0)
            nc = plan[0] if s1 - s0 == batch_size else plan[1]
            drop[0] = update_key(plan[2], step + k)
            Xb, Lb, Yb, nb = X[s0:s1], lengths[s0:s1], Y[s0:s1], s1 - s0
            if nc == 1:  # no parallel region: its start-up costs more than a small batch
                value = chunk_loss_and_grad(
                    theta,
                    grad,
                    spec,
                    offsets,
                    Xb,
                    Lb,
                    Yb,
                    loss,
                    scale,
                    drop,
                    no_state,
                    no_state,
                    engine.FIRST,
                    nb,
                )
            else:
                # the engine's chunks, as its chunks_loss_and_grad (a loop of its own: a cached
                # function calling a parallel one can crash a later process, numba#8578)
                for c in prange(nc):
                    c0, c1 = chunk_bounds(c, 0, nb, nc)
                    values[c] = chunk_loss_and_grad(
                        theta,
                        partial[c],
                        spec,
                        offsets,
                        Xb,
                        Lb,
                        Yb,
                        loss,
                        scale,
                        drop,
                        no_state,
                        no_state,
                        c0,
                        c1,
                    )
                value = sum_chunks(grad, partial, values, nc)
            if not update(theta, grad, value, method, hp, state, step + k + 1, prev):
                return k, NONFINITE
            totals[0] += value * share
            totals[1] += share
        return order.shape[0], OK

    return epoch


@jit
def _weight(Y, lengths, many, per, s0, s1):
    """Sum of the target weights of rows ``s0:s1`` (``Y``'s second half of columns), valid steps only."""
    total = 0.0
    for i in range(s0, s1):
        for t in range(lengths[i] if many else 1):
            for j in range(per, 2 * per):
                total += Y[i, t, j]
    return total


@jit
def update(theta, grad, value, method, hp, state, t, prev):
    """Take one optimiser step from the minibatch loss ``value`` and its gradient ``g``.

    The update::

        if clip > 0 and |g| > clip:   g <- g * clip / |g|          (global L2 norm)
        g <- g + decay * theta
        SGD:   theta <- theta - lr * g                              (mu = 0)
               v <- mu v + g;  theta <- theta - lr * v              (momentum)
               v <- mu v + g;  theta <- theta - lr * (g + mu v)     (Nesterov)
        Adam:  m <- b1 m + (1 - b1) g;   v <- b2 v + (1 - b2) g^2
               theta <- theta - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)

    ``state[0]`` holds ``v`` (SGD) or ``m`` (Adam), ``state[1]`` Adam's ``v``.
    Returns False, with ``theta`` restored from ``prev``, when the loss, the
    gradient or the new parameters are not finite; else keeps the parameters
    before the step in ``prev``. ``t`` counts the updates (Adam's bias
    correction): 1 for the first. GPU sibling: ``rnnumba.gpu.solvers``
    (``build_norm_check``, ``build_update``, ``build_theta_check``,
    ``build_restore``).
    """
    P = theta.shape[0]
    lr, mu, nesterov = hp[LR], hp[MOMENTUM], hp[NESTEROV] != 0.0
    b1, b2, eps, clip, decay = hp[BETA1], hp[BETA2], hp[EPS], hp[CLIP], hp[DECAY]
    norm2 = 0.0
    for p in range(P):
        norm2 += grad[p] * grad[p]
    if not (math.isfinite(value) and math.isfinite(norm2)):
        _copy(theta, prev)
        return False
    if clip > 0.0 and norm2 > clip * clip:  # global-norm clipping
        c = clip / math.sqrt(norm2)
        for p in range(P):
            grad[p] *= c
    _copy(prev, theta)
    finite = True
    if method == SGD:
        for p in range(P):
            g = grad[p] + decay * theta[p]
            if mu != 0.0:
                state[0, p] = mu * state[0, p] + g
                g = g + mu * state[0, p] if nesterov else state[0, p]
            theta[p] -= lr * g
            finite &= math.isfinite(theta[p])
    else:
        c1 = 1.0 - b1**t
        c2 = 1.0 - b2**t
        for p in range(P):
            g = grad[p] + decay * theta[p]
            state[0, p] = b1 * state[0, p] + (1.0 - b1) * g
            state[1, p] = b2 * state[1, p] + (1.0 - b2) * g * g
            theta[p] -= lr * (state[0, p] / c1) / (math.sqrt(state[1, p] / c2) + eps)
            finite &= math.isfinite(theta[p])
    if not finite:
        _copy(theta, prev)
    return finite


@jit
def _copy(dst, src):
    """``dst[:] = src`` for 1-D arrays."""
    for p in range(dst.shape[0]):
        dst[p] = src[p]


def new_state(theta):
    """Zeroed optimiser state for ``theta``: momentum / Adam moments.

    Parameters
    ----------
    theta : ndarray (P,)
        The parameters; the state takes their dtype.

    Returns
    -------
    ndarray (2, P)
        Zeros: the momentum buffer (SGD) or Adam's first and second moments.
    """
    return np.zeros((2, theta.shape[0]), dtype=theta.dtype)
