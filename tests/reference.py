"""Slow, plain NumPy reference of every network rnnumba supports (float64).

Every compiled kernel is tested against this module, so it is written for
clarity, not speed: one sample at a time, one time step at a time, each cell
written out like its equations, and backprop-through-time by hand (no autograd).

Conventions (see ``rnnumba/layout.py`` for where the parameters live):

* ``X`` (N, T, I) is right-padded; sample ``n`` has ``lengths[n]`` valid steps
  (1 <= lengths[n] <= T). Padded entries of ``X`` and of the targets are never
  read, so any garbage (even NaN) there has no effect.
* Every layer and direction starts from a zero state (h0 = c0 = 0), or from
  the given ``h0`` ((num_layers * D, N, H), PyTorch's order; ``(h0, c0)`` for
  the LSTM), and reads the sample's valid steps only: forward t = 0..L-1, reverse t = L-1..0.
  The layer's output at step t is ``[h_fwd_t, h_rev_t]``, where ``h_rev_t`` is
  the reverse state after reading steps t..L-1. Layer l > 0 reads the output
  sequence of layer l-1.
* Many-to-one: feature = top layer's ``[h_fwd_{L-1}, h_rev_0]`` (each
  direction's final state, PyTorch's ``h_n``); many-to-many: the top layer's
  output at every valid step. Head: ``yhat = W_out @ feature + b_out``.
* ``W`` (G*H, H + I_l): columns for ``h_{t-1}`` first, then those for ``x_t``;
  rows are gate blocks of H rows (LSTM i, f, g, o; GRU r, z, n).
* Losses: "mse" = sum of squared errors over valid target elements / count
  (count = N*O many-to-one, sum(lengths)*O many-to-many); "xent" = mean over
  samples (many-to-one) or valid steps (many-to-many) of -log softmax[class].

Public API: :func:`forward`, :func:`loss_value`, :func:`loss_and_grad`,
:func:`numerical_grad` (and :func:`loss_from_outputs`).
"""

import numpy as np

from rnnumba.layout import Layout

GRU_VARIANTS = ("pytorch", "cho")
LOSSES = ("mse", "xent")


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


# --------------------------------------------------------------------------
# Cells: one step forward, one step backward.
#
# step(P, h, c, x) -> (h_new, c_new, cache)
# step_back(P, G, cache, dh, dc) -> (dh_prev, dc_prev, dx), adding the
#     parameter gradients into G (same keys as P).
# P holds "W", "b" and, where the cell has them, "b_hn" (GRU) and "p" (LSTM).
# Elman and GRU carry no cell state: c stays zero and dc_prev is zero.
# --------------------------------------------------------------------------


def elman_step(P, h, c, x):
    hx = np.concatenate([h, x])
    h_new = np.tanh(P["W"] @ hx + P["b"])
    return h_new, c, dict(hx=hx, h_new=h_new)


def elman_step_back(P, G, cache, dh, dc):
    H = dh.shape[0]
    hx, h_new = cache["hx"], cache["h_new"]
    da = dh * (1.0 - h_new**2)
    G["W"] += np.outer(da, hx)
    G["b"] += da
    dhx = P["W"].T @ da
    return dhx[:H], np.zeros(H), dhx[H:]


def lstm_step(P, h, c, x):
    """i = s(a_i + p_i*c_prev), f = s(a_f + p_f*c_prev), g = tanh(a_g),
    c = f*c_prev + i*g, o = s(a_o + p_o*c), h = o*tanh(c)."""
    H = h.shape[0]
    hx = np.concatenate([h, x])
    a = P["W"] @ hx + P["b"]
    a_i, a_f, a_g, a_o = a[0:H], a[H : 2 * H], a[2 * H : 3 * H], a[3 * H : 4 * H]
    p_i, p_f, p_o = P["p"][0], P["p"][1], P["p"][2]
    i = sigmoid(a_i + p_i * c)
    f = sigmoid(a_f + p_f * c)
    g = np.tanh(a_g)
    c_new = f * c + i * g
    o = sigmoid(a_o + p_o * c_new)
    tanh_c = np.tanh(c_new)
    h_new = o * tanh_c
    cache = dict(hx=hx, c_prev=c, i=i, f=f, g=g, o=o, c_new=c_new, tanh_c=tanh_c)
    return h_new, c_new, cache


