"""rnnumba's GPU backend (numba-cuda): the device twin of :mod:`rnnumba.engine`.

Importing this package needs neither numba-cuda nor a GPU; ``numba.cuda`` is
imported on first use. The API the rest of rnnumba calls:

``available() -> (bool, reason)``
    Whether kernels can run here, and if not what to install or check.
``DeviceEngine(layout, dtype=np.float64, strategy="auto")``
    ``.loss_and_grad(theta, grad, X, lengths, Y, loss, scale, many) -> loss``
    and ``.predict(theta, X, lengths, many)`` on host arrays, with exactly the
    CPU engine's parameter layout, masking and losses.
``DeviceTrainer(layout, theta, X, lengths, Y, loss, many, method, lr, ...)``
    The device twin of :class:`rnnumba.solvers.FirstOrder`: data uploaded
    once, ``.epoch(order) -> (mean_loss, finite)`` runs every step on the GPU,
    ``.theta()`` copies the parameters back.
``train_epochs(layout, theta, X, lengths, Y, loss, many, solver=..., ...)``
    ``-> (theta, loss_curve)``: a whole minibatch fit on the device.

See ``docs/gpu.md`` for the design (persistent vs stepwise kernels), the
thresholds, determinism and limits.
"""

from ._device import INSTALL_HINT
from ._device import available as _available

__all__ = ["available", "DeviceEngine", "DeviceTrainer", "Batch", "train_epochs", "INSTALL_HINT"]


def available():
    """Whether the GPU kernels can run here, and if not, why.

    Returns
    -------
    ok : bool
        True when numba-cuda is installed and a GPU (or the CUDA simulator,
        ``NUMBA_ENABLE_CUDASIM=1``) can run the kernels.
    reason : str
        The device's name, or what to install or check.
    """
    return _available()


def __getattr__(name):  # PEP 562: the engine and solvers load on first use
    if name in ("DeviceEngine", "Batch"):
        from . import engine

        return getattr(engine, name)
    if name in ("DeviceTrainer", "train_epochs"):
        from . import solvers

        return getattr(solvers, name)
    raise AttributeError(f"module 'rnnumba.gpu' has no attribute {name!r}")
