"""``RNN``: one flat parameter vector, its views, and the compiled kernels.

The network owns ``theta`` and ``grad``. Every weight matrix is a view into
them (``net.views["W"]``), so the weights tied across time steps are one set of
numbers and any optimiser that moves a vector trains any architecture.
"""

import numbers
import warnings
from collections import namedtuple

import numpy as np

from . import _heap, engine
from ._blas import single_threaded
from .layout import GATES, Layout
from .losses import LOSSES
from .validation import (
    check_lengths,
    check_sequences,
    check_state,
    check_targets,
    dense_batch,
    kernel_array,
    split_state,
)

MAX_CHUNKS = 64
MSE = LOSSES["mse"]
# what RNN._plan remembers per batch shape (N, T)
Plan = namedtuple("Plan", "chunks blas lengths kernel")
_NO_DROPOUT = np.zeros(2, dtype=np.int64)  # writeable: a read-only array would compile a second engine


def check_dropout(p, num_layers):
    """``p`` as a float in [0, 1), with a warning when there is no layer to drop after."""
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= float(p) < 1.0:
        raise ValueError(f"dropout must be a probability in [0, 1), got {p!r}")
    if p and num_layers == 1:
        warnings.warn(
            "dropout acts between stacked layers (on the outputs of all but the last); with "
            "num_layers=1 it changes nothing",
            UserWarning,
            stacklevel=3,
        )
    return float(p)


# OpenBLAS runs a product of fewer multiply-adds than this on the calling
# thread (SMP_THRESHOLD_MIN * GEMM_MULTITHREAD_THRESHOLD in its interface/gemm.c)
OPENBLAS_ONE_THREAD = 65536 * 4


