"""The same networks built from PyTorch modules (float64), for cross-checks.

``torch`` is imported lazily, so importing this module never needs it; tests
call ``pytest.importorskip("torch")`` first.

Mapping from rnnumba's layout (per layer ``k`` and direction, ``_reverse``
suffix for the reverse one)::

    weight_hh_l{k} = W[:, :H]        weight_ih_l{k} = W[:, H:]
    bias_ih_l{k}   = b               bias_hh_l{k}   = 0      (RNN, LSTM)
                                     bias_hh_l{k}   = [0, 0, b_hn]  (GRU)
    head (nn.Linear): weight = W_out, bias = b_out

PyTorch has no peephole LSTM and no Cho ("reset before") GRU.
Gradients map back as: grad W = [grad weight_hh, grad weight_ih];
grad b = grad bias_ih (== grad bias_hh for RNN/LSTM and for the GRU's r, z
rows); grad b_hn = grad bias_hh[2H:3H] (GRU).
"""

import numpy as np

_MODULES = {"elman": "RNN", "lstm": "LSTM", "gru": "GRU"}


def _torch():
    import torch

    return torch


def _names(layout, layer, direction):
    rnnumba_suffix = layout.suffix(layer, direction)
    torch_suffix = f"_l{layer}" + ("_reverse" if direction else "")
    return rnnumba_suffix, torch_suffix


def build_torch(layout, theta, gru="pytorch"):
    """``(rnn, head)``: a batch-first ``nn.RNN``/``nn.LSTM``/``nn.GRU`` and an
    ``nn.Linear``, float64, holding the parameters ``theta``."""
    torch = _torch()
    if layout.peephole:
        raise ValueError("PyTorch has no peephole LSTM")
    if layout.cell == "gru" and gru != "pytorch":
        raise ValueError(f"PyTorch has no GRU variant {gru!r}")
    H, D = layout.hidden, layout.directions
    kwargs = dict(
        input_size=layout.input_size,
        hidden_size=H,
        num_layers=layout.num_layers,
        bidirectional=layout.bidirectional,
        batch_first=True,
        dtype=torch.float64,
    )
    if layout.cell == "elman":
        kwargs["nonlinearity"] = "tanh"
    rnn = getattr(torch.nn, _MODULES[layout.cell])(**kwargs)
    head = torch.nn.Linear(H * D, layout.output_size, dtype=torch.float64)
    views = layout.views(np.asarray(theta, dtype=np.float64))
    params = dict(rnn.named_parameters())
    with torch.no_grad():
        for layer in range(layout.num_layers):
            for d in range(D):
                s, ts = _names(layout, layer, d)
                W, b = views["W" + s], views["b" + s]
                params["weight_hh" + ts].copy_(torch.from_numpy(W[:, :H].copy()))
                params["weight_ih" + ts].copy_(torch.from_numpy(W[:, H:].copy()))
                params["bias_ih" + ts].copy_(torch.from_numpy(b.copy()))
                bias_hh = np.zeros_like(b)
                if layout.cell == "gru":
                    bias_hh[2 * H :] = views["b_hn" + s]
                params["bias_hh" + ts].copy_(torch.from_numpy(bias_hh))
        head.weight.copy_(torch.from_numpy(views["W_out"].copy()))
        head.bias.copy_(torch.from_numpy(views["b_out"].copy()))
    return rnn, head


def torch_forward(layout, rnn, head, X, lengths, many_to_many=False, h0=None, return_state=False):
    """Head outputs as a torch tensor: (N, O), or (N, T, O) (padded steps
    hold the head applied to zeros; mask them); ``h0``: initial state tensor(s)
    given to the module; ``return_state``: also its ``h_n``."""
    torch = _torch()
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    X = torch.as_tensor(np.asarray(X, dtype=np.float64))
    lengths_t = torch.as_tensor(np.asarray(lengths, dtype=np.int64))
    packed = pack_padded_sequence(X, lengths_t, batch_first=True, enforce_sorted=False)
    out, state = rnn(packed) if h0 is None else rnn(packed, h0)
    h_n = state[0] if layout.cell == "lstm" else state
    if many_to_many:
        padded, _ = pad_packed_sequence(out, batch_first=True, total_length=X.shape[1])
        return (head(padded), state) if return_state else head(padded)
    # h_n: (num_layers * D, N, H), the top layer's directions last
    if layout.bidirectional:
        feat = torch.cat([h_n[-2], h_n[-1]], dim=1)
    else:
        feat = h_n[-1]
    return (head(feat), state) if return_state else head(feat)


