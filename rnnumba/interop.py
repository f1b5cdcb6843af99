"""Exact maps between rnnumba networks and PyTorch modules.

:func:`from_torch` turns a batch-first ``nn.RNN`` (tanh), ``nn.LSTM`` or
``nn.GRU`` plus an ``nn.Linear`` head into an :class:`~rnnumba.RNN` computing
the same function; :func:`to_torch_state_dict` maps a network's parameters (or
a gradient) back under the PyTorch module's own ``state_dict`` keys.

Per layer ``k`` and direction (PyTorch suffix ``_l{k}`` / ``_l{k}_reverse``,
rnnumba suffix ``_l{k}`` for ``k > 0`` and ``_reverse``)::

    W = [weight_hh | weight_ih]      (h columns first, then x columns)
    b = bias_ih + bias_hh            RNN, LSTM (all rows); GRU r and z rows
    b[2H:3H] = bias_ih[2H:3H]        GRU n rows, and b_hn = bias_hh[2H:3H]

Gate order is PyTorch's in both (LSTM i, f, g, o; GRU r, z, n). Going back,
parameters map to ``bias_ih = b`` and ``bias_hh = 0`` (GRU: ``[0, 0, b_hn]``);
a gradient maps the gradient of ``b`` to both ``bias_ih`` and ``bias_hh``
(they enter the network identically), except the GRU's n rows, where
``bias_ih`` gets the gradient of ``b_n`` and ``bias_hh`` that of ``b_hn``.

PyTorch is optional: it is imported inside the functions only.
"""

import numpy as np

from .layout import Layout
from .network import RNN


def _torch():
    """Import ``torch``, or raise an ImportError saying how to install it."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("rnnumba.interop needs PyTorch: pip install torch (or rnnumba[torch])") from exc
    return torch


def _torch_suffix(layer, direction):
    """PyTorch's parameter-name suffix: ``_l{layer}``, plus ``_reverse`` for direction 1."""
    return f"_l{layer}" + ("_reverse" if direction else "")


def _to_numpy(tensor, dtype, what):
    """Return a tensor's values as a NumPy array of ``dtype``, refusing lossy casts."""
    torch = _torch()
    if not tensor.dtype.is_floating_point:
        raise TypeError(f"{what} has dtype {tensor.dtype}; expected a floating-point tensor")
    # widening (float16/bfloat16/float32 -> float64, float16 -> float32) is exact
    source = tensor.detach().cpu()
    if source.dtype == torch.bfloat16:
        source = source.to(torch.float32)
    a = source.numpy()
    if np.finfo(a.dtype).bits > np.finfo(dtype).bits:
        raise TypeError(
            f"{what} is {tensor.dtype} but dtype={np.dtype(dtype).name} was asked for: the conversion "
            f"would round the weights. Pass dtype=np.{a.dtype.name} or convert the module first "
            f"(module.to(torch.{np.dtype(dtype).name}))."
        )
    return a.astype(dtype)


def _cell_of(rnn_module):
    """Return rnnumba's cell name for a torch module, or raise a clear error."""
    torch = _torch()
    nn = torch.nn
    if isinstance(rnn_module, nn.LSTM):
        if getattr(rnn_module, "proj_size", 0):
            raise ValueError(
                f"LSTM with proj_size={rnn_module.proj_size} is not supported: rnnumba's LSTM has no "
                "projection of h"
            )
        return "lstm"
    if isinstance(rnn_module, nn.GRU):
        return "gru"
    if isinstance(rnn_module, nn.RNN):
        if rnn_module.nonlinearity != "tanh":
            raise ValueError(
                f"nn.RNN(nonlinearity={rnn_module.nonlinearity!r}) is not supported: rnnumba's Elman "
                "cell is tanh"
            )
        return "elman"
    raise TypeError(f"expected a torch.nn.RNN, nn.LSTM or nn.GRU module, got {type(rnn_module).__name__}")


