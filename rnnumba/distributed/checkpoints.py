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
    """
    arrays = dict(kind=kind, layout=json.dumps(net.layout.to_dict()), dtype=net.dtype.str, **state)
    atomic_savez(path, arrays, prefix=".rnnumba-ckpt-")


def load_checkpoint(path, net, kind):
    """Read the state saved by :func:`save_checkpoint`, checked against ``net`` and ``kind``."""
    with np.load(os.fspath(path), allow_pickle=False) as z:
        state = {k: z[k] for k in z.files}
    if str(state.get("kind")) != kind:
        raise ValueError(f"{path} holds a {state.get('kind')} checkpoint, not {kind}")
    if json.loads(str(state["layout"])) != net.layout.to_dict() or str(state["dtype"]) != net.dtype.str:
        raise ValueError(f"{path} was saved for another network: {state['layout']} {state['dtype']}")
    return state