def _blas_may_thread(layout, N, T, chunks):
    """Whether any product of a pass over (N, T) batches in ``chunks`` blocks is
    big enough for OpenBLAS to start its own threads. If none is, pinning BLAS
    to one thread (~1 us of ctypes calls) is skipped."""
    L = layout
    HD = L.hidden * L.directions
    G = GATES[L.cell]
    rows = -(-N // chunks) * T  # every step of one block, as in the weight gradients
    widest = max(G * L.hidden * (L.hidden + max(L.input_size, HD)), HD * L.output_size)
    return rows * widest >= OPENBLAS_ONE_THREAD


def n_chunks(N, hidden):
    """How many blocks of samples a batch is cut into.

    A function of the batch shape only, never of the thread count, so results
    are bitwise the same on any number of threads. Blocks hold at least 16
    samples (a parallel region costs more than a smaller block's work) and
    more for wide layers, so that the per-step products stay big enough to
    run near the machine's peak; except that a batch of 16 to 31 is halved (the
    seed's batch of 20: a training step of 17.5 us on two threads against 19.9 us
    as one block, float32).
    """
    rows = min(64, max(16, hidden // 4))
    return int(min(MAX_CHUNKS, max(N // rows, min(2, N // 8), 1)))


class RNN:
    """A recurrent network over one flat parameter vector.

    Parameters
    ----------
    input_size : int
        Features per time step.
    hidden : int
        Units per layer and direction.
    output_size : int, default 1
        Outputs of the linear head (classes, for cross-entropy).
    cell : {"elman", "lstm", "gru"}, default "elman"
    num_layers : int, default 1
    bidirectional : bool, default False
    peephole : bool, default False
        LSTM only: Graves' peephole connections.
    reset_after : bool, default True
        GRU only: PyTorch's formulation (True) or Cho et al.'s (False).
    dtype : {numpy.float64, numpy.float32}, default float64
    random_state : int, numpy.random.Generator or None
        Seeds the initialisation.
    device : {"cpu", "cuda"}, default "cpu"
        Where :meth:`loss_and_grad` and :meth:`predict` run. ``"cuda"`` needs
        numba-cuda (``pip install rnnumba[cuda]``) and an NVIDIA GPU; the
        parameters stay one host vector with the same layout either way, so a
        network trained on one device predicts on the other.
    forget_bias : float, default 1.0
        LSTM only: initial bias of every forget gate (see :meth:`init`).
    dropout : float, default 0
        Probability of dropping each output of every layer but the last while
        training (inverted dropout, as ``torch.nn.RNN(dropout=...)``). It acts
        only in :meth:`loss_and_grad` calls given a ``dropout_seed`` (the
        minibatch solvers give one per step); :meth:`predict` and
        :meth:`objective` never drop.

    Attributes
    ----------
    theta : ndarray (n_params,)
        Every parameter, in the order documented in :mod:`rnnumba.layout`.
    grad : ndarray (n_params,)
        The gradient of the last :meth:`loss_and_grad`, same layout.
    grad_h0 : ndarray or (ndarray, ndarray)
        dL/d``h0`` (an LSTM: ``(dL/dh0, dL/dc0)``) of the last
        :meth:`loss_and_grad` given an initial state ``h0``.
    views, grad_views : dict of str -> ndarray
        Named views into ``theta`` and ``grad``.
    layout : Layout
    n_params : int

    Examples
    --------
    >>> net = RNN(1, 26, random_state=0)
    >>> net.n_params
    755
    >>> net.views["W"].shape
    (26, 27)
    """

    def __init__(
        self,
        input_size,
        hidden,
        output_size=1,
        cell="elman",
        num_layers=1,
        bidirectional=False,
        peephole=False,
        reset_after=True,
        dtype=np.float64,
        random_state=None,
        forget_bias=1.0,
        device="cpu",
        dropout=0.0,
    ):
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        self.layout = Layout(
            cell,
            input_size,
            hidden,
            output_size,
            num_layers,
            bool(bidirectional),
            bool(peephole),
            bool(reset_after),
        )
        self.dtype = dtype
        self.dropout = check_dropout(dropout, num_layers)
        self._bind(np.zeros(self.layout.n_params, dtype=dtype))
        self.init(random_state, forget_bias)
        self.to(device)

    def to(self, device):
        """Run the kernels on ``device`` ("cpu" or "cuda"); returns ``self``.

        The parameters do not move: ``theta`` stays the host vector.
        """
        if device not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
        self._gpu = None
        if device == "cuda":
            if self.dropout:
                raise ValueError(
                    "dropout between layers is not implemented on the GPU backend (device='cuda')"
                )
            from . import gpu

            ok, why = gpu.available()
            if not ok:
                raise RuntimeError(f"device='cuda' cannot run here: {why}")
            self._gpu = gpu.DeviceEngine(self.layout, self.dtype)
        self.device = device
        return self

    def _bind(self, theta):
        """Adopt ``theta``; make the gradient, the views and the kernel tables."""
        self.theta = theta
        self.grad = np.zeros_like(theta)
        self.views = self.layout.views(self.theta)
        self.grad_views = self.layout.views(self.grad)
        self._offsets = self.layout.offsets()
        self._specs = (self.layout.spec(False), self.layout.spec(True))
        self._kernels = engine.kernels(self.layout.kernel_family)
        self._plans = {}
        self._no_state = np.empty((0, 0, 0), dtype=theta.dtype)  # zero initial states

    def _plan(self, N, T):
        """The :class:`Plan` of an (N, T) batch (chunks, whether BLAS may start
        threads, the all-``T`` lengths, the training kernel), remembered: at the
        seed's size every microsecond of a call counts (the kernels only read
        lengths)."""
        plan = self._plans.get((N, T))
        if plan is None:
            _heap.tune()  # once, before the first kernel runs
            if len(self._plans) > 1024:
                self._plans.clear()
            chunks = n_chunks(N, self.layout.hidden)
            blas = _blas_may_thread(self.layout, N, T, chunks)
            kernel = engine.training_kernel(self.layout.kernel_family, chunks)
            plan = self._plans[N, T] = Plan(chunks, blas, check_lengths(None, N, T), kernel)
        return plan

    # -- the parameter vector -------------------------------------------------
    @property
    def n_params(self):
        return self.layout.n_params

    def __getattr__(self, name):
        if name == "cell":
            return self.layout.cell
        raise AttributeError(name)

    def init(self, random_state=None, forget_bias=1.0):
        """Draw fresh parameters in place (``theta`` keeps its identity).

        Weights ~ U(-1/sqrt(H), 1/sqrt(H)) as in PyTorch; biases zero, except
        the LSTM forget gate's bias, set to ``forget_bias`` (Jozefowicz et al.)
        in every layer and direction (never in the head's ``b_out``).
        """
        forget_bias = float(forget_bias)
        if not np.isfinite(forget_bias):
            raise ValueError(f"forget_bias must be finite, got {forget_bias}")
        rng = np.random.default_rng(random_state)
        L, H = self.layout, self.layout.hidden
        k = 1.0 / np.sqrt(H)
        for entry in L.entries:
            v = self.views[entry.name]
            if entry.name.startswith("b"):
                v[...] = 0
            else:
                v[...] = rng.uniform(-k, k, size=v.shape)
        if L.cell == "lstm":  # rows H:2H of each b are the forget gate's
            for layer in range(L.num_layers):
                for d in range(L.directions):
                    self.views["b" + L.suffix(layer, d)][H : 2 * H] = forget_bias
        return self

    def set_theta(self, theta):
        """Copy ``theta`` into the network's vector (views stay valid)."""
        theta = np.asarray(theta)
        if theta.shape != self.theta.shape:
            raise ValueError(f"theta must have shape {self.theta.shape}, got {theta.shape}")
        if not np.all(np.isfinite(theta)):
            raise ValueError("theta holds non-finite values")
        self.theta[:] = theta
        return self

    # -- computation -----------------------------------------------------------
    def _prepare(self, X, y=None, lengths=None, loss=None):
        if y is not None and lengths is None and loss in (None, "mse"):
            L = self.layout
            batch = dense_batch(X, y, self.dtype, L.input_size, L.output_size, self._plan)
            if batch is not None:  # the common case, in a fraction of the time
                X, Y, plan = batch
                return X, plan.lengths, Y, False, Y.size, "mse"
        X, lengths, from_list = check_sequences(X, lengths, self.layout.input_size, self.dtype)
        if y is None:
            return X, lengths, from_list
        if loss is None:
            y_arr = y[0] if isinstance(y, (list, tuple)) and len(y) else y
            loss = "xent" if np.asarray(y_arr).dtype.kind in "iu" else "mse"
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")
        Y, many, count = check_targets(
            y, X.shape[0], X.shape[1], lengths, self.layout.output_size, loss, self.dtype
        )
        return X, lengths, Y, many, count, loss

    def _states(self, h0, N, return_state=False):
        """``(h0, hn)`` for the kernels: ``h0`` (array, or (h0, c0) for an LSTM)
        validated and packed, and a buffer for the final states; each empty
        when not asked for."""
        if self._gpu is not None and (h0 is not None or return_state):
            raise ValueError(
                "initial and final states are not implemented on the GPU backend (device='cuda')"
            )
        L = self.layout
        n_states = L.num_layers * L.directions
        H0 = self._no_state if h0 is None else check_state(h0, L.cell, n_states, N, L.hidden, self.dtype)
        if not return_state:
            return H0, self._no_state
        width = (2 if L.cell == "lstm" else 1) * L.hidden  # [h; c] for the LSTM, as check_state packs
        return H0, np.empty((n_states, N, width), dtype=self.dtype)

    def loss_and_grad(self, X, y, lengths=None, loss=None, theta=None, dropout_seed=None, h0=None):
        """Loss and gradient on a batch.

        Parameters
        ----------
        X : array_like (N, T) or (N, T, I), or list of (T_i,) / (T_i, I) arrays
        y : array_like
            Regression targets (N,), (N, O), per-step (N, T, O) or a list of
            (T_i, O) arrays; integer class targets (N,) or (N, T) select the
            softmax cross-entropy.
        lengths : array_like of int, optional
            Valid steps of each row of a padded ``X``.
        loss : {"mse", "xent"}, optional
            Default: "xent" for integer ``y``, else "mse".
        theta : ndarray, optional
            Evaluate at these parameters instead of ``self.theta``.
        dropout_seed : int or sequence of int, optional
            Apply the network's :attr:`dropout` with the masks this seed picks
            (a training step); the same seed gives the same masks, whatever
            the thread count. Default: no dropout.
        h0 : array_like (num_layers * directions, N, hidden), optional
            Initial states, in the order of ``torch.nn.RNN``'s ``h_0``; for an
            LSTM a pair ``(h0, c0)``. Default: zero. When given, dL/d``h0`` is
            left in :attr:`grad_h0` (same shape, a fresh array each call).

        Returns
        -------
        loss : float
        grad : ndarray
            ``self.grad`` (overwritten by the next call; copy to keep it).
        """
        plain = lengths is None and loss is None and theta is None and dropout_seed is None
        if plain and h0 is None and self._gpu is None:
            L = self.layout
            batch = dense_batch(X, y, self.dtype, L.input_size, L.output_size, self._plan, finite=False)
            # the common training call, with ~1 us less Python (seed: ~11 us); the
            # call below repeats _loss_and_grad's last lines rather than calling it
            if batch is not None:
                Xd, Y, (chunks, blas, lengths, kernel) = batch
                no, scale = self._no_state, 1.0 / Y.size
                args = (self.theta, self.grad, self._specs[0], self._offsets, Xd, lengths, Y, MSE, scale)
                if not blas:
                    value = float(kernel(*args, _NO_DROPOUT, no, no, chunks))
                else:
                    with single_threaded():
                        value = float(kernel(*args, _NO_DROPOUT, no, no, chunks))
                # NaN: a NaN/inf in X or y (the kernel checks them, skipping the
                # compiled check's dispatch, ~0.3 us) or a diverged network. The
                # full path below tells which: it raises, or returns the NaN.
                if value == value:
                    return value, self.grad
        X, lengths, Y, many, count, loss = self._prepare(X, y, lengths, loss)
        if h0 is None:
            return self._loss_and_grad(X, lengths, Y, many, count, loss, theta, dropout_seed), self.grad
        H0, _ = self._states(h0, X.shape[0])
        dH0 = np.empty_like(H0)
        value = self._loss_and_grad(X, lengths, Y, many, count, loss, theta, dropout_seed, H0, dH0)
        self.grad_h0 = split_state(dH0, self.layout.cell)
        return value, self.grad

    def _loss_and_grad(
        self, X, lengths, Y, many, count, loss, theta=None, dropout_seed=None, h0=None, dh0=None
    ):
        """Validated arrays in, loss out, ``self.grad`` filled (and ``dh0``, if
        given; ``h0``, ``dh0``: packed states as :func:`engine.loss_and_grad` takes)."""
        th = self.theta if theta is None else theta
        drop = _NO_DROPOUT if dropout_seed is None else engine.dropout_plan(self.dropout, dropout_seed)
        if self._gpu is not None:
            if drop[1]:
                raise ValueError(
                    "dropout between layers is not implemented on the GPU backend (device='cuda')"
                )
            return float(self._gpu.loss_and_grad(th, self.grad, X, lengths, Y, loss, 1.0 / count, many))
        chunks, blas, _, kernel = self._plan(X.shape[0], X.shape[1])
        h0 = self._no_state if h0 is None else h0
        dh0 = self._no_state if dh0 is None else dh0
        args = (th, self.grad, self._specs[many], self._offsets, X, lengths, Y, LOSSES[loss], 1.0 / count)
        if not blas:
            return float(kernel(*args, drop, h0, dh0, chunks))
        with single_threaded():
            return float(kernel(*args, drop, h0, dh0, chunks))

    def predict(self, X, lengths=None, many_to_many=False, h0=None, return_state=False):
        """Head outputs: (N, O) from each final state, or with
        ``many_to_many=True`` (N, T, O) with NaN in the padding (a list of
        (T_i, O) arrays when ``X`` is a list). Raw scores for classifiers.

        ``h0``: initial states as in :meth:`loss_and_grad`. ``return_state=True``
        also returns the final states (as PyTorch's ``h_n``: every layer's state
        at each sample's length; the reverse direction's after reading back to
        the first step), shaped like ``h0``; feeding them back as ``h0`` of the
        next piece of a sequence continues it.
        """
        X, lengths, from_list = self._prepare(X, lengths=lengths)
        N, T = X.shape[:2]
        L, O = self.layout, self.layout.output_size
        H0, Hn = self._states(h0, N, return_state)
        if self._gpu is not None:
            out = self._gpu.predict(self.theta, X, lengths, many_to_many).reshape(N, -1, O)
        else:
            out = np.full((N, T if many_to_many else 1, O), np.nan, dtype=self.dtype)
            self._cpu_predict(X, lengths, many_to_many, out, H0, Hn)
        if not many_to_many:
            out = out[:, 0, :]
        elif from_list:
            out = [out[k, : lengths[k]] for k in range(N)]
        return (out, split_state(Hn, L.cell)) if return_state else out

    def _cpu_predict(self, X, lengths, many_to_many, out, h0=None, hn=None):
        N = X.shape[0]
        plan = self._plan(N, X.shape[1])
        chunks, blas = plan.chunks, plan.blas
        h0 = self._no_state if h0 is None else h0
        hn = self._no_state if hn is None else hn
        args = (self.theta, self._specs[many_to_many], self._offsets, X, lengths, h0)
        with single_threaded(blas):
            if chunks == 1:  # no parallel region for a small batch
                self._kernels.chunk_predict(*args, 0, N, out, hn)
            else:
                self._kernels.predict(*args, chunks, out, hn)

    def objective(self, X, y, lengths=None, loss=None, h0=None):
        """``f(theta) -> (loss, grad)`` for ``scipy.optimize.minimize(jac=True)``.

        The data (and the initial states ``h0``, fixed; see :meth:`loss_and_grad`)
        are validated once; each call returns a fresh gradient array (never a
        buffer a later call overwrites) and leaves ``self.theta`` as it is.
        """
        X, lengths, Y, many, count, loss = self._prepare(X, y, lengths, loss)
        H0, _ = self._states(h0, X.shape[0])

        def f(theta):
            theta = kernel_array(theta, self.dtype)
            if theta.shape != self.theta.shape:
                raise ValueError(f"theta must have shape {self.theta.shape}, got {theta.shape}")
            value = self._loss_and_grad(X, lengths, Y, many, count, loss, theta, h0=H0)
            return value, self.grad.astype(np.float64, copy=True)

        return f

    def copy(self):
        """An independent network with the same parameters."""
        new = RNN.__new__(RNN)
        new.layout, new.dtype, new.dropout = self.layout, self.dtype, self.dropout
        new._bind(self.theta.copy())
        return new.to(self.device)

    def __repr__(self):
        L = self.layout
        extra = "".join(
            f", {k}={v}"
            for k, v, default in (
                ("num_layers", L.num_layers, 1),
                ("bidirectional", L.bidirectional, False),
                ("dropout", self.dropout, 0.0),
            )
            if v != default
        )
        return (
            f"RNN(input_size={L.input_size}, hidden={L.hidden}, output_size={L.output_size}, "
            f"cell={L.cell!r}{extra}, dtype={self.dtype.name}) with {self.n_params} parameters"
        )

    def __getstate__(self):
        state = {"layout": self.layout.to_dict(), "dtype": self.dtype.str, "theta": self.theta}
        return dict(state, dropout=self.dropout) if self.dropout else state

    def __setstate__(self, state):
        self.layout = Layout(**state["layout"])
        self.dtype = np.dtype(state["dtype"])
        self.dropout = float(state.get("dropout", 0.0))
        self._bind(np.array(state["theta"], dtype=self.dtype))
        self.to("cpu")  # a pickled network comes back on the CPU, wherever it was made
