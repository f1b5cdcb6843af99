"""Training on the device.

The data go to the GPU once per fit, every minibatch step (forward, BPTT,
clipping, weight decay, the SGD / momentum / Nesterov / Adam update, the
divergence check) runs as kernels on the flat parameter vector, and the host
syncs once per epoch for the epoch's loss.

The GPU twin of :class:`rnnumba.solvers.FirstOrder` (and of its compiled
epoch, :func:`rnnumba.solvers.kernels.epoch_kernel`, whose step is
``rnnumba.solvers.kernels.update``), with the same semantics:

* minibatch ``k`` holds rows ``k*batch_size ..`` of the data; an epoch runs
  the blocks in the given ``order`` (the caller shuffles the order);
* the batch loss has ``scale = 1/count`` (rows, or valid steps, times O for mse);
* a non-finite loss or gradient stops the fit and restores the last
  parameters whose loss was finite; so does a non-finite update;
* clipping: when ``|g| > clip``, ``g *= clip/|g|`` (global L2 norm); then
  ``g += weight_decay * theta``;
* SGD: with ``momentum`` ``v = mu v + g`` and ``g = v`` (Nesterov: ``g + mu v``);
  ``theta -= lr g``. Adam: the usual bias-corrected moments, ``t`` counting
  completed steps across epochs.
"""

import math
import warnings

import numpy as np

from ..solvers.kernels import ADAM, SGD  # the CPU epoch's method codes: one owner
from ._device import cuda
from ._registry import I64, IVEC, builder, compiled, nbtype, vec
from .engine import Batch, DeviceEngine
from .linalg import block, dtkey, grid1

# numba.cuda, bound when the first kernel is built; a module global (not a
# closure variable) so that the CUDA simulator can swap it for its fake module
cu = None


def _bind():
    """Bind the module global ``cu`` to ``numba.cuda`` (see the comment above)."""
    global cu
    cu = cuda()


SOLVERS = ("sgd", "momentum", "nesterov", "adam")
OK, BAD_LOSS, BAD_THETA = 0, 1, 2


@builder("norm_check")
def build_norm_check(dt, NB):
    """One block: ``stats[0] = |grad|^2`` (fixed-order tree), and a finiteness check.

    Flags step ``step`` in ``status`` when the loss or that norm is not finite.

    CPU sibling: the norm and finiteness check at the top of
    ``rnnumba.solvers.kernels.update``.
    """
    _bind()
    T = nbtype(dt)
    zero = np.dtype(dt).type(0.0)

    def norm_check(grad, P, losses, loss_idx, stats, status, step):
        sh = cu.shared.array(NB, T)
        t = cu.threadIdx.x
        s = zero
        for k in range(t, P, NB):
            s += grad[k] * grad[k]
        sh[t] = s
        cu.syncthreads()
        half = NB // 2
        while half > 0:
            if t < half:
                sh[t] += sh[t + half]
            cu.syncthreads()
            half //= 2
        if t == 0:
            stats[0] = sh[0]
            if status[0] == 0 and not (math.isfinite(losses[loss_idx]) and math.isfinite(sh[0])):
                status[0] = BAD_LOSS
                status[1] = step

    V = vec(dt)
    return norm_check, (V, I64, V, I64, V, IVEC, I64)


