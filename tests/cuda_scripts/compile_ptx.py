"""Compile every rnnumba CUDA kernel variant to PTX for compute capability
9.0 with the real NVVM compiler (no GPU needed). Run in its own process,
without NUMBA_ENABLE_CUDASIM. Prints one JSON object: {"skip": reason} when
the compiler is not installed, else {"results": [[name, key, ok, info], ...]}.
"""

import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))  # the repository root
sys.path.insert(0, HERE)


def main():
    os.environ.pop("NUMBA_ENABLE_CUDASIM", None)
    try:
        from numba import cuda
    except Exception as exc:  # numba-cuda missing or broken
        return {"skip": f"numba.cuda unavailable: {exc}"}

    def probe(x):
        x[0] = 1.0

    from numba import types

    try:
        cuda.compile_ptx(probe, (types.float64[::1],), cc=(9, 0))
    except Exception as exc:
        return {
            "skip": f"the NVIDIA compiler is not usable ({type(exc).__name__}: {str(exc)[:300]}); "
            "pip install nvidia-cuda-runtime nvidia-cuda-nvrtc nvidia-nvvm"
        }
    from rnnumba.gpu import _registry, catalog

    only = sys.argv[1:]  # optional name filter
    results = []
    for name, key in catalog.specs():
        if only and name not in only:
            continue
        fn, sig = _registry.source(name, *key)
        try:
            ptx, _ = cuda.compile_ptx(fn, sig, cc=(9, 0))
            ok = ".target sm_90" in ptx and ".entry" in ptx
            f64 = key[0] == "float32" and bool(re.search(r"\.f64\b", ptx))
            local = bool(re.search(r"\.local\s", ptx))
            results.append(
                [
                    name,
                    list(key),
                    ok and not f64,
                    {"chars": len(ptx), "f64_in_f32": f64, "local_memory": local},
                ]
            )
        except Exception as exc:
            results.append([name, list(key), False, f"{type(exc).__name__}: {str(exc)[:500]}"])
    return {"results": results}


if __name__ == "__main__":
    print(json.dumps(main()))
