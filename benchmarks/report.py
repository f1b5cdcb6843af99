"""Turn pytest-benchmark JSON files into the Markdown tables of RESULTS.md.

python benchmarks/report.py bench-rnnumba.json bench-torch.json bench-numpy.json
"""

import json
import platform
import sys
from collections import defaultdict


def fmt(seconds):
    if seconds is None:
        return "-"
    return f"{seconds * 1e3:.2f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.1f} us"


def main(*paths):
    runs = [json.load(open(path)) for path in paths]
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
    m = data.get("machine_info", {})
    print(
        f"Machine: {m.get('cpu', {}).get('brand_raw', platform.processor())}, "
        f"{m.get('cpu', {}).get('count', '?')} logical cores; Python {m.get('python_version')}; "
        f"{data.get('datetime', '')[:19]}"
    )
    if kernels:
        print("Matrix products: " + "; ".join(f"{peer}: {k}" for peer, k in kernels.items()) + ".")
    for what in ("train", "predict"):
        print(f"\n| {what} step | dtype | rnnumba | PyTorch | NumPy | vs PyTorch | target | vs NumPy |")
        print("|---|---|---|---|---|---|---|---|")
        for (w, cell, size, dtype), r in rows.items():
            if w != what:
                continue
            ours, torch, npy = r.get("rnnumba"), r.get("torch"), r.get("numpy")
            vs_t = f"{torch / ours:.1f}x" if ours and torch else "-"
            vs_n = f"{npy / ours:.1f}x" if ours and npy else "-"
            target = f">= {r['target']:g}x" if what == "train" else ""
            cells = [f"{cell} {size}", dtype, fmt(ours), fmt(torch), fmt(npy), vs_t, target, vs_n]
            print("| " + " | ".join(cells) + " |")
    for info in compile_rows:
        print(
            f"\nCompile ({info['cell']}): import {info['import_s']:.2f} s; first loss_and_grad "
            f"{info['cold_loss_and_grad_s']:.1f} s cold / {info['warm_loss_and_grad_s']:.2f} s from cache; "
            f"first predict {info['cold_predict_s']:.1f} s cold / {info['warm_predict_s']:.2f} s from cache."
        )


if __name__ == "__main__":
    main(*sys.argv[1:])
