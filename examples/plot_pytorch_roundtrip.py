"""
A PyTorch round trip: weights in, weights out, same predictions
================================================================

:mod:`rnnumba.interop` maps batch-first ``nn.RNN``, ``nn.LSTM`` and ``nn.GRU``
modules plus an ``nn.Linear`` head to rnnumba networks computing the same function,
and back. Here a PyTorch GRU comes in, is trained by rnnumba, and goes back out into
the same PyTorch module, whose predictions then match rnnumba's.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

from rnnumba.interop import from_torch, to_torch_state_dict

torch.manual_seed(0)
gru = torch.nn.GRU(
    input_size=2, hidden_size=12, num_layers=2, batch_first=True
).double()
head = torch.nn.Linear(12, 1).double()

rng = np.random.default_rng(0)
X = rng.normal(size=(400, 20, 2))
y = np.tanh(
    X[:, :5, 0].sum(axis=1) - X[:, -5:, 1].sum(axis=1)
)  # depends on both ends


def torch_predict(X):
    with torch.no_grad():
        out, h_n = gru(torch.from_numpy(X))
        return head(h_n[-1]).numpy()[:, 0]


# %%
# PyTorch to rnnumba
# ------------------
# :func:`~rnnumba.interop.from_torch` builds the network; its predictions are
# PyTorch's to rounding.
net = from_torch(gru, head)
print(net)
before = net.predict(X)[:, 0]
print(
    "largest difference, before training:",
    np.abs(before - torch_predict(X)).max(),
)

# %%
# Train in rnnumba
# ----------------
# L-BFGS-B on the flat vector (:meth:`rnnumba.RNN.objective`).
from scipy.optimize import minimize

result = minimize(
    net.objective(X, y),
    net.theta,
    jac=True,
    method="L-BFGS-B",
    options={"maxiter": 150},
)
net.set_theta(result.x)
print(f"training MSE {result.fun:.4f} after {result.nit} iterations")

# %%
# rnnumba back to PyTorch
# -----------------------
# :func:`~rnnumba.interop.to_torch_state_dict` names every tensor as PyTorch does.
state = to_torch_state_dict(net)
gru.load_state_dict(
    {
        k: torch.from_numpy(v)
        for k, v in state.items()
        if not k.startswith("head.")
    }
)
head.load_state_dict(
    {
        k[len("head.") :]: torch.from_numpy(v)
        for k, v in state.items()
        if k.startswith("head.")
    }
)
after_rnnumba, after_torch = net.predict(X)[:, 0], torch_predict(X)
print(
    "largest difference, after the round trip:",
    np.abs(after_rnnumba - after_torch).max(),
)

fig, ax = plt.subplots(figsize=(4.5, 4.5))
ax.plot(y, after_torch, ".", ms=3, label="PyTorch, trained weights")
ax.plot(y, after_rnnumba, "x", ms=3, alpha=0.5, label="rnnumba")
ax.set(xlabel="target", ylabel="prediction", title="the same function in both")
ax.legend()
fig.tight_layout()
plt.show()
