"""
Streaming a long sequence with ``h0`` and ``return_state``
==========================================================

A sensor trace that never ends cannot be passed as one array. The bare network
takes an initial state (``h0=``) and returns its final one (``return_state=True``),
so a long sequence can be read piece by piece: each piece starts from the state the
previous one ended in, and the pieces together give exactly what one pass would.
"""

# %%
# A model of a noisy oscillation
# ------------------------------
# A many-to-many LSTM learns to predict the next value of a noisy sine from windows
# of 40 steps.
import matplotlib.pyplot as plt
import numpy as np

import rnnumba

rng = np.random.default_rng(0)
t = np.arange(6_000)
signal = np.sin(2 * np.pi * t / 50) * (1 + 0.3 * np.sin(2 * np.pi * t / 700))
noisy = signal + 0.1 * rng.normal(size=t.size)

windows = np.lib.stride_tricks.sliding_window_view(noisy[:4_001], 41)[
    ::10
]  # (N, 41)
X, Y = (
    windows[:, :-1],
    windows[:, 1:],
)  # inputs and next-step targets, one per step
model = rnnumba.RNNRegressor(
    cell="lstm", hidden=16, solver="adam", lr=0.01, epochs=15, random_state=0
)
model.fit(X, Y[:, :, None])  # (N, T, 1) targets: one output per step
net = (
    model.net_
)  # the fitted RNN; the estimator scaled its inputs with model.scaler_

# %%
# Reading the rest of the trace in pieces
# ---------------------------------------
# The last 2,000 steps, as one sequence in pieces of 250, carrying the state:
trace = model.scaler_.transform(
    noisy[4_000:].reshape(1, -1)
)  # (1, 2000): one sequence
state, pieces = None, []
for start in range(0, trace.shape[1], 250):
    out, state = net.predict(
        trace[:, start : start + 250],
        many_to_many=True,
        h0=state,
        return_state=True,
    )
    pieces.append(out)
streamed = np.concatenate(pieces, axis=1)[0, :, 0]
whole = net.predict(trace, many_to_many=True)[0, :, 0]
print(
    "pieces equal one pass:", np.allclose(streamed, whole, rtol=0, atol=1e-12)
)
print("largest difference:", np.abs(streamed - whole).max())

# %%
# Predictions against the signal
# ------------------------------
# (The model's outputs are in the units of its targets: the estimator's ``predict``
# would do the same from the raw trace.)
fig, ax = plt.subplots(figsize=(8, 3.5))
steps = t[4_000:]
ax.plot(
    steps[:-1], noisy[4_001:], color="0.75", lw=1, label="noisy next value"
)
ax.plot(steps[:-1], signal[4_001:], color="k", lw=1, label="noise-free signal")
ax.plot(steps, streamed, color="C3", lw=1, label="streamed predictions")
for start in range(0, 2_000, 250):
    ax.axvline(4_000 + start, color="C0", lw=0.5, alpha=0.5)
ax.set(
    xlim=(4_000, 4_600),
    xlabel="step (blue lines: the pieces' starts)",
    ylabel="value",
)
ax.legend(loc="lower left", ncol=3, fontsize=8)
fig.tight_layout()
plt.show()