def from_torch(rnn_module, head=None, dtype=np.float64, *, output_size=1, random_state=None):
    """Build an :class:`~rnnumba.RNN` computing what ``head(rnn_module(X))`` computes.

    Parameters
    ----------
    rnn_module : torch.nn.RNN (tanh), torch.nn.LSTM or torch.nn.GRU
        Built with ``batch_first=True``; any ``num_layers``, bidirectional or
        not. ``bias=False`` modules map to zero biases.
    head : torch.nn.Linear, optional
        The readout, ``in_features = hidden_size * directions``: applied to
        each direction's final state ``[h_n[-2], h_n[-1]]`` (many-to-one) or
        to the output at every step (many-to-many), as rnnumba does. When
        omitted the network gets a fresh head of ``output_size`` outputs
        initialised like :meth:`~rnnumba.RNN.init` with ``random_state``.
    dtype : numpy.float64 or numpy.float32
        The network's dtype. Widening the module's dtype is exact; narrowing
        (a float64 module to float32) is refused rather than rounded.
    output_size : int, default 1
        Outputs of the fresh head made when ``head`` is omitted.
    random_state : int, numpy.random.Generator or None
        Seeds that fresh head.

    Returns
    -------
    RNN

    Notes
    -----
    The module's inter-layer ``dropout`` becomes the network's
    :attr:`~rnnumba.RNN.dropout` (the same training-time operation; the masks
    come from rnnumba's own counter-based generator, not torch's). Outputs
    and gradients without dropout equal the module's in ``eval()`` mode.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from rnnumba.interop import from_torch
    >>> _ = torch.manual_seed(0)
    >>> lstm = torch.nn.LSTM(2, 8, batch_first=True).double()
    >>> head = torch.nn.Linear(8, 1).double()
    >>> net = from_torch(lstm, head)
    >>> X = np.random.default_rng(0).normal(size=(5, 7, 2))
    >>> with torch.no_grad():
    ...     expected = head(lstm(torch.from_numpy(X))[1][0][-1]).numpy()
    >>> bool(np.allclose(net.predict(X), expected, atol=1e-12))
    True
    """
    cell = _cell_of(rnn_module)
    if not rnn_module.batch_first:
        raise ValueError(
            "the module has batch_first=False: rnnumba takes batch-first (N, T, I) arrays, so a "
            "module reading (T, N, I) would be fed transposed data by code written for it. The "
            "weights do not depend on this flag: rebuild it with batch_first=True and "
            "load_state_dict(module.state_dict())."
        )
    H, L = rnn_module.hidden_size, rnn_module.num_layers
    D = 2 if rnn_module.bidirectional else 1
    if head is not None:
        torch = _torch()
        if not isinstance(head, torch.nn.Linear):
            raise TypeError(f"head must be a torch.nn.Linear, got {type(head).__name__}")
        if head.in_features != H * D:
            raise ValueError(
                f"head.in_features = {head.in_features}, but the module's outputs have "
                f"hidden_size * directions = {H * D} features"
            )
        output_size = head.out_features
    net = RNN(
        rnn_module.input_size,
        H,
        output_size,
        cell=cell,
        num_layers=L,
        bidirectional=D == 2,
        dtype=dtype,
        random_state=random_state,
        dropout=float(rnn_module.dropout),
    )
    dtype = net.dtype
    params = dict(rnn_module.named_parameters())
    views = net.views
    for layer in range(L):
        for d in range(D):
            s, ts = Layout.suffix(layer, d), _torch_suffix(layer, d)
            W, b = views["W" + s], views["b" + s]
            W[:, :H] = _to_numpy(params["weight_hh" + ts], dtype, "weight_hh" + ts)
            W[:, H:] = _to_numpy(params["weight_ih" + ts], dtype, "weight_ih" + ts)
            if rnn_module.bias:
                bias_ih = _to_numpy(params["bias_ih" + ts], dtype, "bias_ih" + ts)
                bias_hh = _to_numpy(params["bias_hh" + ts], dtype, "bias_hh" + ts)
            else:
                bias_ih = bias_hh = np.zeros(b.shape[0], dtype=dtype)
            if cell == "gru":
                b[: 2 * H] = bias_ih[: 2 * H] + bias_hh[: 2 * H]
                b[2 * H :] = bias_ih[2 * H :]
                views["b_hn" + s][:] = bias_hh[2 * H :]
            else:
                b[:] = bias_ih + bias_hh
    if head is not None:
        views["W_out"][:] = _to_numpy(head.weight, dtype, "head.weight")
        if head.bias is not None:
            views["b_out"][:] = _to_numpy(head.bias, dtype, "head.bias")
        else:
            views["b_out"][:] = 0
    return net


