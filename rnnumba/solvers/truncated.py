"""Truncated BPTT: minibatch steps over windows of k steps, the state carried across windows.

For a sequence far longer than its dependencies, or than memory allows for
full BPTT, each minibatch is read window after window, in order::

    h_0 of window w    = the final state of window w-1 (zero for the first),
                         computed with the parameters of window w-1's step
    loss of window w   = the loss of its targets: every step's (many-to-many),
                         or the sequences that end in it (many-to-one)
    gradient           = BPTT inside the window only (nothing flows into window w-1)

and each window with a target takes one optimiser step. This is the documented
approximation of Keras's stateful RNNs and of PyTorch practice: a dependency
longer than ``k`` steps gets no gradient. With ``k`` at least the longest
sequence it is full BPTT (bitwise the same steps as the compiled epoch).

Memory is that of one window (``batch_size`` rows of ``k`` steps). Python runs
once per window, so the windows should be long enough to repay it.
"""

import numpy as np

from ..data import Batch, Sequences, weigh

__all__ = ["Truncated"]


class Truncated:
    """The trainer contract (``epoch``, ``sync``, ``finish``, ``state``, ``load_state``) over windows.

    Parameters
    ----------
    optimizer : FirstOrder
        Its rule, state and minibatch size; :meth:`FirstOrder.apply` takes
        each window's step.
    batch : Batch
    steps : int
        ``k``, the window length.
    order : callable
        ``order(n_blocks, rng, shuffle)``: the backend's minibatch order
        (:func:`rnnumba.backends.cpu.block_order`).

    The network's backend runs each window's ``loss_and_grad`` and the
    ``predict`` that carries the state on.
    """

    def __init__(self, optimizer, batch, steps, order):
        self.optimizer, self.batch, self.steps, self.order = optimizer, batch, int(steps), order
        L = optimizer.net.layout
        carried = 2 * L.hidden if L.cell == "lstm" else L.hidden  # [h; c] for the LSTM
        self.state_shape = (L.num_layers * L.directions, carried)
        self.per = L.output_size if batch.loss == "mse" else 1  # target columns

    def epoch(self, rng, shuffle=True):
        """One pass: the minibatches in an order drawn from ``rng``, each window by window.

        Returns
        -------
        mean_loss : float
            The windows' losses weighted by their number of targets.
        finite : bool
            False when a step went non-finite (``theta`` then holds the last
            finite parameters).
        """
        opt, X, lengths = self.optimizer, self.batch.X, self.batch.lengths
        B, N = opt.batch_size, X.shape[0]
        total = weight = 0.0
        for blk in self.order(-(-N // B), rng, shuffle):
            r0, r1 = blk * B, min(N, (blk + 1) * B)
            lens = lengths[r0:r1]
            S, W = self.state_shape
            state = np.zeros((S, r1 - r0, W), dtype=X.dtype)
            for w0 in range(0, int(lens.max()), self.steps):
                rows = np.flatnonzero(lens > w0)  # the sequences still running
                value, count, hn = self._window(r0 + rows, lens[rows] - w0, w0, state[:, rows], w0 > 0)
                if count:
                    if not opt.apply(opt.net.grad, value):
                        return (total / weight if weight else float("nan")), False
                    total, weight = total + value * count, weight + count
                state[:, rows] = hn
        return (total / weight if weight else float("nan")), True

    def _window(self, rows, left, w0, h0, carried):
        """Loss and gradient of one window (into ``net.grad``), its target count and final state."""
        net, k, per = self.optimizer.net, self.steps, self.per
        X, Y, many, loss = self.batch.X, self.batch.Y, self.batch.many, self.batch.loss
        lw = np.minimum(left, k).astype(np.int64)
        Tw = int(lw.max())
        Xw = np.ascontiguousarray(X[rows, w0 : w0 + Tw])
        h0 = np.ascontiguousarray(h0) if carried else None
        hn = np.empty((self.state_shape[0], len(rows), self.state_shape[1]), dtype=X.dtype)
        net.backend.predict(net.theta, Sequences(Xw, lw, False), False, h0=h0, hn=hn)  # the state carried on
        weighted = Y.shape[2] == 2 * per
        if many:
            Yw = np.ascontiguousarray(Y[rows, w0 : w0 + Tw])
            valid = np.arange(Tw)[None, :] < lw[:, None]
            count = float(Yw[..., per:][valid].sum()) if weighted else int(lw.sum()) * per
        else:  # a sequence's target is read in the window where it ends
            ends = left <= k
            Yw = np.ascontiguousarray(Y[rows])
            if weighted or not ends.all():
                w = Yw[:, 0, per:] if weighted else np.ones((len(rows), per))
                Yw, count = weigh(Yw[:, :, :per], lw, False, (w * ends[:, None])[:, None, :])
            else:
                count = len(rows) * per
        if not count:
            return 0.0, 0, hn
        window = Batch(Xw, lw, Yw, many, count, loss)
        return net.backend.loss_and_grad(net.theta, net.grad, window, h0=h0), count, hn

    def sync(self):
        """Nothing to copy: the steps update ``net.theta`` in place."""

    def finish(self):
        """Nothing to release."""

    def state(self):
        """Return the optimiser's state, to go on later (:meth:`load_state`)."""
        return self.optimizer.saved()

    def load_state(self, state):
        """Go on from :meth:`state`'s dict: momentum or moments and the step count."""
        self.optimizer.restore(state)
