"""
Classifying variable-length sequences: handwritten digits
=========================================================

scikit-learn's handwritten digits (1,797 images of 8 x 8 pixels, bundled with it, no
download) read as sequences: each image is scanned column by column, eight features
per step, and the scan ends at the image's last ink, so a digit whose right margin is
blank is a shorter sequence. An :class:`rnnumba.RNNClassifier` takes the list of
sequences as it is, lengths and all, and predicts the digit.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.metrics import ConfusionMatrixDisplay
from sklearn.model_selection import train_test_split

import rnnumba

digits = load_digits()
sequences = []
for image in digits.images:  # (8, 8): rows, columns
    columns = image.T  # one step per column, its 8 pixels as features
    last = np.flatnonzero(columns.any(axis=1))[-1]  # the last column with ink
    sequences.append(columns[: last + 1] / 16.0)
lengths = np.array([len(s) for s in sequences])
values, counts = np.unique(lengths, return_counts=True)
print(
    "sequences per length:",
    dict(zip(values.tolist(), counts.tolist(), strict=True)),
)

X_train, X_test, y_train, y_test = train_test_split(
    sequences,
    digits.target,
    test_size=0.3,
    stratify=digits.target,
    random_state=0,
)

# %%
# A GRU classifier
# ----------------
# Integer labels make a classifier: a softmax head on the last valid step's state,
# trained on the cross-entropy.
clf = rnnumba.RNNClassifier(
    cell="gru", hidden=32, solver="adam", lr=0.01, epochs=40, random_state=0
)
clf.fit(X_train, y_train)
print(f"test accuracy {clf.score(X_test, y_test):.3f}")

# %%
# The confusion matrix
# --------------------
fig, ax = plt.subplots(figsize=(5.5, 5))
ConfusionMatrixDisplay.from_predictions(
    y_test, clf.predict(X_test), ax=ax, colorbar=False
)
ax.set_title("GRU on digits read column by column")
fig.tight_layout()

# %%
# Probabilities
# -------------
# ``predict_proba`` gives the softmax over ``classes_``; the least confident test
# digits are where the mistakes are.
proba = clf.predict_proba(X_test)
order = np.argsort(proba.max(axis=1))[:6]
fig, axes = plt.subplots(1, 6, figsize=(8, 1.9))
for ax, k in zip(axes, order, strict=True):
    ax.imshow(X_test[k].T, cmap="gray_r", vmin=0, vmax=1)
    ax.set_title(
        f"{clf.classes_[proba[k].argmax()]} ({proba[k].max():.2f})", fontsize=9
    )
    ax.set_axis_off()
fig.suptitle(
    "the least confident predictions (label, probability)", fontsize=10
)
fig.tight_layout()
plt.show()