def to_torch_state_dict(net, vector=None, *, kind=None):
    """Map the parameters (or a gradient) of ``net`` to PyTorch's names.

    Parameters
    ----------
    net : RNN
        An Elman, PyTorch-style GRU or peephole-free LSTM network.
    vector : ndarray (n_params,), optional
        What to map: ``net.theta`` by default. ``net.grad`` (or any vector
        sharing its memory) is mapped as a gradient.
    kind : {"params", "grad"}, optional
        How to map ``vector``; required for a vector that is neither
        ``net.theta`` nor ``net.grad`` (a copy, an optimiser's iterate), since
        the biases map differently.

    Returns
    -------
    dict of str -> ndarray
        ``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``,
        ``bias_hh_l{k}`` (and ``..._reverse``) in the module's ``state_dict``
        order, then ``head.weight`` and ``head.bias``; fresh arrays of the
        network's dtype. Load them with
        ``rnn.load_state_dict({k: torch.from_numpy(v) for k, v in d.items() if not
        k.startswith("head.")})`` into a module built with ``batch_first=True``
        and ``bias=True``, and the ``head.`` entries into the ``nn.Linear``.

    Examples
    --------
    >>> import torch
    >>> import rnnumba
    >>> from rnnumba.interop import to_torch_state_dict
    >>> net = rnnumba.RNN(3, 16, cell="gru", num_layers=2, random_state=0)
    >>> state = to_torch_state_dict(net)
    >>> list(state)[:4]
    ['weight_ih_l0', 'weight_hh_l0', 'bias_ih_l0', 'bias_hh_l0']
    >>> gru = torch.nn.GRU(3, 16, num_layers=2, batch_first=True).double()
    >>> gru.load_state_dict({k: torch.from_numpy(v) for k, v in state.items() if not k.startswith("head.")})
    <All keys matched successfully>
    """
    layout = net.layout
    if layout.peephole:
        raise ValueError("PyTorch has no peephole LSTM: this network cannot be expressed as nn.LSTM")
    if layout.cell == "gru" and not layout.reset_after:
        raise ValueError(
            "PyTorch's nn.GRU is the reset_after=True form; this network uses Cho et al.'s "
            "reset_after=False GRU, which nn.GRU cannot express"
        )
    vector = net.theta if vector is None else np.asarray(vector)
    if kind is None:
        if np.shares_memory(vector, net.theta):
            kind = "params"
        elif np.shares_memory(vector, net.grad):
            kind = "grad"
        else:
            raise ValueError(
                "say whether vector holds parameters or a gradient: kind='params' or kind='grad' "
                "(their biases map differently)"
            )
    if kind not in ("params", "grad"):
        raise ValueError(f"kind must be 'params' or 'grad', got {kind!r}")
    views = layout.views(vector)
    H, G = layout.hidden, layout.gates
    out = {}
    for layer in range(layout.num_layers):
        for d in range(layout.directions):
            s, ts = Layout.suffix(layer, d), _torch_suffix(layer, d)
            W, b = views["W" + s], views["b" + s]
            out["weight_ih" + ts] = W[:, H:].copy()
            out["weight_hh" + ts] = W[:, :H].copy()
            bias_ih = b.copy()
            if kind == "grad":  # d/d bias_ih = d/d bias_hh wherever both enter alike
                bias_hh = b.copy()
            else:
                bias_hh = np.zeros(G * H, dtype=b.dtype)
            if layout.cell == "gru":
                bias_hh[2 * H :] = views["b_hn" + s]
            out["bias_ih" + ts] = bias_ih
            out["bias_hh" + ts] = bias_hh
    out["head.weight"] = views["W_out"].copy()
    out["head.bias"] = views["b_out"].copy()
    return out
