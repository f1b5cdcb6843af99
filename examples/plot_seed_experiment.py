"""
The seed experiment: an Elman network learns an inverse mapping
=================================================================

rnnumba grew out of a 2015 Torch7 tutorial: an Elman network with 26 hidden units
reads three noisy evaluations ``f(z), f(z-1), f(z-2)`` of a wavy function and
predicts ``z``. One value ``f(z)`` does not identify ``z`` (a horizontal line crosses
the curve up to six times); a short sequence does, which is why a recurrent model
helps. This script reruns the tutorial's training (plain SGD, learning rate 0.02,
batches of 20, 20 epochs, 140,000 training sequences) and draws its two figures.
"""

# %%
# The data and the model
# ----------------------
# :func:`rnnumba.datasets.load_toy` makes the 200,000 sequences exactly as the
# tutorial did and standardises the inputs with one scalar mean and std of the
# training set. :func:`rnnumba.fit` with its defaults is the seed's SGD.
import time

import matplotlib.pyplot as plt
import numpy as np

import rnnumba
from rnnumba.datasets import eval_grid, f, load_toy

data = load_toy()  # 140,000 training and 60,000 test sequences of 3 steps
start = time.perf_counter()
model = rnnumba.fit(
    data.X_train, data.y_train, hidden=26, standardize=False, random_state=0
)
seconds = time.perf_counter() - start
mse = np.mean((model.predict(data.X_test) - data.y_test) ** 2)
epochs = len(model.loss_curve_)
print(f"{model.n_params_} parameters, {epochs} epochs in {seconds:.1f} s")
print(f"test MSE {mse:.4f} (the 2015 original: 0.0757)")

# %%
# The loss curve
# --------------
# ``loss_curve_`` holds the mean minibatch loss of each epoch, as the tutorial
# printed it.
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(np.arange(1, len(model.loss_curve_) + 1), model.loss_curve_, "o-")
ax.set(
    xlabel="epoch",
    ylabel="training MSE",
    yscale="log",
    title="SGD on the seed's data",
)
ax.grid(alpha=0.3)
fig.tight_layout()

# %%
# Predicted against true inverse
# ------------------------------
# The tutorial's figure: on 200 noise-free sequences ``z = 0 ... 10``, the predicted
# ``z`` against the input ``f(z)``, over the true inverse curve. Where the curve
# folds back, only the later steps of the sequence tell the branches apart.
X_grid, z_grid = eval_grid()
z_hat = model.predict(data.scaler.transform(X_grid))
fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(
    f(z_grid), z_grid, color="0.6", lw=3, label="true inverse: z against f(z)"
)
ax.plot(X_grid[:, 0], z_hat, ".", color="C3", label="predicted z")
ax.set(xlabel="f(z), the first step of the sequence", ylabel="z")
ax.legend(loc="lower right", fontsize=8, framealpha=0.95)
fig.tight_layout()
plt.show()