def lstm_step_back(P, G, cache, dh, dc):
    hx, c_prev, c_new = cache["hx"], cache["c_prev"], cache["c_new"]
    i, f, g, o, tanh_c = cache["i"], cache["f"], cache["g"], cache["o"], cache["tanh_c"]
    p_i, p_f, p_o = P["p"][0], P["p"][1], P["p"][2]
    # h = o * tanh(c)
    do = dh * tanh_c
    dc_new = dc + dh * o * (1.0 - tanh_c**2)
    # o = s(a_o + p_o * c)
    da_o = do * o * (1.0 - o)
    dc_new = dc_new + da_o * p_o
    # c = f * c_prev + i * g
    di = dc_new * g
    df = dc_new * c_prev
    dg = dc_new * i
    dc_prev = dc_new * f
    # i = s(a_i + p_i c_prev), f = s(a_f + p_f c_prev), g = tanh(a_g)
    da_i = di * i * (1.0 - i)
    da_f = df * f * (1.0 - f)
    da_g = dg * (1.0 - g**2)
    dc_prev = dc_prev + da_i * p_i + da_f * p_f
    G["p"][0] += da_i * c_prev
    G["p"][1] += da_f * c_prev
    G["p"][2] += da_o * c_new
    # a = W [h; x] + b
    da = np.concatenate([da_i, da_f, da_g, da_o])
    G["W"] += np.outer(da, hx)
    G["b"] += da
    dhx = P["W"].T @ da
    H = dh.shape[0]
    return dhx[:H], dc_prev, dhx[H:]


def gru_step(P, h, c, x, variant):
    """r = s(W_r [h;x] + b_r), z = s(W_z [h;x] + b_z),
    pytorch: n = tanh(W_nx x + b_n + r*(W_nh h + b_hn)),
    cho:     n = tanh(W_nx x + b_n + W_nh (r*h)),
    h' = (1-z)*n + z*h."""
    H = h.shape[0]
    W, b = P["W"], P["b"]
    W_r, W_z = W[0:H], W[H : 2 * H]
    W_nh, W_nx = W[2 * H : 3 * H, :H], W[2 * H : 3 * H, H:]
    b_r, b_z, b_n = b[0:H], b[H : 2 * H], b[2 * H : 3 * H]
    hx = np.concatenate([h, x])
    r = sigmoid(W_r @ hx + b_r)
    z = sigmoid(W_z @ hx + b_z)
    if variant == "pytorch":
        hn = W_nh @ h + P["b_hn"]
        n = np.tanh(W_nx @ x + b_n + r * hn)
    else:
        hn = None
        n = np.tanh(W_nx @ x + b_n + W_nh @ (r * h))
    h_new = (1.0 - z) * n + z * h
    return h_new, c, dict(hx=hx, h=h, x=x, r=r, z=z, n=n, hn=hn)


def gru_step_back(P, G, cache, dh, dc, variant):
    H = dh.shape[0]
    W = P["W"]
    W_r, W_z = W[0:H], W[H : 2 * H]
    W_nh, W_nx = W[2 * H : 3 * H, :H], W[2 * H : 3 * H, H:]
    hx, h, x = cache["hx"], cache["h"], cache["x"]
    r, z, n = cache["r"], cache["z"], cache["n"]
    # h' = (1-z)*n + z*h
    dn = dh * (1.0 - z)
    dz = dh * (h - n)
    dh_prev = dh * z
    dx = np.zeros(x.shape[0])
    # n = tanh(a_n)
    da_n = dn * (1.0 - n**2)
    G["W"][2 * H : 3 * H, H:] += np.outer(da_n, x)
    G["b"][2 * H : 3 * H] += da_n
    dx += W_nx.T @ da_n
    if variant == "pytorch":
        # a_n = W_nx x + b_n + r * (W_nh h + b_hn)
        hn = cache["hn"]
        dr = da_n * hn
        dhn = da_n * r
        G["W"][2 * H : 3 * H, :H] += np.outer(dhn, h)
        G["b_hn"] += dhn
        dh_prev += W_nh.T @ dhn
    else:
        # a_n = W_nx x + b_n + W_nh (r * h)
        drh = W_nh.T @ da_n
        G["W"][2 * H : 3 * H, :H] += np.outer(da_n, r * h)
        dr = drh * h
        dh_prev += drh * r
    # r = s(W_r [h;x] + b_r), z = s(W_z [h;x] + b_z)
    da_r = dr * r * (1.0 - r)
    da_z = dz * z * (1.0 - z)
    G["W"][0:H] += np.outer(da_r, hx)
    G["W"][H : 2 * H] += np.outer(da_z, hx)
    G["b"][0:H] += da_r
    G["b"][H : 2 * H] += da_z
    dhx = W_r.T @ da_r + W_z.T @ da_z
    dh_prev += dhx[:H]
    dx += dhx[H:]
    return dh_prev, np.zeros(H), dx