def _torch_backward(layout, theta, X, lengths, y, loss, many_to_many, gru, h0=None):
    """Build the modules, run forward and backward; ``(rnn, head, loss, yhat,
    mask)``; ``h0`` (NumPy, pairs for the LSTM) becomes leaf tensors that
    require gradients, returned as a sixth element."""
    torch = _torch()
    import torch.nn.functional as F

    rnn, head = build_torch(layout, theta, gru)
    X = np.asarray(X, dtype=np.float64)
    lengths = np.asarray(lengths, dtype=np.int64)
    T = X.shape[1]
    h0_t = None
    if h0 is not None:
        parts = h0 if layout.cell == "lstm" else (h0,)
        h0_t = tuple(torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=True) for a in parts)
    yhat = torch_forward(
        layout,
        rnn,
        head,
        X,
        lengths,
        many_to_many,
        None if h0_t is None else (h0_t if layout.cell == "lstm" else h0_t[0]),
    )
    # Select valid steps by indexing (never multiply by a mask: padded
    # targets may be NaN, and NaN * 0 is NaN in the backward pass too).
    mask = None
    if many_to_many:
        mask = torch.as_tensor(np.arange(T)[None, :] < lengths[:, None])
        out, target = yhat[mask], torch.as_tensor(np.asarray(y))[mask]
    else:
        out, target = yhat, torch.as_tensor(np.asarray(y))
    if loss == "mse":
        value = torch.mean((out - target.to(torch.float64)) ** 2)
    elif loss == "xent":
        value = F.cross_entropy(out, target.to(torch.int64), reduction="mean")
    else:
        raise ValueError(f"unknown loss {loss!r}")
    value.backward()
    if h0 is not None:
        return rnn, head, value, yhat, mask, h0_t
    return rnn, head, value, yhat, mask


def torch_loss_and_grad(layout, theta, X, lengths, y, loss="mse", many_to_many=False, gru="pytorch", h0=None):
    """``(loss, yhat, grad)`` computed by PyTorch autograd; ``yhat`` as
    :func:`reference.forward` returns it (NaN at padded steps) and ``grad`` a
    flat vector in rnnumba's layout. Given initial states ``h0``, a fourth
    element: the gradient with respect to them, shaped like ``h0``."""
    rnn, head, value, yhat, mask, *h0_t = _torch_backward(
        layout, theta, X, lengths, y, loss, many_to_many, gru, h0
    )
    H = layout.hidden
    grad = np.zeros(layout.n_params)
    grads = layout.views(grad)
    params = dict(rnn.named_parameters())
    for layer in range(layout.num_layers):
        for d in range(layout.directions):
            s, ts = _names(layout, layer, d)
            grads["W" + s][:, :H] = params["weight_hh" + ts].grad.numpy()
            grads["W" + s][:, H:] = params["weight_ih" + ts].grad.numpy()
            grads["b" + s][:] = params["bias_ih" + ts].grad.numpy()
            if layout.cell == "gru":
                grads["b_hn" + s][:] = params["bias_hh" + ts].grad.numpy()[2 * H :]
    grads["W_out"][:] = head.weight.grad.numpy()
    grads["b_out"][:] = head.bias.grad.numpy()

    yhat_np = yhat.detach().numpy().copy()
    if many_to_many:
        yhat_np[~mask.numpy()] = np.nan
    if h0 is None:
        return float(value.item()), yhat_np, grad
    d_state = [t.grad.numpy() for t in h0_t[0]]
    return float(value.item()), yhat_np, grad, (tuple(d_state) if layout.cell == "lstm" else d_state[0])


def torch_bias_twins(layout, theta, X, lengths, y, loss="mse", many_to_many=False):
    """Per layer and direction, ``(grad bias_ih, grad bias_hh)`` on the rows
    where both biases enter identically (all rows; GRU: the r and z rows),
    the premise of mapping grad b = grad bias_ih."""
    rnn, _, _, _, _ = _torch_backward(layout, theta, X, lengths, y, loss, many_to_many, "pytorch")
    H = layout.hidden
    rows = 2 * H if layout.cell == "gru" else layout.gates * H
    params = dict(rnn.named_parameters())
    pairs = []
    for layer in range(layout.num_layers):
        for d in range(layout.directions):
            _, ts = _names(layout, layer, d)
            g_ih = params["bias_ih" + ts].grad.numpy()[:rows]
            g_hh = params["bias_hh" + ts].grad.numpy()[:rows]
            pairs.append((g_ih, g_hh))
    return pairs
