"""Losses at the linear head: value and derivative, compiled.

``MSE`` (code 0): ``sum((y_hat - y)^2) / count`` over the valid target elements,
so its derivative is ``2 (y_hat - y) / count`` (the seed's ``2(y_hat - y)/B``).
``XENT`` (code 1): softmax cross-entropy, ``-log softmax(y_hat)[class]`` averaged
over the valid predictions; ``y`` holds the class index.

``scale`` is ``1 / count``; the caller computes ``count`` once for the batch so
that chunks of it add up exactly.
"""

import math

from ._jit import jit

MSE, XENT = 0, 1
LOSSES = {"mse": MSE, "xent": XENT}


@jit
def _head(W_out, b_out, F, Y, loss, scale, dF, dW_out, db_out):
    """Readout ``y_hat = F W_out^T + b_out`` of M rows, its loss and gradients.

    ``F`` (M, H*D) features, ``Y`` (M, O) targets (class index in column 0 for
    cross-entropy). Writes ``dF`` (M, H*D) and ``dW_out``, ``db_out``; returns the
    loss summed over rows, times ``scale``.
    """
    M, O = F.shape[0], W_out.shape[0]
    Yhat = F @ W_out.T
    total = 0.0
    for m in range(M):
        for o in range(O):
            Yhat[m, o] += b_out[o]
        if loss == MSE:
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
            total += math.log(z) + top - Yhat[m, c]
            for o in range(O):
                Yhat[m, o] = math.exp(Yhat[m, o] - top) / z * scale
            Yhat[m, c] -= scale
    dF[:, :] = Yhat @ W_out
    dW_out[:, :] = Yhat.T @ F
    for o in range(O):
        s = 0.0
        for m in range(M):
            s += Yhat[m, o]
        db_out[o] = s
    return total * scale


@jit
def _readout(W_out, b_out, F, out):
    """``out = F W_out^T + b_out`` (raw scores; no softmax)."""
    out[:, :] = F @ W_out.T
    for m in range(F.shape[0]):
        for o in range(W_out.shape[0]):
            out[m, o] += b_out[o]
