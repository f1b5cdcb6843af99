"""Checkpoints of the distributed fits.

One ``.npz`` with the run's state, written atomically and checked against the
network on load.
"""

import json
import os

import numpy as np

from .._files import atomic_savez


def save_checkpoint(path, net, kind, **state):
    """Write ``state`` (``theta`` among it) to ``path`` as npz, atomically.

    Written to a temporary file in the same folder, flushed to disk, then
    renamed over ``path``: a reader sees the previous checkpoint or the new
    one, never half of one.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.npz`` file to write.
    net : RNN
        The network (its layout and dtype are stored, to be checked on load).
    kind : str
        What wrote it ("full_batch", "minibatch").
    **state
        Arrays and numbers to store, ``theta`` among them.

    Examples
    --------
    >>> import os, tempfile
    >>> import rnnumba
    >>> from rnnumba.distributed import load_checkpoint, save_checkpoint
    >>> net = rnnumba.RNN(1, 4, random_state=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "fit.npz")
    >>> save_checkpoint(path, net, "full_batch", theta=net.theta, iteration=3)
    >>> int(load_checkpoint(path, net, "full_batch")["iteration"])
    3
    """
    arrays = dict(kind=kind, layout=json.dumps(net.layout.to_dict()), dtype=net.dtype.str, **state)
    atomic_savez(path, arrays, prefix=".rnnumba-ckpt-")


def load_checkpoint(path, net, kind):
    """Read the state saved by :func:`save_checkpoint`, checked against ``net`` and ``kind``.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`save_checkpoint`.
    net : RNN
        A network of the layout and dtype the checkpoint was saved for.
    kind : str
        The kind it must be.

    Returns
    -------
    dict
        The stored arrays by name (``theta``, ...).

    Raises
    ------
    ValueError
        A checkpoint of another kind, or saved for another network.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> import rnnumba
    >>> from rnnumba.distributed import load_checkpoint, save_checkpoint
    >>> net = rnnumba.RNN(1, 4, random_state=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "fit.npz")
    >>> save_checkpoint(path, net, "minibatch", theta=net.theta)
    >>> bool(np.array_equal(load_checkpoint(path, net, "minibatch")["theta"], net.theta))
    True
    """
    with np.load(os.fspath(path), allow_pickle=False) as z:
        state = {k: z[k] for k in z.files}
    if str(state.get("kind")) != kind:
        raise ValueError(f"{path} holds a {state.get('kind')} checkpoint, not {kind}")
    if json.loads(str(state["layout"])) != net.layout.to_dict() or str(state["dtype"]) != net.dtype.str:
        raise ValueError(f"{path} was saved for another network: {state['layout']} {state['dtype']}")
    return state
