"""Where every parameter lives inside the flat vector ``theta``.

One :class:`Layout` describes a network: for each layer and direction the
recurrent cell's tensors, then the linear head. The CPU kernels, the CUDA
kernels and the Dask driver all read this one description.

The order inside ``theta`` is::

    for layer in range(num_layers):
        for direction in (forward, reverse if bidirectional):
            W      (G*H, H + I_l)  rows: gates; columns: h_{t-1} first, then x_t
            b      (G*H,)
            extras (cell specific, see :func:`cell_extras`)
    W_out  (O, H*D)
    b_out  (O,)

with G gates per cell (Elman 1, GRU 3 in the order r, z, n, LSTM 4 in the order
i, f, g, o, as in PyTorch), ``I_0 = input_size``, ``I_l = H*D`` for ``l > 0`` and
``D = 2`` for bidirectional networks. For the seed's Elman network (input 1,
hidden 26, output 1) this is ``[W (26x27), b (26), W_out (1x26), b_out (1)]``,
755 numbers.

Names: layer 0's forward tensors are ``W``, ``b``, ...; layer ``l`` appends
``_l{l}`` and the reverse direction appends ``_reverse`` (``W_l1_reverse``).
"""

from dataclasses import dataclass, field

import numpy as np

CELLS = ("elman", "lstm", "gru")
GATES = {"elman": 1, "lstm": 4, "gru": 3}
CELL_CODE = {name: k for k, name in enumerate(CELLS)}

# The kernels' spec vector (:meth:`Layout.spec`), entry by entry: the one
# place these positions are written down; kernels read ``spec[HIDDEN]``.
CELL, HIDDEN, LAYERS, DIRECTIONS, INPUTS, OUTPUTS, PEEPHOLE, RESET_AFTER, MANY, CHECKPOINT = range(10)
# The columns of the offsets table (:meth:`Layout.offsets`): a layer and
# direction's W, b and extra tensor; the last row holds W_out, b_out and O.
W_AT, B_AT, EXTRA_AT = range(3)
# spec[CHECKPOINT], how BPTT keeps the forward pass: every step (FULL); checkpoints,
# a bidirectional network keeping what passes between its layers for every step
# (CHECKPOINTS: one more forward pass); checkpoints through every layer in lockstep,
# memory as sqrt(T) for any depth and direction (LOCKSTEP: for a bidirectional
# network, more passes; one direction walks in lockstep either way)
FULL, CHECKPOINTS, LOCKSTEP = range(3)
STORAGES = ("full", "checkpoint", "lockstep")  # their names (rnnumba.precompile's reports)


def family_options(family):
    """Return the network options of a kernel family (the inverse of :attr:`Layout.kernel_family`).

    Examples
    --------
    >>> from rnnumba.layout import family_options
    >>> family_options("gru_cho")
    {'cell': 'gru', 'reset_after': False}
    """
    return {"cell": "gru" if family == "gru_cho" else family, "reset_after": family != "gru_cho"}


def cell_extras(cell, hidden, peephole=False):
    """Cell-specific tensors after ``W`` and ``b``: ``[(name, shape), ...]``.

    * GRU: ``b_hn`` (H,), the bias inside the reset product
      ``r * (W_hn h + b_hn)`` (PyTorch's formulation; zero and unused by Cho's).
    * LSTM with peepholes: ``p`` (3, H), the diagonal peephole weights of the
      input, forget and output gates (Graves 2013).
    """
    if cell == "gru":
        return [("b_hn", (hidden,))]
    if cell == "lstm" and peephole:
        return [("p", (3, hidden))]
    return []


@dataclass(frozen=True)
class Entry:
    """One tensor: its name, offset into ``theta`` and shape."""

    name: str
    offset: int
    shape: tuple

    @property
    def size(self):
        """Number of entries, the product of ``shape``."""
        return int(np.prod(self.shape))


