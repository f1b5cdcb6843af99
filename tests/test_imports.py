"""The package's modules import each other without cycles, and stay small.

The graph is read from the sources with :mod:`ast` (nothing is imported):
an edge ``a -> b`` means that running module ``a``, at import or in one of its
functions, may import module ``b``. Counted: top-level imports and imports
deferred into functions or methods alike, relative (``from .x import y``,
``from .. import x``) and absolute (``import rnnumba.x``,
``from rnnumba.x import y``); ``from p import x`` is an edge to the module
``p.x`` when there is one, else to ``p`` (the name comes from ``p/__init__``).
A package's ``__init__`` importing its submodules is an edge like any other.
Imports under ``if TYPE_CHECKING:`` run never, and are not counted.

Not counted: the implicit import of the parent packages (``import a.b.c``
runs ``a/__init__`` and ``a/b/__init__`` first; Python always finishes those
before it starts the submodule, so they cannot form a cycle that breaks), and
a module's imports of itself.

``rnnumba/__init__.py`` loads some modules lazily through its module
``__getattr__`` and the ``_LAZY`` table (module names as strings, passed to
``importlib.import_module``). Those are deferred imports of the root package
like any other, so each entry is an edge ``rnnumba -> rnnumba.<module>``
(:data:`COUNT_LAZY_TABLE`); so is any ``importlib.import_module`` call with a
literal name. A submodule that imports names from the root package (e.g.
``from . import __version__``) then closes a cycle with a lazily loaded
module: it does not fail at import, since the root is always initialised
first, but it puts the facade below the modules it fronts.
"""

import ast
import os
import textwrap
from collections import defaultdict

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PACKAGE = "rnnumba"
MAX_LINES = 500
COUNT_LAZY_TABLE = True  # rnnumba/__init__'s _LAZY entries are edges (see the module docstring)


def modules(root=ROOT):
    """``{dotted name: (path, is_package)}`` for every ``.py`` file of the package."""
    found = {}
    base = os.path.join(root, PACKAGE)
    for folder, dirs, files in os.walk(base):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith("."))
        rel = os.path.relpath(folder, root).split(os.sep)
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            if name == "__init__.py":
                found[".".join(rel)] = (os.path.join(folder, name), True)
            else:
                found[".".join([*rel, name[:-3]])] = (os.path.join(folder, name), False)
    return found


def _type_checking_nodes(tree):
    """Every node inside an ``if TYPE_CHECKING:`` block."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                for child in node.body:
                    skip.update(id(n) for n in ast.walk(child))
    return skip


def _deferred_nodes(tree):
    """Every node inside a function (or lambda) body: run when called, not at import."""
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            for child in ast.iter_child_nodes(node):
                inside.update(id(n) for n in ast.walk(child))
    return inside


def _resolve(module, is_package, level, target):
    """The absolute name of ``from <level dots><target> import ...`` in ``module``."""
    if level == 0:
        return target
    parts = module.split(".") if is_package else module.split(".")[:-1]
    if level > 1:
        parts = parts[: len(parts) - (level - 1)]
    return ".".join([*parts, target] if target else parts)


def _lazy_table(tree, module):
    """Modules named in a module-level ``_LAZY = {name: (module, attr)}`` table."""
    names = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "_LAZY" for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            names += [f"{module}.{entry[0]}" for entry in value.values()]
    return names


def imports(module, path, is_package, known):
    """``[(target module, line, kind)]`` of one module; ``kind``: "top-level"
    (run at import, class bodies and ``try``/``if`` blocks included),
    "deferred" (inside a function) or "lazy table"."""
    with open(path, encoding="utf-8") as source:
        tree = ast.parse(source.read(), path)
    skip = _type_checking_nodes(tree)
    deferred = _deferred_nodes(tree)
    found = []

    def add(target, node):
        if not (target == PACKAGE or target.startswith(PACKAGE + ".")) or target == module:
            return
        found.append((target, node.lineno, "deferred" if id(node) in deferred else "top-level"))

    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node.level, node.module)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                add(sub if sub in known else base, node)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and not node.args[0].value.startswith(".")  # (a relative name needs its package argument)
        ):
            add(node.args[0].value, node)
    if COUNT_LAZY_TABLE and is_package:
        found += [(t, 0, "lazy table") for t in _lazy_table(tree, module)]
    return found


def graph(root=ROOT):
    """``{module: {target: (line, kind)}}`` over the package's modules."""
    known = modules(root)
    edges = defaultdict(dict)
    for module, (path, is_package) in known.items():
        edges[module]
        for target, line, kind in imports(module, path, is_package, known):
            edges[module].setdefault(target, (line, kind))
    return dict(edges)


def cycles(edges, limit=50):
    """Elementary cycles (each as a list of modules, first repeated at the end),
    every cycle once, starting at its smallest module; at most ``limit``."""
    found = []
    order = sorted(edges)
    for start in order:
        allowed = {m for m in order if m >= start}
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in sorted(edges.get(node, ()), reverse=True):
                if nxt == start:
                    found.append([*path, start])
                    if len(found) >= limit:
                        return sorted(found, key=lambda c: (len(c), c))
                elif nxt in allowed and nxt not in path:
                    stack.append((nxt, [*path, nxt]))
    return sorted(found, key=lambda c: (len(c), c))


