"""The CUDA backend: :mod:`rnnumba.gpu`'s kernels behind the backend contract.

Sibling of :class:`rnnumba.backends.cpu.CPU`: the same methods, the same
parameter layout and losses, so a network trained on one device predicts on
the other. Not supported on the GPU (a ValueError says so): dropout between
layers, initial or final states, and weighted targets (sample and class
weights, masked steps).
"""

import numpy as np

from .cpu import NO_DROPOUT, block_order

_NO_DROPOUT_GPU = "dropout between layers is not implemented on the GPU backend (device='cuda')"
_NO_STATES_GPU = "initial and final states are not implemented on the GPU backend (device='cuda')"
_NO_WEIGHTS_GPU = (
    "weighted targets (sample_weight, class_weight, NaN-masked steps) are not implemented on the GPU "
    "backend (device='cuda'); fit on the CPU"
)


def _unweighted(batch, layout):
    """Refuse a :class:`~rnnumba.data.Batch` whose targets carry weights (see :mod:`rnnumba.losses`)."""
    per = layout.output_size if batch.loss == "mse" else 1
    if batch.Y.shape[-1] != per:
        raise ValueError(_NO_WEIGHTS_GPU)
    return batch


class Resident:
    """A :class:`~rnnumba.data.Batch` uploaded once, with a device gradient buffer."""

    def __init__(self, batch, device_batch, d_grad):
        self.batch, self.device_batch, self.d_grad = batch, device_batch, d_grad


class CUDA:
    """Loss, gradient, predictions and training epochs on an NVIDIA GPU.

    Parameters
    ----------
    layout : Layout
    dtype : numpy dtype
    dropout : float
        The network's dropout; the GPU kernels have none, so it must be 0.

    Raises
    ------
    RuntimeError
        numba-cuda or a GPU is missing (the message says what to install).
    ValueError
        ``dropout > 0``.
    """

    name = "cuda"

    def __init__(self, layout, dtype, dropout=0.0):
        from .. import gpu

        if dropout:
            raise ValueError(_NO_DROPOUT_GPU)
        ok, why = gpu.available()
        if not ok:
            raise RuntimeError(f"device='cuda' cannot run here: {why}")
        self.layout, self.dtype = layout, np.dtype(dtype)
        self.engine = gpu.DeviceEngine(layout, self.dtype)

    def dense_loss_and_grad(self, theta, grad, X, y):
        """No shortcut on the GPU: always None (the caller takes the full path)."""
        return None

    def loss_and_grad(self, theta, grad, batch, drop=NO_DROPOUT, h0=None, dh0=None, storage="auto"):
        """As :meth:`rnnumba.backends.cpu.CPU.loss_and_grad`, with full storage.

        ``batch`` may be a :class:`Resident` (from :meth:`resident`), whose data
        stay on the device.
        """
        if storage == "checkpoint":
            raise ValueError("checkpointed BPTT (memory='checkpoint') is not on the GPU backend yet")
        if drop[1]:
            raise ValueError(_NO_DROPOUT_GPU)
        if h0 is not None or dh0 is not None:
            raise ValueError(_NO_STATES_GPU)
        if isinstance(batch, Resident):
            from ..gpu._device import cuda

            _, _, _, many, count, loss = batch.batch
            d_theta = cuda().to_device(np.ascontiguousarray(theta, dtype=self.dtype))
            d_loss = self.engine.device_loss_and_grad(
                d_theta, batch.d_grad, batch.device_batch, loss, 1.0 / count, many
            )
            batch.d_grad.copy_to_host(grad)
            return float(d_loss.copy_to_host()[0])
        X, lengths, Y, many, count, loss = _unweighted(batch, self.layout)
        return float(self.engine.loss_and_grad(theta, grad, X, lengths, Y, loss, 1.0 / count, many))

    def predict(self, theta, seqs, many, h0=None, hn=None):
        """As :meth:`rnnumba.backends.cpu.CPU.predict`."""
        if h0 is not None or hn is not None:
            raise ValueError(_NO_STATES_GPU)
        N = seqs.X.shape[0]
        out = self.engine.predict(theta, seqs.X, seqs.lengths, many)
        return out.reshape(N, -1, self.layout.output_size)

    def resident(self, batch):
        """``batch`` uploaded to the GPU once, for repeated evaluations (scipy)."""
        from ..gpu import Batch
        from ..gpu._device import cuda

        device_batch = Batch.upload(batch.X, batch.lengths, _unweighted(batch, self.layout).Y, self.dtype)
        return Resident(batch, device_batch, cuda().device_array(self.layout.n_params, dtype=self.dtype))

    def trainer(self, net, batch, method, options, seed=None, bptt_steps=None):
        """Return a :class:`rnnumba.gpu.DeviceTrainer` over ``batch``: see :class:`Trainer`."""
        from ..gpu import DeviceTrainer

        if bptt_steps is not None:
            raise ValueError("bptt_steps (truncated BPTT) is not implemented on the GPU backend yet")

        X, lengths, Y, many, _, loss = _unweighted(batch, self.layout)
        device = DeviceTrainer(
            self.layout, net.theta, X, lengths, Y, loss, many, method=method, engine=self.engine, **options
        )
        return Trainer(net, device)


class Trainer:
    """Epochs on the GPU: the data went up once, every step runs there.

    ``net.theta`` is refreshed from the device only on :meth:`sync` (validation
    scores, callbacks) and :meth:`finish`.
    """

    def __init__(self, net, device):
        self.net, self.device = net, device
        self.n_blocks = device.n_blocks()  # as FirstOrder.n_blocks: the same shuffles

    def epoch(self, rng, shuffle=True):
        """One pass over the minibatches, ordered as the CPU's; ``(mean_loss, finite)``."""
        return self.device.epoch(block_order(self.n_blocks, rng, shuffle))

    def sync(self):
        """Copy the device's parameters into ``net.theta``."""
        self.net.theta[:] = self.device.theta()

    def finish(self):
        """Copy the last parameters back to the host.

        Nothing is copied when a Ctrl-C between two kernels of one step left a
        NaN there.
        """
        theta = self.device.theta()
        if np.all(np.isfinite(theta)):
            self.net.theta[:] = theta

    def state(self):
        """None: this trainer's optimiser state stays where it ran (warm starts restart it)."""
        return None

    def load_state(self, state):
        """Refuse: only the CPU trainer goes on from a saved optimiser state."""
        raise ValueError("going on from an optimiser state (warm_start, partial_fit) needs device='cpu'")
