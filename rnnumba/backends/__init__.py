"""Where the kernels run: one contract, one backend per device, chosen once.

A backend is made for a network's :class:`~rnnumba.layout.Layout` and dtype,
and :class:`~rnnumba.network.RNN` holds one (``net.backend``). Every backend
has:

``loss_and_grad(theta, grad, batch, drop, h0=None, dh0=None) -> float``
    The mean loss of a :class:`~rnnumba.data.Batch`; ``grad`` filled.
``dense_loss_and_grad(theta, grad, X, y) -> float or None``
    The same for plain MSE arrays, skipping the :class:`~rnnumba.data.Batch`
    (None: take the full path).
``predict(theta, seqs, many, h0=None, hn=None) -> ndarray (N, T or 1, O)``
    Head outputs of :class:`~rnnumba.data.Sequences`, NaN in the padding.
``resident(batch)``
    The batch kept where the backend computes, for repeated evaluation.
``trainer(net, batch, method, options, seed) -> trainer``
    A first-order optimiser with its state: ``epoch(rng, shuffle) ->
    (mean_loss, finite)`` (the trainer draws its minibatch order from ``rng``),
    ``sync()`` (the parameters into ``net.theta``), ``finish()``.

``name``: "cpu", "cuda" or "dask". What a backend cannot do (the GPU: dropout,
initial states) it refuses with a ValueError that says so.

Backends: :class:`~rnnumba.backends.cpu.CPU`, :class:`~rnnumba.backends.cuda.CUDA`;
the Dask one (:class:`rnnumba.distributed.DaskBackend`) runs the same
contract over :class:`~rnnumba.distributed.DaskData`.
"""

from .cpu import CPU

DEVICES = ("cpu", "cuda")

__all__ = ["CPU", "DEVICES", "check_device", "make"]


def check_device(device):
    """``device`` if it names a device, else a ValueError."""
    if device not in DEVICES:
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    return device


def make(device, layout, dtype, dropout=0.0):
    """Return the backend for ``device`` ("cpu" or "cuda").

    Parameters
    ----------
    device : {"cpu", "cuda"}
    layout : Layout
    dtype : numpy dtype
    dropout : float
        The network's dropout (the CUDA backend refuses a non-zero one).

    Returns
    -------
    CPU or CUDA
    """
    if check_device(device) == "cuda":
        from .cuda import CUDA

        return CUDA(layout, dtype, dropout)
    return CPU(layout, dtype)
