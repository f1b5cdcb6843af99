"""Which of the package's files are its compiled sources, and their hash: the kernel cache's key.

:mod:`rnnumba._jit` names the cache folder after :func:`stamp`.
"""

import functools
import hashlib
import os
import re

PACKAGE = os.path.dirname(os.path.abspath(__file__))


@functools.cache
def stamp():
    """Hash the package's compiled sources (:func:`compiled_sources`): SHA-256 of their paths and contents."""
    digest = hashlib.sha256()
    for path, text in sorted(compiled_sources(PACKAGE).items()):
        digest.update(path.encode())
        digest.update(hashlib.sha256(text).digest())
    return digest.hexdigest()


def compiled_sources(package):
    """Return ``{path: contents}`` of the compiled sources of the package in folder ``package``.

    Every source file that holds compiled code (uses ``@jit`` or
    ``@intrinsic``) and every package module they import, however
    indirectly: a kernel reads the constants of a module such as
    :mod:`rnnumba.layout` when it compiles, so a change there must start a new
    cache too. So do ``_jit.py`` (numba's options) and ``_codegen.py`` (the
    code generation it patches), not what they import (the cache's locks,
    this module). Paths are relative to the package: editing the estimators
    or the command line does not throw the kernels away, and neither does a
    reinstall of the same files.
    """
    sources = {}
    for folder, _, files in os.walk(package):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path, "rb") as source:
                    sources[os.path.relpath(path, package).replace(os.sep, "/")] = source.read()
    todo = [p for p, text in sources.items() if (b"@jit" in text or b"@intrinsic" in text) and p != "_jit.py"]
    compiled = {*todo, "_jit.py", "_codegen.py"}
    while todo:
        for imported in _imports(todo.pop(), sources):
            if imported not in compiled:
                compiled.add(imported)
                todo.append(imported)
    return {path: sources[path] for path in compiled}


# "from .layout import A, B", "from .. import engine", "from rnnumba.cells import (elman, ..."
_FROM = re.compile(rb"^[ \t]*from[ \t]+(\.+|rnnumba\b\.?)([\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[^\n#]*)", re.M)


def _imports(path, sources):
    """Return the package's source files that source file ``path`` takes names from.

    ``from X import a, b`` takes them from the submodules ``X.a`` and ``X.b``
    where those exist, else from ``X`` itself.
    """
    found = []
    for dots, module, names in _FROM.findall(sources[path]):
        parts = [] if dots.startswith(b"rnnumba") else path.split("/")[: -len(dots)]
        base = "/".join([*parts, *module.decode().split(".")] if module else parts)
        prefix = base + "/" if base else ""
        names = [n.split()[0] for n in names.decode().strip("()").replace("\n", " ").split(",") if n.strip()]
        submodules = [f"{prefix}{name}.py" for name in names if f"{prefix}{name}.py" in sources]
        if len(submodules) < len(names):
            submodules += [f for f in (f"{base}.py", f"{prefix}__init__.py") if f in sources]
        found += submodules
    return found
