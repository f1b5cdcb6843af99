"""``RNN``: one flat parameter vector, its views, and the backend that runs it.

The network owns ``theta`` and ``grad``. Every weight matrix is a view into
them (``net.views["W"]``), so the weights tied across time steps are one set of
numbers and any optimiser that moves a vector trains any architecture. Where
the kernels run (CPU or GPU) is the network's :attr:`~RNN.backend`, chosen
once by :meth:`RNN.to` (:mod:`rnnumba.backends`).
"""

import numbers
import warnings

import numpy as np

from . import backends
from .backends.cpu import NO_DROPOUT
from .data import Batch, batch, sequences
from .dropout import plan as dropout_plan
from .layout import Layout
from .network_state import NetworkState
from .validation import check_state, kernel_array, split_state


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


class RNN(NetworkState):
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
        ``dL/dh0`` (an LSTM: ``(dL/dh0, dL/dc0)``) of the last
        :meth:`loss_and_grad` given an initial state ``h0``.
    views, grad_views : dict of str -> ndarray
        Named views into ``theta`` and ``grad``.
    layout : Layout
    n_params : int
    backend : CPU, CUDA or DaskBackend
        Where the kernels run (:mod:`rnnumba.backends`); set by :meth:`to`.
    device : str
        The backend's name: "cpu", "cuda" or "dask".

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
        """Run the kernels on ``device``; returns ``self``.

        Parameters
        ----------
        device : {"cpu", "cuda"} or backend
            A device name, or a backend object (such as
            :class:`rnnumba.distributed.DaskBackend`) for this layout and dtype.

        Returns
        -------
        RNN
            ``self``, on its new backend.

        Notes
        -----
        The parameters do not move: ``theta`` stays the host vector.

        Examples
        --------
        >>> from rnnumba import RNN
        >>> RNN(1, 4).to("cpu").device
        'cpu'
        """
        if isinstance(device, str):
            self.backend = backends.make(device, self.layout, self.dtype, self.dropout)
        else:
            self.backend = device
        self.device = self.backend.name
        return self

    def _bind(self, theta):
        """Adopt ``theta``; make the gradient and the views."""
        self.theta = theta
        self.grad = np.zeros_like(theta)
        self.views = self.layout.views(self.theta)
        self.grad_views = self.layout.views(self.grad)

    # -- the parameter vector -------------------------------------------------
    @property
    def n_params(self):
        """Length of ``theta``: the number of parameters (an int)."""
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

        Parameters
        ----------
        random_state : int, numpy.random.Generator or None
            Seeds the draw.
        forget_bias : float, default 1.0
            LSTM only: the forget gates' initial bias.

        Returns
        -------
        RNN
            ``self``.

        Examples
        --------
        >>> from rnnumba import RNN
        >>> net = RNN(1, 4, cell="lstm", random_state=0)
        >>> theta = net.theta
        >>> net.init(random_state=1, forget_bias=2.0).theta is theta   # same vector, new values
        True
        >>> net.views["b"][4:8]                                         # the forget gate's rows
        array([2., 2., 2., 2.])
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
        """Copy ``theta`` into the network's vector (views stay valid).

        Parameters
        ----------
        theta : array_like (n_params,)
            Finite values, such as an optimiser's result.

        Returns
        -------
        RNN
            ``self``.

        Examples
        --------
        >>> import numpy as np
        >>> from rnnumba import RNN
        >>> net = RNN(1, 4)
        >>> W = net.views["W"]
        >>> _ = net.set_theta(np.zeros(net.n_params))
        >>> float(abs(W).max())                   # the view sees the new values
        0.0
        """
        theta = np.asarray(theta)
        if theta.shape != self.theta.shape:
            raise ValueError(f"theta must have shape {self.theta.shape}, got {theta.shape}")
        if not np.all(np.isfinite(theta)):
            raise ValueError("theta holds non-finite values")
        self.theta[:] = theta
        return self

    # -- computation -----------------------------------------------------------
    def prepare(self, X, y=None, lengths=None, loss=None):
        """Validate data once for repeated use.

        Parameters
        ----------
        X, y, lengths, loss
            As for :meth:`loss_and_grad` (``y=None``: inputs only).

        Returns
        -------
        Sequences or Batch
            Accepted by :meth:`predict` (a :class:`~rnnumba.data.Sequences`) or
            :meth:`loss_and_grad` (a :class:`~rnnumba.data.Batch`, with ``y=None``)
            without a second validation.

        Examples
        --------
        >>> import numpy as np
        >>> from rnnumba import RNN
        >>> net = RNN(1, 4, random_state=0)
        >>> X, y = np.random.default_rng(0).normal(size=(8, 5)), np.zeros(8)
        >>> batch = net.prepare(X, y)             # checked once ...
        >>> loss, grad = net.loss_and_grad(batch) # ... used many times
        >>> loss == net.loss_and_grad(X, y)[0]
        True
        """
        L = self.layout
        if y is None:
            return sequences(X, lengths, L.input_size, self.dtype)
        return batch(X, y, lengths, loss, L.input_size, L.output_size, self.dtype)

    def _states(self, h0, N, return_state=False):
        """Return ``(h0, hn)`` for the kernels.

        ``h0`` (array, or (h0, c0) for an LSTM) validated and packed, and a
        buffer for the final states; None when not asked for.
        """
        L = self.layout
        n_states = L.num_layers * L.directions
        H0 = None if h0 is None else check_state(h0, L.cell, n_states, N, L.hidden, self.dtype)
        if not return_state:
            return H0, None
        width = (2 if L.cell == "lstm" else 1) * L.hidden  # [h; c] for the LSTM, as check_state packs
        return H0, np.empty((n_states, N, width), dtype=self.dtype)

    def loss_and_grad(
        self, X, y=None, lengths=None, loss=None, theta=None, dropout_seed=None, h0=None, memory="auto"
    ):
        """Loss and gradient on a batch.

        Parameters
        ----------
        X : array_like (N, T) or (N, T, I), list of (T_i,) / (T_i, I) arrays, or Batch
            A :class:`~rnnumba.data.Batch` from :meth:`prepare` (with ``y``,
            ``lengths`` and ``loss`` left out) is used as it is.
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
            LSTM a pair ``(h0, c0)``. Default: zero. When given, ``dL/dh0`` is
            left in :attr:`grad_h0` (same shape, a fresh array each call).
        memory : {"auto", "full", "checkpoint"}, default "auto"
            How BPTT keeps the forward pass's states: every step's ("full"),
            or a checkpoint every ~sqrt(T) steps, each segment's forward pass
            run again during BPTT ("checkpoint": memory as sqrt(T) whatever
            the depth and head, at about one more forward pass; a
            bidirectional stack ~3x the time of full storage). The gradient
            is bitwise the same either way. "auto" checkpoints when full
            storage would pass :data:`rnnumba.memory.BLOCK_BYTES` (512 MB); a
            bidirectional network then keeps its layers' outputs for every
            step (one more forward pass) where one sequence of that fits in
            512 MB (see ``docs/long-sequences.md``). CPU only.

        Returns
        -------
        loss : float
        grad : ndarray
            ``self.grad`` (overwritten by the next call; copy to keep it).

        Examples
        --------
        One SGD step by hand, and the same gradient with checkpointed BPTT:

        >>> import numpy as np
        >>> from rnnumba import RNN
        >>> net = RNN(1, 8, cell="gru", random_state=0)
        >>> rng = np.random.default_rng(0)
        >>> X, y = rng.normal(size=(16, 50)), rng.normal(size=16)
        >>> loss, grad = net.loss_and_grad(X, y)
        >>> grad.shape == net.theta.shape
        True
        >>> full = grad.copy()
        >>> bool((net.loss_and_grad(X, y, memory="checkpoint")[1] == full).all())   # bitwise
        True
        >>> net.theta -= 0.1 * full
        >>> net.loss_and_grad(X, y)[0] < loss
        True
        """
        plain = lengths is None and loss is None and theta is None and dropout_seed is None and h0 is None
        if plain and memory == "auto":
            # the common training call, with less Python (every us counts at the seed's size)
            value = self.backend.dense_loss_and_grad(self.theta, self.grad, X, y)
            if value is not None:
                return value, self.grad
        if isinstance(X, Batch):
            if y is not None or lengths is not None or loss is not None:
                raise ValueError("a Batch carries its own targets, lengths and loss: pass none of them")
            data = X
        else:
            if y is None:
                raise ValueError("y is required (or pass a Batch from net.prepare(X, y))")
            data = self.prepare(X, y, lengths, loss)
        th = self.theta if theta is None else theta
        drop = NO_DROPOUT if dropout_seed is None else dropout_plan(self.dropout, dropout_seed)
        if h0 is None:
            return self.backend.loss_and_grad(th, self.grad, data, drop, storage=memory), self.grad
        H0, _ = self._states(h0, data.X.shape[0])
        dH0 = np.empty_like(H0)
        value = self.backend.loss_and_grad(th, self.grad, data, drop, H0, dH0, storage=memory)
        self.grad_h0 = split_state(dH0, self.layout.cell)
        return value, self.grad

    def predict(self, X, lengths=None, many_to_many=False, h0=None, return_state=False):
        """Head outputs: (N, O) from each final state, or (N, T, O) with ``many_to_many=True``.

        Per step, the padding holds NaN (a list of (T_i, O) arrays when ``X`` is
        a list). Raw scores for classifiers.

        ``X`` may be a :class:`~rnnumba.data.Sequences` from :meth:`prepare`.
        ``h0``: initial states as in :meth:`loss_and_grad`. ``return_state=True``
        also returns the final states (as PyTorch's ``h_n``: every layer's state
        at each sample's length; the reverse direction's after reading back to
        the first step), shaped like ``h0``; feeding them back as ``h0`` of the
        next piece of a sequence continues it.

        Parameters
        ----------
        X : array_like (N, T) or (N, T, I), list of arrays, or Sequences
            The inputs (see :meth:`loss_and_grad`).
        lengths : array_like of int, optional
            Valid steps of each row of a padded ``X``.
        many_to_many : bool, default False
            One output per step instead of one per sequence.
        h0 : array_like, optional
            Initial states, as in :meth:`loss_and_grad`.
        return_state : bool, default False
            Also return the final states.

        Returns
        -------
        out : ndarray (N, O) or (N, T, O), or list of (T_i, O) arrays
            The head's outputs.
        state : ndarray or (ndarray, ndarray)
            With ``return_state=True``: the final states, shaped like ``h0``
            (an LSTM: ``(h, c)``).

        Examples
        --------
        A long sequence read in two pieces gives what one pass gives:

        >>> import numpy as np
        >>> from rnnumba import RNN
        >>> net = RNN(1, 8, cell="lstm", random_state=0)
        >>> X = np.random.default_rng(0).normal(size=(1, 100))
        >>> whole = net.predict(X, many_to_many=True)
        >>> first, state = net.predict(X[:, :60], many_to_many=True, return_state=True)
        >>> second = net.predict(X[:, 60:], many_to_many=True, h0=state)
        >>> np.allclose(np.concatenate([first, second], axis=1), whole)
        True
        >>> net.predict(X).shape                  # one output per sequence
        (1, 1)
        """
        seqs = self.prepare(X, lengths=lengths)
        N = seqs.X.shape[0]
        H0, Hn = self._states(h0, N, return_state)
        out = self.backend.predict(self.theta, seqs, many_to_many, H0, Hn)
        if not many_to_many:
            out = out[:, 0, :]
        elif seqs.from_list:
            out = [out[k, : seqs.lengths[k]] for k in range(N)]
        return (out, split_state(Hn, self.layout.cell)) if return_state else out

    def objective(self, X, y=None, lengths=None, loss=None, h0=None, memory="auto"):
        """``f(theta) -> (loss, grad)`` for ``scipy.optimize.minimize(jac=True)``.

        The data (and the initial states ``h0``, fixed; ``memory``: see
        :meth:`loss_and_grad`) are validated once; each call returns a fresh
        gradient array (never a buffer a later call overwrites) and leaves
        ``self.theta`` as it is.

        Parameters
        ----------
        X, y, lengths, loss, h0, memory
            As for :meth:`loss_and_grad`.

        Returns
        -------
        callable
            ``f(theta) -> (loss, grad)``, ``grad`` a fresh float64 array.

        Examples
        --------
        >>> import numpy as np
        >>> from scipy.optimize import minimize
        >>> from rnnumba import RNN
        >>> net = RNN(1, 4, random_state=0)
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(50, 4))
        >>> y = X[:, -1] - X[:, 0]
        >>> f = net.objective(X, y)
        >>> result = minimize(f, net.theta, jac=True, method="L-BFGS-B", options={"maxiter": 50})
        >>> bool(result.fun < f(net.theta)[0])
        True
        >>> _ = net.set_theta(result.x)
        """
        data = X if isinstance(X, Batch) else self.prepare(X, y, lengths, loss)
        H0, _ = self._states(h0, data.X.shape[0])

        def f(theta):
            theta = kernel_array(theta, self.dtype)
            if theta.shape != self.theta.shape:
                raise ValueError(f"theta must have shape {self.theta.shape}, got {theta.shape}")
            value = self.backend.loss_and_grad(theta, self.grad, data, NO_DROPOUT, H0, storage=memory)
            return value, self.grad.astype(np.float64, copy=True)

        return f