def groups(edges):
    """The strongly connected groups of more than one module (each sorted)."""

    def reach(start):
        seen, todo = set(), [start]
        while todo:
            for nxt in edges.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    reached = {m: reach(m) for m in edges}
    found = {tuple(sorted({m} | {n for n in reached[m] if m in reached.get(n, ())})) for m in edges}
    return sorted(g for g in found if len(g) > 1)


def describe(cycle, edges):
    steps = []
    for a, b in zip(cycle, cycle[1:], strict=False):
        line, kind = edges[a][b]
        where = "the _LAZY table" if kind == "lazy table" else f"line {line}, {kind}"
        steps.append(f"{a} -> {b} ({where})")
    return "\n    ".join(steps)


# -- the tests -----------------------------------------------------------------------------


FAKE = {
    "__init__.py": """
        from ._a import x
        from .sub import y
        _LAZY = {"f": ("lazy", "f"), "g": ("_a", None)}
        """,
    "_a.py": """
        import os
        import rnnumba.sub.deep as deep
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            from . import typed_only
        def f():
            from .sub import deep, name_in_init
            import importlib
            importlib.import_module("rnnumba.lazy")
        """,
    "lazy.py": """
        try:
            from rnnumba import _a
        except ImportError:
            pass
        class C:
            from . import typed_only
        """,
    "typed_only.py": "",
    "sub/__init__.py": "from . import deep\nfrom .deep import z\nname_in_init = 1\n",
    "sub/deep.py": "from .. import _a\nfrom ..sub import name_in_init\n",
}


def test_the_graph_sees_relative_absolute_and_deferred_imports(tmp_path):
    for name, text in FAKE.items():
        path = tmp_path / PACKAGE / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    edges = {m: {t: kind for t, (_, kind) in e.items()} for m, e in graph(str(tmp_path)).items()}
    r = PACKAGE
    assert edges == {
        r: {f"{r}._a": "top-level", f"{r}.sub": "top-level", f"{r}.lazy": "lazy table"},
        f"{r}._a": {f"{r}.sub.deep": "top-level", f"{r}.sub": "deferred", f"{r}.lazy": "deferred"},
        f"{r}.lazy": {f"{r}._a": "top-level", f"{r}.typed_only": "top-level"},
        f"{r}.typed_only": {},
        f"{r}.sub": {f"{r}.sub.deep": "top-level"},
        f"{r}.sub.deep": {f"{r}._a": "top-level", f"{r}.sub": "top-level"},
    }
    assert [" ".join(c) for c in cycles(graph(str(tmp_path)))] == [
        f"{r}._a {r}.lazy {r}._a",
        f"{r}._a {r}.sub.deep {r}._a",
        f"{r}.sub {r}.sub.deep {r}.sub",  # a package and the submodule it re-exports
        f"{r}._a {r}.sub {r}.sub.deep {r}._a",
    ]
    real = graph()
    assert real[PACKAGE], "rnnumba/__init__.py imports nothing?"
    if COUNT_LAZY_TABLE:
        assert any(kind == "lazy table" for _, kind in real[PACKAGE].values())


def test_every_import_names_a_module_that_exists():
    """(e.g. a relative import left one level short after a module moved into a package)"""
    edges = graph()
    dangling = [
        f"{m} -> {t} (line {line}, {kind})"
        for m in sorted(edges)
        for t, (line, kind) in sorted(edges[m].items())
        if t not in edges
    ]
    assert not dangling, "imports of modules that do not exist:\n  " + "\n  ".join(dangling)


def test_cycle_finder():
    edges = {"a": {"b": (1, "top-level")}, "b": {"c": (1, "top-level")}, "c": {"a": (1, "deferred")}}
    edges["d"] = {"d": (1, "top-level")}
    assert cycles(edges) == [["d", "d"], ["a", "b", "c", "a"]]
    assert cycles({"a": {"b": None}, "b": {}}) == []
    assert groups(edges) == [("a", "b", "c")]


def test_no_import_cycles():
    edges = graph()
    found = cycles(edges)
    summary = "\n".join(f"  {', '.join(g)}" for g in groups(edges))
    message = "\n".join(f"  {' -> '.join(c)}:\n    {describe(c, edges)}" for c in found)
    assert not found, (
        f"modules that import each other, directly or through others:\n{summary}\n"
        f"{len(found)} import cycle(s) among them:\n{message}"
    )


@pytest.mark.parametrize("module", sorted(modules()))
def test_module_is_at_most_500_lines(module):
    path, _ = modules()[module]
    with open(path, encoding="utf-8") as source:
        lines = sum(1 for _ in source)
    assert lines <= MAX_LINES, f"{os.path.relpath(path, ROOT)} has {lines} lines (at most {MAX_LINES})"
