"""Losses at the linear head: value and derivative, compiled.

``MSE`` (code 0): ``sum((y_hat - y)^2) / count`` over the valid target elements,
so its derivative is ``2 (y_hat - y) / count`` (the seed's ``2(y_hat - y)/B``).
``XENT`` (code 1): softmax cross-entropy, ``-log softmax(y_hat)[class]`` averaged
over the valid predictions; ``y`` holds the class index.

``scale`` is ``1 / count``; the caller computes ``count`` once for the batch so
that chunks of it add up exactly.

Weights (sample weights, class weights, masked steps): targets with twice their
columns, ``[y | w]``, weigh each target element's loss by its ``w`` and
``count`` is the sum of the weights (:func:`weighted`). Without the second
half every weight is 1 and nothing is multiplied.

GPU siblings: ``rnnumba.gpu.head`` (``loss_rows``: the row losses and
``dy_hat``) and the head's GEMMs in
``rnnumba.gpu.engine.DeviceEngine.device_loss_and_grad``.
"""

import math

import numpy as np

from ._borrow import borrow
from ._jit import jit

MSE, XENT = 0, 1
LOSSES = {"mse": MSE, "xent": XENT}


@jit(inline="always")
def weighted(Y, O, loss):
    """Return whether targets ``Y`` (rows, columns) carry weights: ``[y | w]``, twice the columns.

    ``O`` outputs; a target row has ``O`` values (MSE) or one class index (XENT).
    """
    return Y.shape[-1] == 2 * (O if loss == MSE else 1)


@jit(inline="always")
def _affine(W_out, b_out, F, out):
    """``out = F W_out^T + b_out``: the affine head, ``out[m, o] = sum_k F[m, k] W_out[o, k] + b_out[o]``.

    One dot product per output, vectorised along ``F``'s rows. Plain loops: a
    head has few outputs, and the general products (with their BLAS paths)
    made it the slowest part of a cold start.
    """
    zero = out.dtype.type(0)  # accumulate in the arrays' precision
    for m in range(F.shape[0]):
        for o in range(W_out.shape[0]):
            s = zero
            for k in range(F.shape[1]):
                s += F[m, k] * W_out[o, k]
            out[m, o] = s + b_out[o]


@jit
def head(W_out, b_out, F, Y, loss, scale, dF, dW_out, db_out):
    """Compute the readout ``y_hat = F W_out^T + b_out`` of M rows, its loss and gradients.

    The equations::

        MSE:   L      = scale * sum_m sum_o w[m, o] (y_hat[m, o] - y[m, o])^2
               dy_hat = 2 * scale * w * (y_hat - y)
        XENT:  L      = scale * sum_m w[m] (log sum_o exp(y_hat[m, o]) - y_hat[m, c_m])
               dy_hat = scale * w[m] * (softmax(y_hat[m]) - onehot(c_m))      (shifted by max_o)
        dF = dy_hat W_out        dW_out = dy_hat^T F        db_out = sum_m dy_hat[m]

    ``F`` (M, H*D) features, ``Y`` (M, O) targets (class index ``c_m`` in
    column 0 for cross-entropy), or (M, 2O) / (M, 2) with the weights ``w``
    after them (:func:`weighted`; else every ``w`` is 1). ``dF`` (M, H*D), ``dW_out`` and ``db_out`` are
    written (not accumulated); returns ``L``. GPU sibling:
    ``rnnumba.gpu.head.loss_rows`` (``L`` per row and ``dy_hat``), the products
    in ``rnnumba.gpu.engine.DeviceEngine.device_loss_and_grad``.
    """
    F, Y, dF = borrow(F), borrow(Y), borrow(dF)  # the caller's: no counting of their views
    M, O, K = F.shape[0], W_out.shape[0], F.shape[1]
    Yhat = np.empty((M, O), dtype=F.dtype)
    _affine(W_out, b_out, F, Yhat)
    total = 0.0
    has_w = weighted(Y, O, loss)
    for m in range(M):
        if loss == MSE and has_w:
            for o in range(O):
                r = Yhat[m, o] - Y[m, o]
                w = Y[m, O + o]
                total += w * r * r
                Yhat[m, o] = 2.0 * r * scale * w
        elif loss == MSE:
            for o in range(O):
                r = Yhat[m, o] - Y[m, o]
                total += r * r
                Yhat[m, o] = 2.0 * r * scale  # now dL/dy_hat
        else:
            c = int(Y[m, 0])
            top = Yhat[m, 0]
            for o in range(1, O):
                top = max(top, Yhat[m, o])
            z = 0.0
            for o in range(O):
                z += math.exp(Yhat[m, o] - top)
            w = Y[m, 1] if has_w else 1.0
            total += w * (math.log(z) + top - Yhat[m, c])
            ws = w * scale
            for o in range(O):
                Yhat[m, o] = math.exp(Yhat[m, o] - top) / z * ws
            Yhat[m, c] -= ws
    for o in range(O):
        db_out[o] = 0.0
        for k in range(K):
            dW_out[o, k] = 0.0
    for m in range(M):
        for k in range(K):
            dF[m, k] = 0.0
        for o in range(O):
            d = Yhat[m, o]
            db_out[o] += d
            for k in range(K):
                dF[m, k] += d * W_out[o, k]
                dW_out[o, k] += d * F[m, k]
    return total * scale


@jit
def readout(W_out, b_out, F, out):
    """``out = F W_out^T + b_out`` (raw scores; no softmax).

    GPU sibling: ``rnnumba.gpu.engine.DeviceEngine.readout``.
    """
    _affine(W_out, b_out, F, out)
