"""Data-parallel training on Dask: the same CPU kernels per chunk, fixed-order sums.

Sibling of :mod:`rnnumba.engine` (one process) and ``rnnumba.gpu`` (GPU); see
``docs/dask.md`` for the design and for running on a real cluster.

* :class:`DaskData`: dask arrays chunked along samples, validated chunk by
  chunk on the workers and kept there as the padded arrays the kernels read.
  Every part keeps its task lineage, so a lost worker's parts are recomputed.
* Full batch (:class:`DaskObjective`, :func:`fit_full_batch`): each call
  broadcasts ``theta``, runs the engine's ``loss_and_grad`` kernel on every part (scale 1:
  sums) and adds the parts' (loss, gradient) in part order on the client, so a
  result depends on the chunking only, never on which worker ran what.
* Minibatch (:func:`fit_minibatch`): local SGD. The parts form ``replicas``
  groups; each replica runs the compiled epoch of
  :class:`rnnumba.solvers.FirstOrder` over its own parts in turn, and the
  client averages the replicas' parameters and optimiser state (weighted by the
  rows each saw) every ``sync_every`` steps or once per epoch.
* :class:`DaskBackend`: the backend contract (:mod:`rnnumba.backends`) over
  :class:`DaskData`, through which ``RNNRegressor.fit`` / ``RNNClassifier.fit``
  train on dask arrays.

Nothing here imports dask at import time: :func:`is_dask_collection` is cheap
for the estimators to call on any input.

The modules, in the order they build on each other:

* :mod:`~rnnumba.distributed.tasks`: the functions the workers run on one part;
* :mod:`~rnnumba.distributed.cluster`: lazy dask imports, the client, Numba
  threads per task (:func:`numba_threads_for`), the warm-up (:func:`warm_workers`);
* :mod:`~rnnumba.distributed.data`: :class:`DaskData`;
* :mod:`~rnnumba.distributed.objective`: :class:`DaskObjective`;
* :mod:`~rnnumba.distributed.checkpoints`: :func:`save_checkpoint`, :func:`load_checkpoint`;
* :mod:`~rnnumba.distributed.full_batch`, :mod:`~rnnumba.distributed.local_sgd`,
  :mod:`~rnnumba.distributed.backend`, :mod:`~rnnumba.distributed.predict`:
  the training loops, the backend the estimators train through, and predictions.
"""

from .backend import DaskBackend
from .checkpoints import load_checkpoint, save_checkpoint
from .cluster import is_dask_collection, numba_threads_for, warm_workers
from .data import DaskData
from .full_batch import fit_full_batch
from .local_sgd import fit_minibatch
from .objective import DaskObjective
from .predict import predict

__all__ = [
    "DaskBackend",
    "DaskData",
    "DaskObjective",
    "fit_full_batch",
    "fit_minibatch",
    "is_dask_collection",
    "load_checkpoint",
    "numba_threads_for",
    "predict",
    "save_checkpoint",
    "warm_workers",
]