def _step_functions(cell, gru):
    if cell == "elman":
        return elman_step, elman_step_back
    if cell == "lstm":
        return lstm_step, lstm_step_back
    return (
        lambda P, h, c, x: gru_step(P, h, c, x, gru),
        lambda P, G, cache, dh, dc: gru_step_back(P, G, cache, dh, dc, gru),
    )


# --------------------------------------------------------------------------
# Parameters of one layer and direction.
# --------------------------------------------------------------------------


def _cell_params(layout, views, layer, direction):
    """Dict of this layer/direction's tensors (views into theta or grad).

    An LSTM without peepholes gets ``p = 0`` (a fresh scratch array, so the
    gradient written into it goes nowhere)."""
    s = Layout.suffix(layer, direction)
    P = {"W": views["W" + s], "b": views["b" + s]}
    if layout.cell == "gru":
        P["b_hn"] = views["b_hn" + s]
    if layout.cell == "lstm":
        P["p"] = views["p" + s] if layout.peephole else np.zeros((3, layout.hidden))
    return P


# --------------------------------------------------------------------------
# One sample through the stack of layers, and back.
# --------------------------------------------------------------------------


def _run_direction(step, P, xs, H, reverse, start=None):
    """Run one cell over the sequence ``xs`` (a list of L vectors) from the
    state ``start`` = (h, c) (default zeros).

    Returns the states ``hs[t]`` (after reading step t), the caches and the
    final (h, c)."""
    L = len(xs)
    h, c = (np.zeros(H), np.zeros(H)) if start is None else start
    hs, caches = [None] * L, [None] * L
    order = range(L - 1, -1, -1) if reverse else range(L)
    for t in order:
        h, c, caches[t] = step(P, h, c, xs[t])
        hs[t] = h
    return hs, caches, (h, c)


def _back_direction(step_back, P, G, caches, dhs, H, reverse):
    """BPTT through one direction: ``dhs[t]`` is dLoss/dhs[t] from above.

    Returns dLoss/dxs[t] for every t and dLoss/d(initial h, c); parameter
    gradients go into ``G``."""
    L = len(caches)
    dh, dc = np.zeros(H), np.zeros(H)
    dxs = [None] * L
    order = range(L) if reverse else range(L - 1, -1, -1)  # reverse of forward order
    for t in order:
        dh, dc, dxs[t] = step_back(P, G, caches[t], dh + dhs[t], dc)
    return dxs, (dh, dc)


def _forward_sample(layout, views, xs, gru, masks=None, starts=None):
    """Run the recurrent stack over one sample's valid steps ``xs``.

    ``masks`` (num_layers - 1, T, H*D), optional: dropout, multiplied into the
    outputs of every layer but the last. ``starts``, optional: the initial
    (h, c) of each layer and direction, ``starts[layer * D + d]``. Returns
    the top layer's outputs (list of L vectors of size H*D) and the tape: per
    layer ``(inputs, [(hs, caches, final (h, c)) for each direction])``."""
    step, _ = _step_functions(layout.cell, gru)
    H, D = layout.hidden, layout.directions
    L = len(xs)
    tape = []
    inputs = xs
    for layer in range(layout.num_layers):
        runs = []
        for d in range(D):
            P = _cell_params(layout, views, layer, d)
            start = None if starts is None else starts[layer * D + d]
            runs.append(_run_direction(step, P, inputs, H, reverse=(d == 1), start=start))
        outputs = [np.concatenate([runs[d][0][t] for d in range(D)]) for t in range(L)]
        if masks is not None and layer < layout.num_layers - 1:
            outputs = [outputs[t] * masks[layer][t] for t in range(L)]
        tape.append((inputs, runs))
        inputs = outputs
    return inputs, tape


