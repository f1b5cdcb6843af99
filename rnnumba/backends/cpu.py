"""The CPU backend: compiled kernels run over blocks of samples in parallel.

The kernels are those of :mod:`rnnumba.engine` and :mod:`rnnumba.solvers.kernels`.

Siblings: :mod:`rnnumba.backends.cuda` (the same contract on a GPU) and
:class:`rnnumba.distributed.DaskBackend` (on a Dask cluster).
"""

from collections import namedtuple

import numpy as np

from .. import _heap, engine, memory
from .._blas import single_threaded
from ..chunks import blas_may_thread, n_chunks
from ..layout import CHECKPOINTS, FULL, LOCKSTEP
from ..losses import LOSSES
from ..segments import n_segments
from ..validation import dense_batch

MSE = LOSSES["mse"]
NO_DROPOUT = np.zeros(2, dtype=np.int64)  # writeable: a read-only array would compile a second engine
# what CPU.plan remembers per batch shape (N, T); train_bytes[storage][many], storage
# one of rnnumba.layout's FULL, CHECKPOINTS, LOCKSTEP; predict_chunks, predict_blas: the
# same for a prediction
Plan = namedtuple("Plan", "chunks blas lengths kernel train_bytes predict_chunks predict_blas")
STORAGE = ("auto", "full", "checkpoint")
KEPT = (FULL, CHECKPOINTS, LOCKSTEP)  # how the engine keeps the forward pass (rnnumba.layout)
# predict keeps every step's [h; x] up to this estimate (of training's storage: more than
# a forward pass keeps), from checkpoints past it: bounded memory, the same outputs
PREDICT_FULL_BYTES = memory.CHECK_BYTES


def checkpointed(storage, need, room):
    """Return how a training call keeps its forward pass: ``FULL``, ``CHECKPOINTS`` or ``LOCKSTEP``.

    (:mod:`rnnumba.layout`.) ``"full"``, or ``"checkpoint"``: ``LOCKSTEP``,
    memory as sqrt(T) in everything. ``"auto"``: full storage up to
    :data:`rnnumba.memory.BLOCK_BYTES`; past it, checkpoints that need less
    than full storage, ``CHECKPOINTS`` where they take at most ``room`` bytes
    (a bidirectional network then keeps its layers' outputs for every step,
    at one more forward pass), else ``LOCKSTEP`` (more passes). ``need``: the
    three estimates. The gradient is bitwise the same either way.
    """
    if storage not in STORAGE:
        raise ValueError(f"memory must be one of {STORAGE}, got {storage!r}")
    full, ck, lock = need
    if storage != "auto":
        return FULL if storage == "full" else LOCKSTEP
    if full <= memory.BLOCK_BYTES:
        return FULL
    if ck < full and ck <= room:
        return CHECKPOINTS
    return LOCKSTEP if lock < full else FULL


def block_order(n_blocks, rng, shuffle):
    """Return an epoch's minibatch order: a permutation drawn from ``rng``, or ``0..n-1``."""
    return rng.permutation(n_blocks) if shuffle else np.arange(n_blocks)