@builder("update")
def build_update(dt):
    """One optimiser step on every parameter, one thread each.

    With ``g`` the gradient::

        if clip > 0 and |g|^2 > clip^2:   g <- g * clip / |g|       (|g|^2 from norm_check)
        prev <- theta;   g <- g + wd * theta
        SGD:   theta <- theta - lr * g                              (mu = 0)
               v <- mu v + g;  theta <- theta - lr * v              (momentum)
               v <- mu v + g;  theta <- theta - lr * (g + mu v)     (Nesterov)
        Adam:  m <- b1 m + (1 - b1) g;   v <- b2 v + (1 - b2) g^2
               theta <- theta - lr * (m / bc1) / (sqrt(v / bc2) + eps)

    with ``bc1 = 1 - b1^t``, ``bc2 = 1 - b2^t`` computed on the host.
    Nothing moves once ``status`` is set; on a bad loss at this ``step`` the
    parameters go back to ``prev``. CPU sibling:
    ``rnnumba.solvers.kernels.update``.
    """
    _bind()
    one = np.dtype(dt).type(1.0)

    def update(
        theta,
        grad,
        m,
        v,
        prev,
        P,
        method,
        lr,
        mu,
        nesterov,
        wd,
        b1,
        b2,
        eps,
        bc1,
        bc2,
        stats,
        clip,
        status,
        step,
    ):
        k = cu.grid(1)
        if k >= P:
            return
        if status[0] != 0:
            if status[0] == BAD_LOSS and status[1] == step:
                theta[k] = prev[k]  # the last parameters whose loss was finite
            return
        g = grad[k]
        norm2 = stats[0]
        if clip > 0 and norm2 > clip * clip:
            g *= clip / math.sqrt(norm2)
        th = theta[k]
        prev[k] = th
        g += wd * th
        if method == SGD:
            if mu != 0:
                vk = mu * m[k] + g
                m[k] = vk
                g = g + mu * vk if nesterov else vk
            theta[k] = th - lr * g
        else:
            mk = b1 * m[k] + (one - b1) * g
            vk = b2 * v[k] + (one - b2) * g * g
            m[k] = mk
            v[k] = vk
            theta[k] = th - lr * (mk / bc1) / (math.sqrt(vk / bc2) + eps)

    V, S = vec(dt), nbtype(dt)
    return update, (V, V, V, V, V, I64, I64, S, S, I64, S, S, S, S, S, S, V, S, IVEC, I64)


@builder("theta_check")
def build_theta_check(dt, NB):
    """One block: flags step ``step`` when an updated parameter is not finite.

    CPU sibling: the ``finite`` check of ``rnnumba.solvers.kernels.update``.
    """
    _bind()

    def theta_check(theta, P, status, step):
        sh = cu.shared.array(NB, I64)
        t = cu.threadIdx.x
        bad = 0
        for k in range(t, P, NB):
            if not math.isfinite(theta[k]):
                bad += 1
        sh[t] = bad
        cu.syncthreads()
        half = NB // 2
        while half > 0:
            if t < half:
                sh[t] += sh[t + half]
            cu.syncthreads()
            half //= 2
        if t == 0 and status[0] == 0 and sh[0] > 0:
            status[0] = BAD_THETA
            status[1] = step

    return theta_check, (vec(dt), I64, IVEC, I64)


@builder("restore")
def build_restore(dt):
    """``theta = prev`` on every parameter when ``theta_check`` flagged step ``step``.

    CPU sibling: the restore from ``prev`` in ``rnnumba.solvers.kernels.update``.
    """
    _bind()

    def restore(theta, prev, P, status, step):
        k = cu.grid(1)
        if k < P and status[0] == BAD_THETA and status[1] == step:
            theta[k] = prev[k]

    V = vec(dt)
    return restore, (V, V, I64, IVEC, I64)


def variants():
    """``[(name, key), ...]``: the optimiser's kernels in both dtypes."""
    out = []
    for dt in ("float32", "float64"):
        out += [("norm_check", (dt, 256)), ("update", (dt,)), ("theta_check", (dt, 256)), ("restore", (dt,))]
    return out