def _backward_sample(layout, views, grads, tape, d_outputs, gru, masks=None):
    """Backprop ``d_outputs`` (dLoss/d top-layer output, list of L vectors)
    through the stack, adding parameter gradients into ``grads``. Returns
    dLoss/d(initial h, c) of each layer and direction."""
    _, step_back = _step_functions(layout.cell, gru)
    H, D = layout.hidden, layout.directions
    d_starts = [None] * (layout.num_layers * D)
    for layer in range(layout.num_layers - 1, -1, -1):
        inputs, runs = tape[layer]
        L = len(inputs)
        d_inputs = [np.zeros(inputs[t].shape[0]) for t in range(L)]
        for d in range(D):
            P = _cell_params(layout, views, layer, d)
            G = _cell_params(layout, grads, layer, d)
            dhs = [d_outputs[t][d * H : (d + 1) * H] for t in range(L)]
            dxs, d_starts[layer * D + d] = _back_direction(
                step_back, P, G, runs[d][1], dhs, H, reverse=(d == 1)
            )
            for t in range(L):
                d_inputs[t] += dxs[t]
        if masks is not None and layer > 0:
            d_inputs = [d_inputs[t] * masks[layer - 1][t] for t in range(L)]
        d_outputs = d_inputs
    return d_starts


def _features(layout, outputs, many_to_many):
    """The vectors the head reads: one (many-to-one) or one per valid step."""
    if many_to_many:
        return list(outputs)
    H, L = layout.hidden, len(outputs)
    last_fwd = outputs[L - 1][:H]
    if layout.bidirectional:
        return [np.concatenate([last_fwd, outputs[0][H:]])]
    return [last_fwd]


def _d_outputs_from_features(layout, d_feats, L, many_to_many):
    """Inverse of :func:`_features` for gradients: dLoss/d outputs[t]."""
    if many_to_many:
        return list(d_feats)
    H, D = layout.hidden, layout.directions
    d_outputs = [np.zeros(H * D) for _ in range(L)]
    d_outputs[L - 1][:H] += d_feats[0][:H]
    if layout.bidirectional:
        d_outputs[0][H:] += d_feats[0][H:]
    return d_outputs


# --------------------------------------------------------------------------
# Losses.
# --------------------------------------------------------------------------


def _loss_term(yhat, target, loss):
    """One output vector's un-normalised loss and its gradient dloss/dyhat."""
    if loss == "mse":
        diff = yhat - target
        return np.sum(diff**2), 2.0 * diff
    k = int(target)
    if not 0 <= k < yhat.shape[0]:
        raise ValueError(f"class {k} out of range for {yhat.shape[0]} outputs")
    z = yhat - np.max(yhat)
    log_p = z - np.log(np.sum(np.exp(z)))
    d = np.exp(log_p)
    d[k] -= 1.0
    return -log_p[k], d


def _count(lengths, output_size, loss, many_to_many):
    """The loss's denominator."""
    steps = int(np.sum(lengths)) if many_to_many else len(lengths)
    return steps * output_size if loss == "mse" else steps


def _targets(y, n, L, many_to_many):
    """Sample n's targets, one per head output (never reads padding)."""
    if many_to_many:
        return [y[n, t] for t in range(L)]
    return [y[n]]


def _check(layout, theta, X, lengths, gru, loss="mse"):
    if gru not in GRU_VARIANTS:
        raise ValueError(f"gru must be one of {GRU_VARIANTS}, got {gru!r}")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    theta = np.asarray(theta, dtype=np.float64)
    X = np.asarray(X, dtype=np.float64)
    lengths = np.asarray(lengths)
    if X.ndim != 3 or X.shape[2] != layout.input_size:
        raise ValueError(f"X must be (N, T, {layout.input_size}), got {X.shape}")
    N, T, _ = X.shape
    if lengths.shape != (N,) or np.any(lengths < 1) or np.any(lengths > T):
        raise ValueError(f"lengths must be (N,) with values in [1, {T}], got {lengths}")
    return theta, X, [int(L) for L in lengths]


# --------------------------------------------------------------------------
# Public API.
# --------------------------------------------------------------------------


def _starts(layout, h0, n):
    """Sample n's initial (h, c) per layer and direction, or None for zeros."""
    if h0 is None:
        return None
    h, c = h0 if layout.cell == "lstm" else (h0, None)
    H = layout.hidden
    return [
        (
            np.array(h[k, n], dtype=np.float64),
            np.zeros(H) if c is None else np.array(c[k, n], dtype=np.float64),
        )
        for k in range(layout.num_layers * layout.directions)
    ]


def _state_array(layout, per_sample):
    """(num_layers * D, N, H) array(s) from per-sample lists of (h, c) pairs."""
    h = np.stack([[hc[0] for hc in s] for s in per_sample], axis=1)
    if layout.cell != "lstm":
        return h
    return h, np.stack([[hc[1] for hc in s] for s in per_sample], axis=1)


