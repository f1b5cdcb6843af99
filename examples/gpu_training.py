"""
Training on the GPU
===================

``device="cuda"`` trains an estimator on an NVIDIA GPU through rnnumba's CUDA
kernels (numba-cuda): the data go to the device once per fit, and every SGD or Adam
step runs there. The fitted model comes back to the CPU, so it predicts, saves and
loads anywhere. This script is shown, not run, when the documentation is built
without a GPU; :doc:`/gpu` says what it needs.
"""

# %%
import numpy as np

import rnnumba
from rnnumba.datasets import make_toy
from rnnumba.gpu import available

ok, reason = available()  # (True, "") when numba-cuda and a GPU are there
print("CUDA:", "available" if ok else reason)

X, z = make_toy(200_000, random_state=0)
X_train, z_train, X_test, z_test = (
    X[:140_000],
    z[:140_000],
    X[140_000:],
    z[140_000:],
)

# %%
# The same estimator, on either device
# ------------------------------------
device = "cuda" if ok else "cpu"
model = rnnumba.RNNRegressor(
    cell="lstm",
    hidden=64,
    solver="adam",
    lr=1e-3,
    batch_size=256,
    epochs=10,
    dtype="float32",
    device=device,
    random_state=0,
)
model.fit(X_train, z_train)
mse = np.mean((model.predict(X_test) - z_test) ** 2)
print(f"trained on {device}: test MSE {mse:.4f}")

# %%
# A seeded GPU fit repeats bitwise on one GPU and matches the CPU fit to about 1e-10
# (not bitwise: other summation orders). ``predict`` always runs on the CPU, and the
# saved model loads on a machine without a GPU.
model.save("lstm-gpu.npz")
assert np.array_equal(
    rnnumba.load("lstm-gpu.npz").predict(X_test), model.predict(X_test)
)
