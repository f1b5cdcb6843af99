"""
Data-parallel training on a Dask ``LocalCluster``
=================================================

With ``pip install "rnnumba[dask]"``, the estimators take dask arrays chunked along
samples: each chunk is validated and kept on a worker, every worker runs the same
compiled kernels as one process does, and only the parameter vector and the
per-chunk losses and gradients travel. A full-batch L-BFGS-B fit on Dask adds the
chunks' sums in a fixed order, so it matches the in-memory fit to rounding. The
design and running on a real cluster: :doc:`/dask`.
"""

# %%
import dask.array as da
import matplotlib.pyplot as plt
import numpy as np
from distributed import Client, LocalCluster

import rnnumba
from rnnumba.datasets import make_toy

X, z = make_toy(8_000, random_state=0)

# two workers with one thread each; ``processes=False`` keeps them in this process,
# which is quick to start (real clusters use processes on many machines)
cluster = LocalCluster(
    n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
)
client = Client(cluster)
X_dask = da.from_array(X, chunks=(2_000, -1))  # 4 chunks of 2,000 sequences
z_dask = da.from_array(z, chunks=2_000)

# %%
# The same estimator, in memory and on the cluster
# ------------------------------------------------
options = dict(hidden=26, solver="L-BFGS-B", epochs=60, random_state=0)
on_dask = rnnumba.RNNRegressor(**options).fit(X_dask, z_dask, client=client)
client.close()  # the in-memory fit below runs with no cluster threads beside it
cluster.close()
in_memory = rnnumba.RNNRegressor(**options).fit(X, z)
curves = np.array(on_dask.loss_curve_), np.array(in_memory.loss_curve_)
print(
    "largest relative difference of the loss curves:",
    np.max(np.abs(curves[0] / curves[1] - 1)),
)

fig, ax = plt.subplots(figsize=(6, 3.6))
ax.plot(curves[1], lw=3, color="0.7", label="in memory")
ax.plot(curves[0], "--", color="C3", label="Dask, 2 workers, 4 chunks")
ax.set(xlabel="L-BFGS-B iteration", ylabel="training loss", yscale="log")
ax.legend()
fig.tight_layout()

# %%
# Lower-level functions: :func:`rnnumba.distributed.fit_full_batch` adds checkpoints
# and callbacks, :func:`rnnumba.distributed.fit_minibatch` runs local SGD.
plt.show()
