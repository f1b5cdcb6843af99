"""Turn pytest-benchmark JSON files into the Markdown tables of RESULTS.md.

python benchmarks/report.py bench-rnnumba.json bench-torch.json bench-numpy.json
python benchmarks/report.py benchmarks/results.json     # the merged file of run.py --json

The last column, each step's multiply-adds per second as a share of the
machine's peak, needs the roofline that ``run.py`` measures in the same run
(``roofline.py``; kept in the merged file).

The documentation's benchmark page (``docs/benchmarks.md``) reads the same
rows through :func:`collect`.
"""

import json
import os
import platform
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conftest import SIZES  # noqa: E402
from roofline import step_macs  # noqa: E402


def fmt(seconds):
    if seconds is None:
        return "-"
    return f"{seconds * 1e3:.2f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.1f} us"


def share_of_peak(key, seconds, roofline):
    """A step's multiply-adds per second as a share of the machine's peak, or None.

    ``key = (what, cell, size, dtype)`` and ``threads`` in ``roofline`` (the
    document of ``roofline.py``): the peak of that dtype on the step's thread
    count (:func:`roofline.step_macs` counts the step).
    """
    what, cell, size, dtype, threads = key
    peak = (roofline or {}).get("peak_gmacs", {}).get(f"{dtype}/{threads}")
    if not peak or not seconds:
        return None
    return step_macs(cell, *SIZES[size], what) / seconds / (peak * 1e9)


def shares(row):
    """Return the share-of-peak cell of a row, rnnumba's and PyTorch's (:func:`share_of_peak`)."""
    pct = [row["share"].get(peer) for peer in ("rnnumba", "torch")]
    return ", ".join("-" if p is None else f"{100 * p:.0f}%" for p in pct)


def merge(paths, command=None, roofline=None):
    """One pytest-benchmark document from the peers' files (machine and commit of the first).

    ``roofline``: the path of ``roofline.py --out``'s document, measured in the
    same run, kept under the key ``"roofline"``.
    """
    runs = [json.load(open(path)) for path in paths]
    merged = {key: value for key, value in runs[0].items() if key != "benchmarks"}
    # every round's time ("data") and the CPU's flags are megabytes: the statistics stay
    merged["machine_info"] = dict(merged.get("machine_info", {}))
    merged["machine_info"]["cpu"] = {
        k: v for k, v in merged["machine_info"].get("cpu", {}).items() if k != "flags"
    }
    merged["benchmarks"] = [
        dict(b, stats={k: v for k, v in b["stats"].items() if k != "data"})
        for run in runs
        for b in run["benchmarks"]
    ]
    merged["command"] = command
    if roofline:
        merged["roofline"] = json.load(open(roofline))
    return merged


def collect(*runs):
    """The rows of the report from loaded JSON documents.

    Returns ``(rows, compile_rows, kernels, machine)``: ``rows[(what, cell, size,
    dtype)]`` maps each peer to its median seconds (plus ``target``,
    ``threads`` and, where the run measured the roofline, ``share``: each
    peer's share of the peak, :func:`share_of_peak`); ``compile_rows`` the
    cold-start timings; ``kernels`` the matrix-product kernels per peer;
    ``machine`` one line naming the CPU, the Python and the date.
    """
    data = runs[0]
    rows = defaultdict(dict)
    compile_rows = []
    kernels = {}
    for b in (b for run in runs for b in run["benchmarks"]):
        info = b["extra_info"]
        if info.get("what") == "compile":
            compile_rows.append(info)
            continue
        key = (info["what"], info["cell"], info["size"], info["dtype"])
        rows[key][info["peer"]] = b["stats"]["median"]
        rows[key]["target"] = info["target"]
        rows[key]["threads"] = info["threads"]
        if "blas" in info:
            kernels[info["peer"]] = info["blas"]
    roofline = next((run["roofline"] for run in runs if run.get("roofline")), None)
    for key, r in rows.items():
        peers = [p for p in ("rnnumba", "torch", "numpy") if p in r]
        r["share"] = {p: share_of_peak((*key, r["threads"]), r[p], roofline) for p in peers}
    m = data.get("machine_info", {})
    machine = (
        f"{m.get('cpu', {}).get('brand_raw', platform.processor())}, "
        f"{m.get('cpu', {}).get('count', '?')} logical cores; Python {m.get('python_version')}; "
        f"{data.get('datetime', '')[:19]}"
    )
    return rows, compile_rows, kernels, machine


def main(*paths):
    show(*[json.load(open(path)) for path in paths])


def show(*runs):
    """Print the Markdown tables of loaded documents."""
    rows, compile_rows, kernels, machine = collect(*runs)
    print(f"Machine: {machine}")
    if kernels:
        print("Matrix products: " + "; ".join(f"{peer}: {k}" for peer, k in kernels.items()) + ".")
    for what in ("train", "predict"):
        head = "rnnumba | PyTorch | NumPy | vs PyTorch | target | vs NumPy | share of peak (rnnumba, PyTorch)"
        print(f"\n| {what} step | dtype | {head} |")
        print("|---|---|---|---|---|---|---|---|---|")
        for (w, cell, size, dtype), r in rows.items():
            if w != what:
                continue
            ours, torch, npy = r.get("rnnumba"), r.get("torch"), r.get("numpy")
            vs_t = f"{torch / ours:.1f}x" if ours and torch else "-"
            vs_n = f"{npy / ours:.1f}x" if ours and npy else "-"
            target = f">= {r['target']:g}x" if what == "train" else ""
            cells = [f"{cell} {size}", dtype, fmt(ours), fmt(torch), fmt(npy), vs_t, target, vs_n, shares(r)]
            print("| " + " | ".join(cells) + " |")
    for info in compile_rows:
        print(
            f"\nCompile ({info['cell']}): import {info['import_s']:.2f} s; first loss_and_grad "
            f"{info['cold_loss_and_grad_s']:.1f} s cold / {info['warm_loss_and_grad_s']:.2f} s from cache; "
            f"first predict {info['cold_predict_s']:.1f} s cold / {info['warm_predict_s']:.2f} s from cache."
        )


if __name__ == "__main__":
    main(*sys.argv[1:])
