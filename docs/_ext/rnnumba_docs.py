"""The documentation's own Sphinx extension: the benchmark page's tables and plots.

At ``builder-inited`` it reads ``benchmarks/results.json`` (written by
``python benchmarks/run.py --json benchmarks/results.json``: the
pytest-benchmark results of every peer, merged, with the command that made
them), and writes into ``docs/_generated/``:

* ``benchmarks.md``: the machine, the command, the date and the tables of
  medians and ratios (included by ``docs/benchmarks.md``);
* ``bench-train.png``, ``bench-predict.png``: rnnumba's speed-up over PyTorch
  and NumPy per size and cell, one panel per dtype.

Nothing is copied by hand: a new ``results.json`` is a new page.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BENCH = os.path.join(ROOT, "benchmarks")
RESULTS = os.path.join(BENCH, "results.json")
OUT = os.path.join(os.path.dirname(HERE), "_generated")

PEERS = {"torch": "PyTorch", "numpy": "NumPy"}
EXAMPLES = [  # the gallery's order (sphinx-gallery's within_subsection_order)
    "plot_seed_experiment.py",
    "plot_sgd_vs_lbfgs.py",
    "plot_classification_varlen.py",
    "plot_cells.py",
    "plot_streaming.py",
    "plot_pytorch_roundtrip.py",
    "plot_dask_localcluster.py",
    "gpu_training.py",
]
COLOURS = {"torch": "#d95f02", "numpy": "#1b9e77"}


def _report():
    if BENCH not in sys.path:
        sys.path.insert(0, BENCH)
    import conftest
    import report

    return report, conftest.SIZES


def _fmt(seconds):
    report, _ = _report()
    return report.fmt(seconds).replace("us", "µs")


def _tables(rows, sizes):
    lines = []
    for what, title in (("train", "Training step"), ("predict", "Inference pass")):
        lines += [
            "",
            f"## {title}",
            "",
            "| cell | size (N, T, I, H) | dtype | rnnumba | PyTorch | NumPy | vs PyTorch | vs NumPy "
            "| share of peak (rnnumba, PyTorch) |",
            "|:--|:--|:--|--:|--:|--:|--:|--:|--:|",
        ]
        for (w, cell, size, dtype), r in rows.items():
            if w != what:
                continue
            ours, torch, npy = r.get("rnnumba"), r.get("torch"), r.get("numpy")
            vs_t = f"**{torch / ours:.1f}x**" if ours and torch else "-"
            vs_n = f"{npy / ours:.1f}x" if ours and npy else "-"
            shape = ", ".join(str(v) for v in sizes[size])
            report, _ = _report()
            lines.append(
                f"| {cell} | {size} ({shape}) | {dtype} | {_fmt(ours)} | {_fmt(torch)} | {_fmt(npy)} "
                f"| {vs_t} | {vs_n} | {report.shares(r)} |"
            )
    return lines


def _plot(rows, sizes, what, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cells = sorted({k[1] for k in rows if k[0] == what}, key=["elman", "lstm", "gru"].index)
    names = [s for s in sizes if any(k[2] == s and k[0] == what for k in rows)]
    dtypes = sorted({k[3] for k in rows if k[0] == what})
    series = [(peer, dtype) for peer in PEERS for dtype in dtypes]
    fig, axes = plt.subplots(1, len(cells), figsize=(3.3 * len(cells), 3.6), sharey=True, squeeze=False)
    x = np.arange(len(names))
    for ax, cell in zip(axes[0], cells, strict=True):
        bars = {}
        for peer, dtype in series:
            ratios = []
            for size in names:
                r = rows.get((what, cell, size, dtype), {})
                ratios.append(r[peer] / r["rnnumba"] if r.get(peer) and r.get("rnnumba") else np.nan)
            if not np.all(np.isnan(ratios)):  # the NumPy baseline is an Elman network
                bars[peer, dtype] = ratios
        width = 0.8 / len(bars)
        for j, ((peer, dtype), ratios) in enumerate(bars.items()):
            offset = x + (j - (len(bars) - 1) / 2) * width
            ax.bar(
                offset,
                ratios,
                width,
                color=COLOURS[peer],
                alpha=1.0 if dtype == "float32" else 0.55,
                label=f"vs {PEERS[peer]}, {dtype}",
            )
            for xi, ratio in zip(offset, ratios, strict=True):
                if np.isfinite(ratio):
                    ax.annotate(f"{ratio:.1f}", (xi, ratio), ha="center", va="bottom", fontsize=7.5)
        ax.axhline(1.0, color="0.3", lw=0.8, ls="--")
        ax.set_yscale("log")
        ax.set_xticks(x, [f"{n}\n{sizes[n][0]}x{sizes[n][1]}, H={sizes[n][3]}" for n in names], fontsize=8.5)
        ax.set_title(cell, fontsize=11)
        ax.grid(axis="y", which="major", alpha=0.3)
    axes[0][0].set_ylabel("rnnumba's speed-up (x, log scale)")
    handles, labels = [], []
    for ax in axes[0]:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(h)
                labels.append(label)
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_pages(app=None):
    """Write the generated benchmark page and its figures into ``docs/_generated``."""
    os.makedirs(OUT, exist_ok=True)
    report, sizes = _report()
    with open(RESULTS) as fh:
        data = json.load(fh)
    rows, compile_rows, kernels, machine = report.collect(data)
    threads = sorted({r["threads"] for r in rows.values()})
    lines = [
        f"**Machine:** {machine}; numba threads {', '.join(map(str, threads))}.",
        "",
        f"**Command:** `{data.get('command') or 'python benchmarks/run.py'}`",
        "",
    ]
    commit = data.get("commit_info", {})
    if commit.get("id"):
        dirty = " (with uncommitted changes)" if commit.get("dirty") else ""
        lines += [f"**Commit:** `{commit['id'][:10]}`{dirty}, branch `{commit.get('branch')}`.", ""]
    if kernels:
        lines += ["**Matrix products:** " + "; ".join(f"{p}: {k}" for p, k in kernels.items()) + ".", ""]
    for what in ("train", "predict"):
        _plot(rows, sizes, what, os.path.join(OUT, f"bench-{what}.png"))
    lines += [
        "```{figure} /_generated/bench-train.png",
        ":alt: rnnumba's training-step speed-up over PyTorch and NumPy per cell and size",
        "",
        "One training step (forward, BPTT, SGD update): PyTorch's or NumPy's median time over"
        " rnnumba's. Above the dashed line rnnumba is faster.",
        "```",
        "",
        "```{figure} /_generated/bench-predict.png",
        ":alt: rnnumba's inference speed-up over PyTorch and NumPy per cell and size",
        "",
        "One inference pass over the same batch.",
        "```",
    ]
    lines += _tables(rows, sizes)
    if compile_rows:
        lines += ["", "## Compile time", ""]
        for info in compile_rows:
            lines.append(
                f"- {info['cell']}: first `loss_and_grad` {info['cold_loss_and_grad_s']:.1f} s cold, "
                f"{info['warm_loss_and_grad_s']:.2f} s from the cache."
            )
    text = "\n".join(lines) + "\n"
    path = os.path.join(OUT, "benchmarks.md")
    old = open(path).read() if os.path.exists(path) else None
    if text != old:  # an unchanged page is not rebuilt
        with open(path, "w") as fh:
            fh.write(text)


def example_order(filename):
    """Sort key of the gallery's scripts: the order of ``EXAMPLES``, then by name."""
    name = os.path.basename(filename)
    return (EXAMPLES.index(name) if name in EXAMPLES else len(EXAMPLES), name)


def setup(app):
    app.connect("builder-inited", write_pages)
    app.add_config_value("rnnumba_benchmarks", RESULTS, "env")
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
