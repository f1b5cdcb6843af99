"""Shared settings of the benchmark suite (run it with ``python -m pytest benchmarks``)."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for path in (ROOT, os.path.dirname(os.path.abspath(__file__))):
    if path not in sys.path:
        sys.path.insert(0, path)

# the engine's four sizes: (N, T, I, H)
SIZES = {
    "seed": (20, 3, 1, 26),
    "small-long": (32, 100, 1, 32),
    "medium": (64, 50, 8, 128),
    "large": (256, 100, 64, 512),
}
# speed-up over PyTorch the issues ask for, per size
TARGETS = {"seed": 20.0, "small-long": 10.0, "medium": 3.0, "large": 1.0}