def forward(layout, theta, X, lengths, many_to_many=False, gru="pytorch", h0=None, return_state=False):
    """Network outputs: (N, O), or (N, T, O) with NaN at padded steps; with
    ``return_state`` also every layer and direction's final state (as ``h0``)."""
    theta, X, lengths = _check(layout, theta, X, lengths, gru)
    views = layout.views(theta)
    N, T, _ = X.shape
    O = layout.output_size
    yhat = np.full((N, T, O) if many_to_many else (N, O), np.nan)
    finals = []
    for n in range(N):
        L = lengths[n]
        starts = _starts(layout, h0, n)
        outputs, tape = _forward_sample(layout, views, [X[n, t] for t in range(L)], gru, starts=starts)
        finals.append([run[2] for _, runs in tape for run in runs])
        for k, feat in enumerate(_features(layout, outputs, many_to_many)):
            out = views["W_out"] @ feat + views["b_out"]
            if many_to_many:
                yhat[n, k] = out
            else:
                yhat[n] = out
    return (yhat, _state_array(layout, finals)) if return_state else yhat


def loss_from_outputs(yhat, y, lengths, loss="mse", many_to_many=False):
    """The loss of given outputs (written independently of :func:`loss_and_grad`)."""
    O = yhat.shape[-1]
    total = 0.0
    for n, L in enumerate(lengths):
        pairs = [(yhat[n, t], y[n, t]) for t in range(L)] if many_to_many else [(yhat[n], y[n])]
        for out, target in pairs:
            if loss == "mse":
                total += np.sum((out - target) ** 2)
            else:
                m = np.max(out)
                log_sum_exp = m + np.log(np.sum(np.exp(out - m)))
                total += log_sum_exp - out[int(target)]
    return total / _count(lengths, O, loss, many_to_many)


def loss_value(layout, theta, X, lengths, y, loss="mse", many_to_many=False, gru="pytorch", h0=None):
    """The loss alone: :func:`forward` then :func:`loss_from_outputs`."""
    yhat = forward(layout, theta, X, lengths, many_to_many, gru, h0=h0)
    return loss_from_outputs(yhat, y, [int(L) for L in lengths], loss, many_to_many)


def loss_and_grad(
    layout, theta, X, lengths, y, loss="mse", many_to_many=False, gru="pytorch", masks=None, h0=None
):
    """Loss and its gradient (flat, in the layout of ``theta``) by hand-written BPTT.

    ``y``: "mse" targets (N, O) or (N, T, O); "xent" integer classes (N,) or
    (N, T). Padded targets are never read. ``masks`` (num_layers - 1, N, T,
    H*D), optional: dropout multipliers on the outputs of all layers but the
    last. With initial states ``h0`` the result is ``(loss, grad, dh0)``, with
    ``dh0`` shaped like ``h0``."""
    theta, X, lengths = _check(layout, theta, X, lengths, gru, loss)
    views = layout.views(theta)
    grad = np.zeros_like(theta)
    grads = layout.views(grad)
    W_out, b_out = views["W_out"], views["b_out"]
    N = X.shape[0]
    scale = 1.0 / _count(lengths, layout.output_size, loss, many_to_many)
    total = 0.0
    d_starts = []
    for n in range(N):
        L = lengths[n]
        m = None if masks is None else masks[:, n]
        starts = _starts(layout, h0, n)
        outputs, tape = _forward_sample(layout, views, [X[n, t] for t in range(L)], gru, m, starts)
        feats = _features(layout, outputs, many_to_many)
        d_feats = []
        for feat, target in zip(feats, _targets(y, n, L, many_to_many), strict=True):
            yhat = W_out @ feat + b_out
            value, d_yhat = _loss_term(yhat, target, loss)
            total += value
            d_yhat = d_yhat * scale
            grads["W_out"] += np.outer(d_yhat, feat)
            grads["b_out"] += d_yhat
            d_feats.append(W_out.T @ d_yhat)
        d_outputs = _d_outputs_from_features(layout, d_feats, L, many_to_many)
        d_starts.append(_backward_sample(layout, views, grads, tape, d_outputs, gru, m))
    if h0 is not None:
        return total * scale, grad, _state_array(layout, d_starts)
    return total * scale, grad


def numerical_grad(f, theta, eps=1e-6):
    """Central differences of the scalar function ``f`` at ``theta``."""
    theta = np.array(theta, dtype=np.float64)
    grad = np.zeros_like(theta)
    for k in range(theta.shape[0]):
        old = theta[k]
        theta[k] = old + eps
        f_plus = f(theta)
        theta[k] = old - eps
        f_minus = f(theta)
        theta[k] = old
        grad[k] = (f_plus - f_minus) / (2.0 * eps)
    return grad
