"""Print ``rnnumba._prefetch.PLAN`` as fits compile it: ``python tests/record_plan.py``.

Each family and dtype runs in a process and an empty cache of its own (about
30 s each). Paste the output over ``PLAN`` when a planned kernel's arguments
change; ``test_prefetch.py::test_the_plan_is_what_training_compiles`` fails
until then.
"""

import json
import os
import subprocess
import sys
import tempfile
import textwrap

from rnnumba._prefetch import FAMILIES, PLANNED
from rnnumba.layout import family_options

FIT = """
import json, numba.core.event as ev, numpy as np, rnnumba
seen = []
class Listener(ev.Listener):
    def on_start(self, e):
        f = e.data["dispatcher"].py_func
        seen.append((f.__module__ + "." + f.__qualname__, repr(tuple(e.data["args"]))))
    def on_end(self, e):
        pass
rng = np.random.default_rng(0)
X, y = rng.normal(size=(40, 3, 2)).astype({dtype!r}), rng.normal(size=40).astype({dtype!r})
with ev.install_listener("numba:compile", Listener()):
    rnnumba.fit(X, y, hidden=3, **{options!r}, dtype={dtype!r}, epochs=1)
print(json.dumps(seen))
"""


def record():
    """Return ``{dtype: [(kernel, argument types)]}`` as fits compile them."""
    plans = {}
    for dtype in ("float64", "float32"):
        for family in FAMILIES:
            code = FIT.format(dtype=dtype, options=family_options(family))
            with tempfile.TemporaryDirectory() as cache:
                env = dict(os.environ, RNNUMBA_CACHE_DIR=cache, RNNUMBA_PREFETCH="0", PYTHONWARNINGS="ignore")
                argv = [sys.executable, "-c", code]
                out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
            seen = dict(json.loads(out.stdout.splitlines()[-1]))
            steps = [(name, seen[name.format(family=family)]) for name in PLANNED]
            if plans.setdefault(dtype, steps) != steps:
                raise SystemExit(f"{family} {dtype}: other argument types than {FAMILIES[0]}'s: {steps}")
    return plans


def main():
    print("PLAN = {")
    for dtype, steps in record().items():
        print(f"    {dtype!r}: [")
        for name, text in steps:
            lines = textwrap.wrap(text, 90, break_long_words=False, drop_whitespace=False)
            assert "".join(lines) == text
            print(f"        (\n            {name!r},")
            print("\n".join(f"            {line!r}" for line in lines) + ",\n        ),")
        print("    ],")
    print("}")


if __name__ == "__main__":
    main()