class DeviceTrainer:
    """A first-order optimiser on the GPU, state kept on the device.

    The device twin of :class:`rnnumba.solvers.FirstOrder`: same parameters,
    same :meth:`epoch` contract. The training data are uploaded here, once.

    Parameters
    ----------
    layout : Layout
    theta : ndarray (P,), float32 or float64
        Initial parameters (copied to the device; see :meth:`theta`).
    X, lengths, Y : padded host arrays (``Y`` (N, 1 or T, O or 1))
    loss : {"mse", "xent"}
    many : bool
    method : {"sgd", "adam"}
    lr, batch_size, momentum, nesterov, beta1, beta2, epsilon, clip, weight_decay
        As for :class:`rnnumba.solvers.FirstOrder`.
    strategy : {"auto", "persistent", "stepwise"}
    engine : DeviceEngine, optional
    """

    def __init__(
        self,
        layout,
        theta,
        X,
        lengths,
        Y,
        loss,
        many,
        method="sgd",
        lr=1e-3,
        batch_size=32,
        momentum=0.0,
        nesterov=False,
        beta1=0.9,
        beta2=0.999,
        epsilon=1e-8,
        clip=None,
        weight_decay=0.0,
        strategy="auto",
        engine=None,
    ):
        if method not in ("sgd", "adam"):
            raise ValueError(f"method must be 'sgd' or 'adam', got {method!r}")
        c = cuda()
        theta = np.ascontiguousarray(theta)
        self.dtype = dt = theta.dtype
        self.layout = layout
        self.engine = engine or DeviceEngine(layout, dt, strategy)
        X = np.asarray(X, dtype=dt)
        self.N, self.T, self.I = X.shape
        self.lengths = np.ascontiguousarray(lengths, dtype=np.int64)
        Y = np.asarray(Y, dtype=dt)
        if Y.ndim == 2:
            Y = Y[:, None, :]
        self.ty, self.yw = Y.shape[1], Y.shape[2]
        self.data = Batch.upload(X, self.lengths, Y, dt)
        self.loss, self.many = loss, bool(many)
        per = layout.output_size if loss == "mse" else 1
        self.count = (self.lengths if many else np.ones(self.N, np.int64)) * per
        self.batch_size = int(min(max(1, batch_size), self.N))
        self.method = SGD if method == "sgd" else ADAM
        S = dt.type
        self.hp = (S(lr), S(momentum), int(bool(nesterov)), S(weight_decay), S(beta1), S(beta2), S(epsilon))
        self.clip = S(clip or 0.0)
        self.beta1, self.beta2 = float(beta1), float(beta2)
        P = self.P = layout.n_params
        self.d_theta = c.to_device(theta.copy())
        self.d_prev = c.to_device(theta.copy())
        self.d_grad = c.device_array(P, dtype=dt)
        self.d_m = c.to_device(np.zeros(P, dt))
        self.d_v = c.to_device(np.zeros(P, dt))
        self.d_stats = c.to_device(np.zeros(1, dt))
        self.d_status = c.to_device(np.zeros(2, np.int64))
        self.d_losses = c.device_array(self.n_blocks(), dtype=dt)
        self.step = 0

    def n_blocks(self, n_rows=None):
        """Return the number of minibatch blocks, ``ceil(n_rows / batch_size)``.

        Parameters
        ----------
        n_rows : int, optional
            Rows of data; the trainer's own ``N`` by default.

        Returns
        -------
        int
        """
        return -(-(self.N if n_rows is None else n_rows) // self.batch_size)

    def _batch(self, k):
        """Minibatch ``k`` as ``(Batch of device views, loss-term count, rows)``."""
        s0, s1 = k * self.batch_size, min(self.N, (k + 1) * self.batch_size)
        d, T, I = self.data, self.T, self.I
        rows = s1 - s0
        return (
            Batch(
                d.X[s0 * T * I : s1 * T * I],
                d.lengths[s0:s1],
                d.Y[s0 * self.ty * self.yw : s1 * self.ty * self.yw],
                rows,
                T,
                I,
                self.yw,
                int(self.lengths[s0:s1].max()),
            ),
            float(self.count[s0:s1].sum()),
            rows,
        )

    def epoch(self, order):
        """Run the minibatches ``order`` (block indices) once.

        Returns ``(mean_loss, finite)``: the row-weighted mean of the
        completed steps' losses (NaN if none), and False when a step went
        non-finite (``theta`` then holds the last parameters with a finite
        loss, and later epochs do nothing).
        """
        dt = dtkey(self.dtype)
        nb = block()
        P, S = self.P, self.dtype.type
        lr, mu, nesterov, wd, b1, b2, eps = self.hp
        upd = compiled("update", dt)
        check = compiled("norm_check", dt, nb)
        tcheck = compiled("theta_check", dt, nb)
        rest = compiled("restore", dt)
        order = np.asarray(order, dtype=np.int64)
        rows = np.zeros(len(order))
        first = self.step
        for i, k in enumerate(order):
            batch, count, rows[i] = self._batch(int(k))
            step = first + i
            self.engine.device_loss_and_grad(
                self.d_theta, self.d_grad, batch, self.loss, 1.0 / count, self.many, self.d_losses, i
            )
            check[1, nb](self.d_grad, P, self.d_losses, i, self.d_stats, self.d_status, step)
            t = step + 1
            upd[grid1(P)](
                self.d_theta,
                self.d_grad,
                self.d_m,
                self.d_v,
                self.d_prev,
                P,
                self.method,
                lr,
                mu,
                nesterov,
                wd,
                b1,
                b2,
                eps,
                S(1.0 - self.beta1**t),
                S(1.0 - self.beta2**t),
                self.d_stats,
                self.clip,
                self.d_status,
                step,
            )
            tcheck[1, nb](self.d_theta, P, self.d_status, step)
            rest[grid1(P)](self.d_theta, self.d_prev, P, self.d_status, step)
        losses = self.d_losses.copy_to_host()[: len(order)].astype(np.float64)
        status = self.d_status.copy_to_host()
        done = len(order) if status[0] == OK else max(0, min(len(order), int(status[1]) - first))
        self.step += done
        total = float(rows[:done].sum())
        mean = float((losses[:done] * rows[:done]).sum() / total) if total else float("nan")
        return mean, status[0] == OK

    def theta(self):
        """Return the current parameters, copied to the host."""
        return self.d_theta.copy_to_host()


def train_epochs(
    layout,
    theta,
    X,
    lengths,
    Y,
    loss,
    many,
    solver="sgd",
    lr=1e-3,
    batch_size=32,
    epochs=1,
    clip=None,
    weight_decay=0.0,
    random_state=None,
    momentum=None,
    nesterov=False,
    beta1=0.9,
    beta2=0.999,
    epsilon=1e-8,
    shuffle=True,
    strategy="auto",
    engine=None,
):
    """Run a whole minibatch fit on the GPU; return ``(theta, loss_curve)``.

    ``solver``: "sgd", "momentum" (SGD with ``momentum``, default 0.9),
    "nesterov" (likewise, Nesterov's form) or "adam". ``random_state`` seeds
    ``numpy.random.default_rng``, which shuffles the order of the minibatch
    blocks every epoch exactly as the CPU solvers do, so a seeded fit repeats
    bitwise on one device. ``loss_curve[e]`` is epoch ``e``'s row-weighted
    mean minibatch loss. A non-finite step ends the fit early (with a
    RuntimeWarning) and returns the last parameters whose loss was finite.
    """
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    if momentum is None:
        momentum = 0.9 if solver in ("momentum", "nesterov") else 0.0
    trainer = DeviceTrainer(
        layout,
        theta,
        X,
        lengths,
        Y,
        loss,
        many,
        method="adam" if solver == "adam" else "sgd",
        lr=lr,
        batch_size=batch_size,
        momentum=momentum,
        nesterov=nesterov or solver == "nesterov",
        beta1=beta1,
        beta2=beta2,
        epsilon=epsilon,
        clip=clip,
        weight_decay=weight_decay,
        strategy=strategy,
        engine=engine,
    )
    rng = np.random.default_rng(random_state)
    curve = []
    n_blocks = trainer.n_blocks()
    for _ in range(epochs):
        order = rng.permutation(n_blocks) if shuffle else np.arange(n_blocks)
        mean, finite = trainer.epoch(order)
        if not finite:
            warnings.warn(
                "GPU training diverged (non-finite loss or parameters); stopped and kept the last "
                "parameters with a finite loss",
                RuntimeWarning,
                stacklevel=2,
            )
            if mean == mean:
                curve.append(mean)
            break
        curve.append(mean)
    return trainer.theta(), np.array(curve)