@dataclass(frozen=True)
class Layout:
    """The parameter layout of one network.

    Parameters
    ----------
    cell : {"elman", "lstm", "gru"}
    input_size, hidden, output_size : int
    num_layers : int
    bidirectional : bool
    peephole : bool
        LSTM only: add Graves' peephole weights.
    reset_after : bool
        GRU only: PyTorch's formulation ``n = tanh(W_nx x + b_n + r*(W_nh h + b_hn))``
        (True, the default) or Cho et al.'s ``n = tanh(W_nx x + b_n + W_nh (r*h))``.

    Examples
    --------
    The seed's network: ``W`` (26 x 27, the columns of ``h`` first), ``b``, then the head.

    >>> from rnnumba import Layout
    >>> layout = Layout("elman", input_size=1, hidden=26)
    >>> [(e.name, e.offset, e.shape) for e in layout.entries]
    [('W', 0, (26, 27)), ('b', 702, (26,)), ('W_out', 728, (1, 26)), ('b_out', 754, (1,))]
    >>> layout.n_params
    755
    """

    cell: str
    input_size: int
    hidden: int
    output_size: int = 1
    num_layers: int = 1
    bidirectional: bool = False
    peephole: bool = False
    reset_after: bool = True
    entries: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        """Check the arguments and build :attr:`entries`, the tensors in ``theta`` order."""
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {CELLS}, got {self.cell!r}")
        for name in ("input_size", "hidden", "output_size", "num_layers"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.peephole and self.cell != "lstm":
            raise ValueError("peephole connections exist only for cell='lstm'")
        H, G, D = self.hidden, GATES[self.cell], self.directions
        entries, offset = [], 0

        def add(name, shape):
            nonlocal offset
            entries.append(Entry(name, offset, tuple(int(s) for s in shape)))
            offset += int(np.prod(shape))

        for layer in range(self.num_layers):
            I_l = self.input_size if layer == 0 else H * D
            for d in range(D):
                suffix = self.suffix(layer, d)
                add("W" + suffix, (G * H, H + I_l))
                add("b" + suffix, (G * H,))
                for name, shape in cell_extras(self.cell, H, self.peephole):
                    add(name + suffix, shape)
        add("W_out", (self.output_size, H * D))
        add("b_out", (self.output_size,))
        object.__setattr__(self, "entries", tuple(entries))

    @staticmethod
    def suffix(layer, direction):
        """Return the name suffix of one layer and direction: '', '_l1', '_reverse', ...

        Parameters
        ----------
        layer, direction : int
            Layer 0, 1, ...; direction 0 (forward) or 1 (reverse).

        Returns
        -------
        str

        Examples
        --------
        >>> from rnnumba import Layout
        >>> Layout.suffix(0, 0), Layout.suffix(1, 1)
        ('', '_l1_reverse')
        """
        return ("" if layer == 0 else f"_l{layer}") + ("_reverse" if direction else "")

    @property
    def directions(self):
        """``D``: 2 for a bidirectional network, else 1."""
        return 2 if self.bidirectional else 1

    @property
    def gates(self):
        """``G``, the cell's gate blocks: Elman 1, GRU 3, LSTM 4."""
        return GATES[self.cell]

    @property
    def n_params(self):
        """Length of ``theta``: the number of parameters (:func:`n_params` in closed form)."""
        last = self.entries[-1]
        return last.offset + last.size

    def __getitem__(self, name):
        """Return the :class:`Entry` named ``name`` (``"W"``, ``"b_l1_reverse"``, ...); KeyError if none."""
        for entry in self.entries:
            if entry.name == name:
                return entry
        raise KeyError(name)

    def views(self, theta):
        """Name -> array view into ``theta`` (no copies).

        Parameters
        ----------
        theta : array_like (n_params,)
            A parameter vector (or a gradient) of this layout.

        Returns
        -------
        dict of str -> ndarray
            Every tensor, in ``theta`` order, as a view of its shape.

        Examples
        --------
        >>> import numpy as np
        >>> from rnnumba import Layout
        >>> layout = Layout("lstm", input_size=2, hidden=3)
        >>> theta = np.zeros(layout.n_params)
        >>> views = layout.views(theta)
        >>> views["W"].shape, np.shares_memory(views["W"], theta)
        ((12, 5), True)
        """
        theta = np.asarray(theta)
        if theta.ndim != 1 or theta.shape[0] != self.n_params:
            raise ValueError(f"expected a vector of {self.n_params} parameters, got shape {theta.shape}")
        return {e.name: theta[e.offset : e.offset + e.size].reshape(e.shape) for e in self.entries}

    def offsets(self):
        """Return the kernels' offsets table, int64 of shape (num_layers*D + 1, 3).

        Row ``l*D + d`` holds the offsets of ``W``, ``b`` and the cell's extra
        tensor (-1 when it has none) of layer ``l``, direction ``d``; the last
        row holds the offsets of ``W_out`` and ``b_out`` and the output size.

        Returns
        -------
        ndarray of int64, shape (num_layers * directions + 1, 3)

        Examples
        --------
        >>> from rnnumba import Layout
        >>> Layout("gru", input_size=1, hidden=2).offsets().tolist()
        [[0, 18, 24], [26, 28, 1]]
        """
        D = self.directions
        table = np.full((self.num_layers * D + 1, 3), -1, dtype=np.int64)
        for layer in range(self.num_layers):
            for d in range(D):
                s = self.suffix(layer, d)
                table[layer * D + d, W_AT] = self["W" + s].offset
                table[layer * D + d, B_AT] = self["b" + s].offset
                extras = cell_extras(self.cell, self.hidden, self.peephole)
                if extras:
                    table[layer * D + d, EXTRA_AT] = self[extras[0][0] + s].offset
        table[-1] = (self["W_out"].offset, self["b_out"].offset, self.output_size)
        return table

    def spec(self, many_to_many=False, checkpoint=False):
        """Return the kernels' integer description, an int64 vector.

        Entries named by :data:`CELL`, :data:`HIDDEN`, ... :data:`CHECKPOINT`:
        cell code, H, layers, directions, input size, output size, peephole
        flag, reset-after flag, whether the head reads every step
        (many-to-many) or the final state, and how training keeps the
        forward pass (:data:`FULL`, :data:`CHECKPOINTS`, :data:`LOCKSTEP`).

        Parameters
        ----------
        many_to_many : bool, default False
            Whether the head reads every step.
        checkpoint : {False, True, LOCKSTEP}, default False
            Checkpointed BPTT (``True`` is :data:`CHECKPOINTS`): the same
            gradient, bit for bit, in memory that grows as sqrt(T) in the
            recurrent buffers, and with :data:`LOCKSTEP` in everything.

        Returns
        -------
        ndarray of int64, shape (CHECKPOINT + 1,)

        Examples
        --------
        >>> from rnnumba import Layout
        >>> from rnnumba.layout import HIDDEN, MANY
        >>> spec = Layout("elman", 1, 26).spec(many_to_many=True)
        >>> int(spec[HIDDEN]), int(spec[MANY])
        (26, 1)
        """
        spec = np.zeros(CHECKPOINT + 1, dtype=np.int64)
        spec[CELL] = CELL_CODE[self.cell]
        spec[HIDDEN], spec[LAYERS], spec[DIRECTIONS] = self.hidden, self.num_layers, self.directions
        spec[INPUTS], spec[OUTPUTS] = self.input_size, self.output_size
        spec[PEEPHOLE], spec[RESET_AFTER], spec[MANY] = self.peephole, self.reset_after, many_to_many
        spec[CHECKPOINT] = self.storage(checkpoint)
        return spec

    def storage(self, checkpoint):
        """Return how this network's BPTT keeps the forward pass.

        One direction walks in lockstep with any checkpoints, so it never
        takes :data:`LOCKSTEP`: the kernels of :data:`CHECKPOINTS` do it.

        Parameters
        ----------
        checkpoint : {False, True, LOCKSTEP}
            As :meth:`spec` takes it.

        Returns
        -------
        int
            :data:`FULL`, :data:`CHECKPOINTS` or :data:`LOCKSTEP`.

        Examples
        --------
        >>> from rnnumba.layout import LOCKSTEP, Layout
        >>> Layout("gru", 1, 8).storage(LOCKSTEP), Layout("gru", 1, 8, bidirectional=True).storage(LOCKSTEP)
        (1, 2)
        """
        checkpoint = int(checkpoint)
        return CHECKPOINTS if checkpoint == LOCKSTEP and self.directions == 1 else checkpoint

    @property
    def kernel_family(self):
        """Which family of compiled kernels runs this network (:func:`rnnumba.engine.kernels`).

        The cell, and for the GRU its form: ``"gru"`` or ``"gru_cho"``.
        """
        if self.cell == "gru" and not self.reset_after:
            return "gru_cho"
        return self.cell

    def to_dict(self):
        """Return the constructor's arguments as plain Python values (``Layout(**d)`` rebuilds it).

        Returns
        -------
        dict
            ``cell``, ``input_size``, ``hidden``, ``output_size``, ``num_layers``,
            ``bidirectional``, ``peephole``, ``reset_after``.

        Examples
        --------
        >>> from rnnumba import Layout
        >>> layout = Layout("lstm", 3, 8, num_layers=2)
        >>> Layout(**layout.to_dict()) == layout
        True
        """
        return dict(
            cell=self.cell,
            input_size=int(self.input_size),
            hidden=int(self.hidden),
            output_size=int(self.output_size),
            num_layers=int(self.num_layers),
            bidirectional=bool(self.bidirectional),
            peephole=bool(self.peephole),
            reset_after=bool(self.reset_after),
        )


def n_params(cell, input_size, hidden, output_size=1, num_layers=1, bidirectional=False, peephole=False):
    """Closed-form parameter count (checked against :class:`Layout` in the tests).

    Per layer and direction ``G*H*(H + I_l) + G*H`` plus ``H`` for the GRU's
    ``b_hn`` and ``3H`` for LSTM peepholes; the head adds ``O*H*D + O``. The seed's
    Elman net: ``H^2 + I*H + 2H + 1``.
    """
    G, D, H = GATES[cell], 2 if bidirectional else 1, hidden
    extra = H if cell == "gru" else (3 * H if peephole else 0)
    total = 0
    for layer in range(num_layers):
        I_l = input_size if layer == 0 else H * D
        total += D * (G * H * (H + I_l) + G * H + extra)
    return total + output_size * H * D + output_size
