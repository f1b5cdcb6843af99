"""How a network is copied, pickled, saved and shown: its state, apart from its computation.

:class:`NetworkState` is a base of :class:`rnnumba.RNN`: the layout, the dtype,
the dropout rate and ``theta`` are the whole state; a pickled (or saved)
network comes back on the CPU.
"""

import numpy as np

from .backends import DEVICES
from .layout import Layout


class NetworkState:
    """Copying, pickling and ``repr`` of :class:`rnnumba.RNN` (see there)."""

    def copy(self):
        """Return an independent network with the same parameters.

        Returns
        -------
        RNN
            A new network on the same backend, its own ``theta``.

        Examples
        --------
        >>> from rnnumba import RNN
        >>> net = RNN(1, 4, random_state=0)
        >>> twin = net.copy()
        >>> twin.theta is net.theta, bool((twin.theta == net.theta).all())
        (False, True)
        """
        new = type(self).__new__(type(self))
        new.layout, new.dtype, new.dropout = self.layout, self.dtype, self.dropout
        new._bind(self.theta.copy())
        return new.to(self.device if self.device in DEVICES else self.backend)

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

    def to_state(self):
        """Return what :func:`rnnumba.io.save` writes: ``{"kind": "RNN", "net": self, ...}``.

        Returns
        -------
        dict
            ``kind`` ("RNN"), ``net`` (``self``) and empty ``params`` and ``fitted``.

        Examples
        --------
        >>> from rnnumba import RNN
        >>> RNN(1, 4).to_state()["kind"]
        'RNN'
        """
        return {"kind": "RNN", "net": self, "params": {}, "fitted": {}}

    def __getstate__(self):
        state = {"layout": self.layout.to_dict(), "dtype": self.dtype.str, "theta": self.theta}
        return dict(state, dropout=self.dropout) if self.dropout else state

    def __setstate__(self, state):
        self.layout = Layout(**state["layout"])
        self.dtype = np.dtype(state["dtype"])
        self.dropout = float(state.get("dropout", 0.0))
        self._bind(np.array(state["theta"], dtype=self.dtype))
        self.to("cpu")  # a pickled network comes back on the CPU, wherever it was made