class CPU:
    """Loss, gradient, predictions and training epochs on this machine's cores.

    Parameters
    ----------
    layout : Layout
    dtype : numpy dtype
        float32 or float64.

    Attributes
    ----------
    specs : tuple of (ndarray, ndarray)
        The kernels' layout table for one output per sequence and per step
        (:meth:`rnnumba.layout.Layout.spec`), for each storage:
        ``specs[FULL]``, ``specs[CHECKPOINTS]``, ``specs[LOCKSTEP]``.
    offsets : ndarray
        Where each tensor starts in ``theta`` (:meth:`rnnumba.layout.Layout.offsets`).
    """

    name = "cpu"

    def __init__(self, layout, dtype):
        self.layout, self.dtype = layout, np.dtype(dtype)
        self.specs = tuple((layout.spec(False, s), layout.spec(True, s)) for s in KEPT)
        self.offsets = layout.offsets()
        self.no_state = np.empty((0, 0, 0), dtype=self.dtype)  # zero initial states
        self._plans = {}

    def plan(self, N, T):
        """Return the :class:`Plan` of an (N, T) batch, remembered.

        The plan holds the chunks, whether BLAS may start threads, the all-``T``
        lengths and the training kernel, and the chunks of a prediction (which
        keeps no past states, so its blocks may hold more rows) and its BLAS
        flag. It is remembered because at the seed's size every microsecond of
        a call counts.
        """
        plan = self._plans.get((N, T))
        if plan is None:
            _heap.tune()  # once, before the first kernel runs
            if len(self._plans) > 1024:
                self._plans.clear()
            row = memory.row_bytes(self.layout, T, self.dtype.itemsize)
            chunks = n_chunks(N, self.layout.hidden, row)
            blas = blas_may_thread(self.layout, N, T, chunks)
            ahead = n_chunks(N, self.layout.hidden, row[:1])  # prediction: [h; x] rows only
            kernel = engine.training_kernel(self.layout.kernel_family, chunks)
            lengths = np.full(N, T, dtype=np.int64)
            size = self.dtype.itemsize
            need = tuple(
                tuple(memory.training_bytes(self.layout, N, T, size, many, s) for many in (False, True))
                for s in KEPT
            )
            ahead_blas = blas_may_thread(self.layout, N, T, ahead)
            plan = self._plans[N, T] = Plan(chunks, blas, lengths, kernel, need, ahead, ahead_blas)
        return plan

    def dense_loss_and_grad(self, theta, grad, X, y):
        """Make the common training call without a :class:`~rnnumba.data.Batch`.

        MSE on C-contiguous arrays of the right dtype and shape, no lengths.
        Returns the loss, or None when the call needs the full path (other
        input, or a NaN: the full path then says which value is bad).
        """
        L = self.layout
        batch = dense_batch(X, y, self.dtype, L.input_size, L.output_size, self.plan, finite=False)
        if batch is None:
            return None
        X, Y, (chunks, blas, lengths, kernel, need, _, _) = batch
        if need[0][0] > memory.CHECK_BYTES:  # big: the full path checks the memory and cuts blocks
            return None
        no = self.no_state
        args = (theta, grad, self.specs[FULL][0], self.offsets, X, lengths, Y, MSE, 1.0 / Y.size, NO_DROPOUT)
        if not blas:
            value = float(kernel(*args, no, no, chunks))
        else:
            with single_threaded():
                value = float(kernel(*args, no, no, chunks))
        return value if value == value else None  # the kernel checks X and y: NaN -> full path

    def loss_and_grad(self, theta, grad, batch, drop=NO_DROPOUT, h0=None, dh0=None, storage="auto"):
        """Mean loss of ``batch`` at ``theta``; ``grad`` filled in place.

        Checkpointed BPTT where :func:`checkpointed` says so (``room``: one
        row of checkpoints per block); then, if even that passes
        :data:`rnnumba.memory.BLOCK_BYTES`, blocks of rows.

        Parameters
        ----------
        theta, grad : ndarray (P,)
        batch : Batch
        drop : int64 ndarray (2,)
            :func:`rnnumba.dropout.plan`'s (key, threshold); zeros: none.
        h0, dh0 : ndarray (S, N, W), optional
            Packed initial states, and a buffer for dL/dh0.
        storage : {"auto", "full", "checkpoint"}
            How BPTT keeps the forward pass's states (:func:`checkpointed`).

        Returns
        -------
        float
        """
        X, lengths, Y, many, count, loss = batch
        N, T = X.shape[:2]
        plan = self.plan(N, T)
        need = tuple(plan.train_bytes[s][many] for s in KEPT)
        ck = self.layout.storage(checkpointed(storage, need, N * memory.BLOCK_BYTES))  # blocks: N
        return self._run(theta, grad, batch, drop, h0, dh0, ck)

    def _run(self, theta, grad, batch, drop, h0, dh0, ck):
        """:meth:`loss_and_grad` with storage ``ck`` (``FULL``, ``CHECKPOINTS`` or ``LOCKSTEP``)."""
        X, lengths, Y, many, count, loss = batch
        N, T = X.shape[:2]
        plan = self.plan(N, T)
        need = plan.train_bytes[ck][many]
        if need > memory.BLOCK_BYTES and N > 1:  # (one row is as small as a block gets)
            return self._blocks(theta, grad, batch, drop, h0, dh0, ck)
        if need > memory.CHECK_BYTES:
            memory.check(need, *self._call(N, T, ck))
        chunks, blas, _, kernel, _, _, _ = plan
        if ck:  # a kernel family of its own, compiled on first use
            kernel = engine.training_kernel(self.layout.kernel_family, chunks, ck)
        h0 = self.no_state if h0 is None else h0
        dh0 = self.no_state if dh0 is None else dh0
        spec = self.specs[ck][many]
        args = (theta, grad, spec, self.offsets, X, lengths, Y, LOSSES[loss], 1.0 / count)
        if not blas:  # no context manager (~0.3 us) where BLAS cannot start threads anyway
            return float(kernel(*args, drop, h0, dh0, chunks))
        with single_threaded():
            return float(kernel(*args, drop, h0, dh0, chunks))

    def _blocks(self, theta, grad, batch, drop, h0, dh0, ck):
        """:meth:`loss_and_grad` of a big batch, block of rows after block, summed in block order.

        The blocks (:func:`rnnumba.memory.block_rows`) depend on the shape only,
        so the result is bitwise the same on every machine and thread count; the
        memory is that of one block, whatever N.
        """
        X, lengths, Y, many, count, loss = batch
        N, T = X.shape[:2]
        rows = memory.block_rows(self.layout, N, T, self.dtype.itemsize, many, ck)
        if drop[1]:
            raise ValueError(
                f"dropout on a full batch of {N} sequences of {T} steps: too big for one block of memory; "
                "train with a minibatch solver"
            )
        memory.check(self.plan(rows, T).train_bytes[ck][many], *self._call(rows, T, ck, blocks_of=N))
        total, part = 0.0, np.empty_like(grad)
        for r0 in range(0, N, rows):
            r1 = min(N, r0 + rows)
            block = batch._replace(X=X[r0:r1], lengths=lengths[r0:r1], Y=Y[r0:r1])
            h0b = None if h0 is None else np.ascontiguousarray(h0[:, r0:r1])
            dh0b = None if dh0 is None else np.empty_like(dh0[:, r0:r1], order="C")
            total += self._run(theta, grad if r0 == 0 else part, block, drop, h0b, dh0b, ck)
            if r0 > 0:
                grad += part
            if dh0 is not None:
                dh0[:, r0:r1] = dh0b
        return total

    def _call(self, N, T, ck, blocks_of=None, minibatch=False):
        """Describe a training call and the ways to make it smaller, for :class:`NotEnoughMemory`."""
        L = self.layout
        what = f"{N} sequence(s) of {T} steps ({L.cell}, hidden {L.hidden}, {L.num_layers} layer(s), "
        what += f"{self.dtype.name}{', checkpointed BPTT' if ck else ''})"
        if blocks_of:
            what = f"Training on {blocks_of} sequences, in blocks of {what}, per block"
        else:
            what = f"A {'minibatch step' if minibatch else 'training call'} on {what}"
        ways = "Ways out: float32 (half the memory), a smaller network, or shorter sequences (cut them and "
        ways += "carry the state: RNN.loss_and_grad takes h0)"
        if ck != L.storage(LOCKSTEP) and n_segments(T) > 1:  # (one direction: checkpoints are lockstep)
            ways += "; memory='checkpoint' (the same gradient, in memory as sqrt(T))"
        if not blocks_of:
            ways += (
                "; a minibatch solver with a smaller batch_size"
                if not minibatch
                else "; a smaller batch_size"
            )
        return what, ways + "."

    def predict(self, theta, seqs, many, h0=None, hn=None, storage="auto"):
        """Head outputs (N, T if ``many`` else 1, O), NaN in the padding.

        Parameters
        ----------
        theta : ndarray (P,)
        seqs : Sequences
        many : bool
            Every step's output, not only each sequence's last.
        h0, hn : ndarray (S, N, W), optional
            Packed initial states, and a buffer the final states go to.
        storage : {"auto", "full", "checkpoint"}
            Every step's state kept, or only checkpoints (the same outputs;
            "checkpoint": in lockstep, memory as sqrt(T) in everything);
            "auto": checkpoints past one segment when full storage would pass
            :data:`PREDICT_FULL_BYTES`, in lockstep past
            :data:`rnnumba.memory.BLOCK_BYTES` of them.

        Returns
        -------
        ndarray
        """
        X, lengths = seqs.X, seqs.lengths
        N, T = X.shape[:2]
        out = np.full((N, T if many else 1, self.layout.output_size), np.nan, dtype=self.dtype)
        plan = self.plan(N, T)
        h0 = self.no_state if h0 is None else h0
        hn = self.no_state if hn is None else hn
        # big: keep only the checkpoints, memory as sqrt(T), the same outputs
        if storage not in STORAGE:
            raise ValueError(f"storage must be one of {STORAGE}, got {storage!r}")
        ck = FULL if storage == "full" else LOCKSTEP
        if storage == "auto":
            big = n_segments(T) > 1 and plan.train_bytes[FULL][many] > PREDICT_FULL_BYTES
            ck = FULL if not big else CHECKPOINTS
            if big and plan.train_bytes[CHECKPOINTS][many] > memory.BLOCK_BYTES:
                ck = LOCKSTEP
        if ck:  # (nothing more to decide for full storage, the common fast path)
            ck = self.layout.storage(ck)
        spec = self.specs[ck][many]
        kernels = engine.kernels(self.layout.kernel_family, ck)
        args = (theta, spec, self.offsets, X, lengths, h0)
        with single_threaded(plan.predict_blas):
            if plan.predict_chunks == 1:  # no parallel region for a small batch
                kernels.chunk_predict(*args, engine.FIRST, N, out, hn)
            else:
                kernels.predict(*args, plan.predict_chunks, out, hn)
        return out

    def resident(self, batch):
        """``batch`` kept where this backend computes (here: as it is)."""
        return batch

    def trainer(self, net, batch, method, options, seed=None, bptt_steps=None):
        """Return the epochs of a :class:`rnnumba.solvers.FirstOrder` over ``batch``.

        A :class:`Trainer` (each epoch one compiled call), or with
        ``bptt_steps`` a :class:`rnnumba.solvers.truncated.Truncated` (truncated
        BPTT over windows of that many steps).
        """
        from ..solvers.first_order import FirstOrder
        from ..solvers.truncated import Truncated

        N, T = batch.X.shape[:2]
        rows, steps = min(N, options["batch_size"]), min(T, bptt_steps or T)
        size, many = self.dtype.itemsize, batch.many
        need = [memory.training_bytes(self.layout, rows, steps, size, many, s) for s in KEPT]
        room = memory.available_bytes()  # no blocks here: one minibatch step takes what it needs
        ck = self.layout.storage(checkpointed("auto", need, float("inf") if room is None else room))
        need = need[ck]
        if need > memory.CHECK_BYTES:  # one minibatch's step, before the epoch allocates it
            memory.check(need, *self._call(rows, steps, ck, minibatch=True))
        optimizer = FirstOrder(net, method, seed=seed, checkpoint=ck, defer=True, **options)
        if bptt_steps is not None:
            if net.dropout:
                raise ValueError("bptt_steps does not combine with dropout yet")
            return Truncated(optimizer, batch, bptt_steps, block_order)
        return Trainer(optimizer, batch)


class Trainer:
    """Epochs of a first-order optimiser over one batch.

    The backend contract's ``trainer``: ``epoch(rng, shuffle) -> (mean_loss, finite)``,
    ``sync()`` (parameters back into ``net.theta``: here they never left) and
    ``finish()``.
    """

    def __init__(self, optimizer, batch):
        self.optimizer, self.batch = optimizer, batch
        self.n_blocks = optimizer.n_blocks(batch.X.shape[0])

    def epoch(self, rng, shuffle=True):
        """One pass over the minibatches, in an order drawn from ``rng``.

        The minibatches go in order if not ``shuffle``; see :meth:`FirstOrder.epoch`.
        """
        return self.optimizer.epoch(self.batch, block_order(self.n_blocks, rng, shuffle))

    def sync(self):
        """Nothing to copy: the CPU updates ``net.theta`` in place."""

    def finish(self):
        """Nothing to release."""

    def state(self):
        """Return the optimiser's state, to go on later (:meth:`load_state`)."""
        return self.optimizer.saved()

    def load_state(self, state):
        """Go on from :meth:`state`'s dict: momentum or moments and the step count."""
        self.optimizer.restore(state)
