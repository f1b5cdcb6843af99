"""Minibatch SGD (momentum, Nesterov) and Adam on a network's flat vector."""

import signal
import threading

import numpy as np

from .. import _heap, losses
from .._blas import single_threaded
from .._prefetch import compiling
from ..chunks import n_chunks
from ..dropout import plan as dropout_plan
from ..memory import row_bytes
from ..validation import kernel_array
from . import kernels

FIRST_ORDER = ("sgd", "adam")


class FirstOrder:
    """A first-order optimiser bound to one network.

    It keeps the optimiser state (momentum buffer or Adam moments and the step
    count) between epochs; each :meth:`epoch` is one compiled call (see ``defer``).

    Parameters
    ----------
    net : RNN
        The network whose ``theta`` is updated in place.
    method : {"sgd", "adam"}
    lr : float
        Learning rate (constant).
    batch_size : int
        Rows per minibatch; the last block of an epoch may be shorter.
    momentum : float, default 0
        SGD only: heavy-ball momentum (PyTorch's convention
        ``v = momentum * v + g``, ``theta -= lr * v``).
    nesterov : bool, default False
        SGD only: the Nesterov variant (``theta -= lr * (g + momentum * v)``).
    beta1, beta2, epsilon : float
        Adam's moment decay rates and denominator guard.
    clip : float or None
        Rescale each minibatch gradient to this global L2 norm when larger.
    weight_decay : float, default 0
        Add ``weight_decay * theta`` to the gradient (after clipping), i.e. an
        L2 penalty ``weight_decay/2 * |theta|^2`` on every parameter.
    seed : int or sequence of int, optional
        Picks the dropout masks when ``net.dropout > 0`` (each update draws new
        ones from this seed and its number); default 0.
    checkpoint : {False, True, LOCKSTEP}, default False
        Checkpointed BPTT in each minibatch step (``True``:
        :data:`rnnumba.layout.CHECKPOINTS`, or :data:`rnnumba.layout.LOCKSTEP`):
        the same steps, bit for bit, in less memory.
    defer : bool, default False
        Where the compiled epoch is neither compiled in this process nor in the
        disk cache, run its Python body, one minibatch at a time, while a
        helper process compiles it (:func:`rnnumba._prefetch.compiling`), and
        the compiled epoch once the helper is done: the same steps, bit for
        bit, with the epoch's own compile (seconds) off a cold fit's path. A
        fit's epochs defer; :func:`rnnumba.precompile` does not.
    """

    def __init__(
        self,
        net,
        method,
        lr,
        batch_size,
        momentum=0.0,
        nesterov=False,
        beta1=0.9,
        beta2=0.999,
        epsilon=1e-8,
        clip=None,
        weight_decay=0.0,
        seed=None,
        checkpoint=False,
        defer=False,
    ):
        if method not in FIRST_ORDER:
            raise ValueError(f"method must be one of {FIRST_ORDER}, got {method!r}")
        self.net = net
        self.method = method
        self.batch_size = int(batch_size)
        hp = np.zeros(kernels.N_HP)
        hp[kernels.LR] = lr
        hp[kernels.MOMENTUM] = momentum
        hp[kernels.NESTEROV] = float(bool(nesterov))
        hp[kernels.BETA1], hp[kernels.BETA2], hp[kernels.EPS] = beta1, beta2, epsilon
        hp[kernels.CLIP] = 0.0 if clip is None else clip
        hp[kernels.DECAY] = weight_decay
        self.hp = hp
        self.state = kernels.new_state(net.theta)
        self.prev = net.theta.copy()
        self.step = 0
        self.drop = dropout_plan(net.dropout, 0 if seed is None else seed)
        self.specs = (net.layout.spec(False, checkpoint), net.layout.spec(True, checkpoint))
        self.checkpoint = net.layout.storage(checkpoint)
        self.offsets = net.layout.offsets()
        self.helper = None if defer else False  # None: not asked yet; False: run the compiled epoch

    def saved(self):
        """Return the optimiser's state (momentum or Adam's moments, the step count) as copies."""
        return {"moments": self.state.copy(), "step": self.step}

    def restore(self, saved):
        """Go on from :meth:`saved`'s dict (warm starts)."""
        if saved["moments"].shape != self.state.shape:
            raise ValueError("the saved optimiser state does not fit this network")
        self.state[:] = saved["moments"]
        self.step = int(saved["step"])

    def apply(self, grad, value):
        """Take one step from a gradient computed elsewhere (truncated BPTT's windows).

        Parameters
        ----------
        grad : ndarray (P,)
            The minibatch gradient (clipped and decayed here, as in :meth:`epoch`).
        value : float
            Its loss.

        Returns
        -------
        bool
            False when the loss, the gradient or the new parameters are not
            finite; ``theta`` then holds the last finite parameters.
        """
        self.step += 1
        method = kernels.SGD if self.method == "sgd" else kernels.ADAM
        return bool(
            kernels.update(
                self.net.theta, grad, float(value), method, self.hp, self.state, self.step, self.prev
            )
        )

    def n_blocks(self, n_rows):
        """Minibatches per epoch for ``n_rows`` training rows."""
        return -(-n_rows // self.batch_size)

    def epoch(self, batch, order):
        """One pass over the minibatches in ``order``.

        Parameters
        ----------
        batch : Batch
            Validated training data (:meth:`rnnumba.RNN.prepare`).
        order : int64 ndarray
            Block indices, e.g. a permutation of ``range(n_blocks)``.

        Returns
        -------
        mean_loss : float
            Mean minibatch loss weighted by rows (NaN if no step completed).
        finite : bool
            False when a step went non-finite; ``theta`` then holds the last
            parameters whose loss was finite.
        """
        X, lengths, Y, many, _, loss = batch
        _heap.tune()
        net = self.net
        N, B, H = X.shape[0], self.batch_size, net.layout.hidden
        per = row_bytes(net.layout, X.shape[1], X.dtype.itemsize)
        plan = np.array([n_chunks(B, H, per), n_chunks(N % B or B, H, per), *self.drop], dtype=np.int64)
        order = kernel_array(order, np.int64)
        method = kernels.SGD if self.method == "sgd" else kernels.ADAM
        fixed = (net.theta, net.grad, self.specs[many], self.offsets, X, lengths, Y, losses.LOSSES[loss])
        totals = np.zeros(2)  # loss times rows, rows

        def args(blocks, done):  # the epoch's arguments for the blocks after the first `done`
            head = (*fixed, blocks, self.batch_size, plan, method, self.hp, self.state)
            return (*head, self.step + done, self.prev, totals)

        epoch = kernels.epoch_kernel(net.layout.kernel_family, self.checkpoint)
        if self.helper is None:  # the first epoch: is the compiled one here, or compiling elsewhere?
            self.helper = compiling(epoch, args(order, 0), net.layout.kernel_family) or False
        n, done, status = order.shape[0], 0, kernels.OK
        # the chunks are the parallelism; BLAS threads would oversubscribe
        with single_threaded(), _HeldInterrupt() as interrupt:
            while self.helper and done < n and status == kernels.OK and not interrupt.held:
                if self.helper.poll() is not None:  # compiled (or failed): the compiled epoch from here on
                    self.helper = False
                    break
                steps, status = epoch.py_func(*args(order[done : done + 1], done))
                done += steps
            if not self.helper and done < n and status == kernels.OK and not interrupt.held:
                steps, status = epoch(*args(order[done:], done))
                done += steps
        self.step += done
        if interrupt.held:  # between minibatches, the step count with them
            raise KeyboardInterrupt
        mean = totals[0] / totals[1] if totals[1] else float("nan")
        return float(mean), status == kernels.OK


class _HeldInterrupt:
    """Ctrl-C (SIGINT) held while the epoch's Python body runs a minibatch.

    A compiled epoch cannot be interrupted inside; its Python body could be,
    between an update and the count of updates. Here, in the main thread and
    where Python's own handler is installed, a SIGINT is noted (``held``) and
    the epoch stops after the minibatch, then raises KeyboardInterrupt.
    """

    def __enter__(self):
        self.held, self.previous = False, None
        if threading.current_thread() is threading.main_thread():
            if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
                self.previous = signal.signal(signal.SIGINT, self._hold)
        return self

    def _hold(self, signum, frame):
        self.held = True

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
