"""Time one engine step of one checkout, in this process: the median of many calls.

    python benchmarks/abstep.py TREE {train,predict} CELL SIZE DTYPE REPS

``TREE`` is a checkout (this one, or a ``git worktree`` of another commit);
its ``rnnumba`` is imported, not the installed one. Run it for two checkouts
in alternating processes to re-measure a step that ``ab.py`` flagged; sizes
as in ``conftest.py``. Prints the median seconds per call.
"""

import sys
import time
import warnings


def main(tree, what, cell, size, dtype, reps):
    # drop an editable install's finder: import the checkout given
    sys.meta_path = [f for f in sys.meta_path if "Editable" not in type(f).__name__]
    sys.path.insert(0, tree)
    import numpy as np

    import rnnumba

    if not rnnumba.__file__.startswith(tree):
        raise SystemExit(f"imported {rnnumba.__file__}, not the checkout {tree}")
    sizes = {"seed": (20, 3, 1, 26), "small-long": (32, 100, 1, 32), "medium": (64, 50, 8, 128)}
    sizes["large"] = (256, 100, 64, 512)
    N, T, I, H = sizes[size]
    net = rnnumba.RNN(I, H, cell=cell, dtype=dtype, random_state=0)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(N, T, I)).astype(dtype), rng.normal(size=N).astype(dtype)
    call = (lambda: net.loss_and_grad(X, y)) if what == "train" else (lambda: net.predict(X))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the compile notice
        call()
    times = []
    for _ in range(int(reps)):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    print(float(np.median(times)))


if __name__ == "__main__":
    main(*sys.argv[1:7])
