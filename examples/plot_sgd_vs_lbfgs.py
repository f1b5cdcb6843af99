"""
SGD against L-BFGS-B on the same data
=====================================

Every rnnumba network is one flat parameter vector, so any optimiser that moves a
vector trains it: the compiled minibatch SGD of the seed, or any gradient method of
:func:`scipy.optimize.minimize`, which sees the exact full-batch loss and gradient.
Here both train the seed's model on the same 5,000 sequences.
"""

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

import rnnumba
from rnnumba.datasets import load_toy

data = load_toy(n_samples=7_000, n_train=5_000)
runs = {
    "SGD, lr 0.02, batch 20": dict(solver="sgd", epochs=60),
    "Adam, lr 0.01, batch 20": dict(solver="adam", lr=0.01, epochs=60),
    "L-BFGS-B, full batch": dict(solver="L-BFGS-B", epochs=300),
}
models = {}
for name, options in runs.items():
    start = time.perf_counter()
    model = rnnumba.RNNRegressor(
        hidden=26, standardize=False, random_state=0, **options
    )
    model.fit(data.X_train, data.y_train)
    models[name] = model
    mse = np.mean((model.predict(data.X_test) - data.y_test) ** 2)
    print(
        f"{name:26s} {time.perf_counter() - start:5.2f} s, test MSE {mse:.4f}"
    )

# %%
# The curves
# ----------
# For SGD and Adam an "iteration" is an epoch (250 minibatch steps here); for L-BFGS-B
# one quasi-Newton iteration over the whole batch. The full-batch method is
# deterministic and keeps improving after the minibatch methods level off.
fig, ax = plt.subplots(figsize=(6.5, 4))
for name, model in models.items():
    ax.plot(
        np.arange(1, len(model.loss_curve_) + 1), model.loss_curve_, label=name
    )
ax.set(
    xlabel="epoch (SGD, Adam) or iteration (L-BFGS-B)",
    ylabel="training loss",
    xscale="log",
)
ax.set_yscale("log")
ax.grid(alpha=0.3, which="both")
ax.legend()
fig.tight_layout()

# %%
# The same thing by hand
# ----------------------
# The estimator's L-BFGS-B is :meth:`rnnumba.RNN.objective` handed to SciPy:
from scipy.optimize import minimize

net = rnnumba.RNN(input_size=1, hidden=26, random_state=0)
objective = net.objective(
    data.X_train, data.y_train
)  # theta -> (loss, gradient)
result = minimize(
    objective, net.theta, jac=True, method="L-BFGS-B", options={"maxiter": 300}
)
net.set_theta(result.x)
print(result.message, f"final loss {result.fun:.4f}")
plt.show()
