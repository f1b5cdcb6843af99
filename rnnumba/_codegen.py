"""What rnnumba changes in numba's code generation for its kernels, to compile them sooner.

Three patches to private parts of numba 0.68, each applied only to rnnumba's
kernels, each leaving their code as it was, and each off where numba lacks
what it uses:

* a *driver* (``jit(driver=True)``: the chunk loops, the walks, the parallel
  kernels, the epoch) is optimised on its own, then calls its callees' machine
  code by symbol (:func:`_finalize_driver`). numba links every callee's
  module into each caller, optimises the whole again and emits its machine
  code again: a cell's step was optimised about ten times per fit, and its
  machine code emitted once per driver above it. A driver's cache entry
  carries its callees' objects, which a process loads before the driver's
  own (:func:`_serialize`, :func:`_unserialize`). ``RNNUMBA_DRIVERS=0``:
  numba's own linking;
* a helper inlined at numba's IR level (``inline="always"``) has its IR
  copied with one memo for all its blocks (:class:`_BlockCopies`).
  ``RNNUMBA_INLINE_COPIES=0``: numba's own copies.

:mod:`rnnumba._jit` installs them (:func:`install`) with its compile stack;
the kernels' cache folder is keyed on this file too (:mod:`rnnumba._sources`).
"""

import contextlib
import copy
import hashlib
import os

import llvmlite.binding as llvm
from numba.core import codegen, ir
from numba.core import compiler as _compiler
from numba.core import inline_closurecall as _inlining

_stack = list  # the qualified names compiling in this thread, outermost first (None: not rnnumba's)
_drivers = frozenset()  # qualified names of the drivers

# the libraries numba makes for a prange loop: the gufunc (a compiled function:
# numba writes its environment into its machine code) and its two wrappers
# (numba.np.ufunc.wrappers._GufuncWrapper, numba.np.ufunc.parallel.build_gufunc_wrapper)
_GUFUNC = "__numba_parfor_gufunc_"
_WRAPPERS = ("<numba.np.ufunc.wrappers._GufuncWrapper", "parallelgufuncwrapper")
_BUNDLE = "rnnumba-bundle"  # the kind of a cache entry that carries its callees' objects

_CPU = codegen.CPUCodeLibrary
_standard = {name: getattr(_CPU, name, None) for name in ("finalize", "serialize_using_object_code")}
_standard_unserialize = getattr(getattr(_CPU, "_unserialize", None), "__func__", None)

# numba's private methods the patches use (numba 0.68); a numba without them keeps its own
_NEEDS = (
    "_optimize_final_module",
    "_finalize_final_module",
    "_get_module_for_linking",
    "_finalize_dynamic_globals",
    "_verify_declare_only_symbols",
    "_raise_if_finalized",
    "_get_compiled_object",
    "_unserialize",
)
DRIVERS_LINKED_ONCE = os.environ.get("RNNUMBA_DRIVERS", "1") != "0" and all(hasattr(_CPU, n) for n in _NEEDS)


def install(stack, drivers):
    """Patch numba for rnnumba's kernels (``stack()``: the compile stack; ``drivers``: the drivers' names)."""
    global _stack, _drivers
    _stack, _drivers = stack, drivers
    if DRIVERS_LINKED_ONCE:
        _CPU.finalize = _finalize_driver
        _CPU.serialize_using_object_code = _serialize
        _CPU._unserialize = classmethod(_unserialize)
        _compiler.CompileResult._find_referenced_environments = _referenced_environments
    if INLINE_COPIES_SHARED:
        _inlining.InlineWorker.inline_ir = _inline_ir


def mark(library):
    """Mark ``library`` as a kernel's own (compiled or loaded): a driver calls its code by symbol."""
    library._rnnumba_kernel = True


# -- drivers: callees linked by symbol -------------------------------------------------------------


def _finalize_driver(library):
    """Finalize a code library; a driver's: its own code optimised, its kernels' code called by symbol.

    This replaces numba's ``CPUCodeLibrary.finalize``. A library that is not a
    driver's (nor one of the three its ``prange`` loops lower to) is finalized
    by numba, and notes the callees it references by symbol through what it
    linked (``_rnnumba_deps``). A driver's own code is optimised first; a
    callee that is one of rnnumba's kernels (:func:`mark`) stays a declaration,
    which the JIT resolves to the machine code that callee's library already
    has, and joins ``_rnnumba_deps``; other callees (numba's own helpers) are
    linked in. The two wrappers of a ``prange`` loop's gufunc are only ever
    linked into the parallel function itself, which runs them: no machine code
    of their own. Driver loops lose cross-function inlining, which their light
    loops do not need.
    """
    stack = _stack()
    if stack and stack[-1] is not None and not library.name.startswith((_GUFUNC, *_WRAPPERS)):
        mark(library)  # (the library of the kernel compiling)
    if not stack or stack[-1] not in _drivers:
        _standard["finalize"](library)
        library._rnnumba_deps = _deps(library._linking_libraries, by_symbol=False)
        return
    codegen.require_global_compiler_lock()
    library._codegen._check_llvm_bugs()
    library._raise_if_finalized()
    library._optimize_final_module()
    for callee in dict.fromkeys(library._linking_libraries):
        library._reload_init.update(callee._reload_init)
        if not _by_symbol(callee):
            library._final_module.link_in(callee._get_module_for_linking(), preserve=True)
    library._rnnumba_deps = _deps(library._linking_libraries, by_symbol=True)
    library._final_module.verify()
    if not library.name.startswith(_WRAPPERS):
        library._finalize_final_module()
        return
    library._finalize_dynamic_globals()
    library._verify_declare_only_symbols()
    library._finalized = True


def _by_symbol(library):
    """Return whether a driver calls ``library``'s machine code by symbol: a kernel's, with its object."""
    return getattr(library, "_rnnumba_kernel", False) and _object(library) is not None


def _object(library):
    """Return ``library``'s object code, or None (numba drops a loaded library's once in the JIT)."""
    return getattr(library, "_compiled_object", None) or getattr(library, "_rnnumba_object", None)


def _deps(callees, by_symbol):
    """Return the libraries whose symbols the code of ``callees`` (or calls to them) needs, deepest first."""
    deps = []
    for callee in dict.fromkeys(callees):
        deps += getattr(callee, "_rnnumba_deps", ())
        if by_symbol and _by_symbol(callee):
            deps.append(callee)
    return list(dict.fromkeys(deps))


# -- the cache: a library with the objects of the libraries it calls by symbol ------------------------

_loaded = {}  # SHA-1 of an object file -> the library that put it in this process's JIT


def _serialize(library):
    """Serialize as numba does (``serialize_using_object_code``), with the objects of callees by symbol."""
    name, kind, data = _standard["serialize_using_object_code"](library)
    if getattr(library, "_rnnumba_kernel", False):
        _loaded.setdefault(hashlib.sha1(data[0]).digest(), library)
    deps = getattr(library, "_rnnumba_deps", ())
    if not deps:
        return name, kind, data
    where = {dep: i for i, dep in enumerate(deps)}  # (each dep's own deps come before it)
    entries = [(d.name, (_object(d), _bitcode(d)), [where[e] for e in d._rnnumba_deps]) for d in deps]
    return name, _BUNDLE, (data, entries)


def _bitcode(library):
    return library._get_module_for_linking().as_bitcode()


@contextlib.contextmanager
def loading():
    """Mark the libraries unserialized inside the block as rnnumba's kernels' (for ``_jit``'s cache)."""
    global _loading
    _loading += 1
    try:
        yield
    finally:
        _loading -= 1


_loading = 0  # > 0 while rnnumba's cache loads a kernel (numba holds its compiler lock)


def _unserialize(cls, codegen_, state):
    """Unserialize as numba does (``_unserialize``); a bundle's callees first, each object loaded once."""
    name, kind, data = state
    if kind != _BUNDLE:
        if not _loading:  # (not one of rnnumba's kernels)
            return _standard_unserialize(cls, codegen_, state)
        return _load(cls, codegen_, state, ())
    own, entries = data
    libraries = []
    for dep, dep_data, its_deps in entries:
        its_deps = [libraries[i] for i in its_deps]
        libraries.append(_load(cls, codegen_, (dep, "object", dep_data), its_deps, symbols=False))
    return _load(cls, codegen_, (name, "object", own), libraries)


def _load(cls, codegen_, state, deps, symbols=True):
    """Unserialize one of rnnumba's kernels as numba does, unless this process's JIT has its object already.

    ``deps``: the libraries the object calls by symbol (loaded already).
    ``symbols=False``: the JIT is not told the library's symbols (numba asks
    for them by name only to call a kernel from Python); it is when the same
    object is loaded again for its own kernel.
    """
    key = hashlib.sha1(state[2][0]).digest() if state[1] == "object" else None
    library = _loaded.get(key)
    if library is None and (symbols or key is None):
        library = _standard_unserialize(cls, codegen_, state)
    elif library is None:
        name, _, (code, bitcode) = state  # numba's _unserialize of an object, but for the symbols
        library = codegen_.create_library(name)
        library.enable_object_caching()
        library._set_compiled_object(code)
        library._shared_module = llvm.parse_bitcode(bitcode)
        library._finalize_final_module()
        library._rnnumba_unnamed = True  # (the JIT does not know its symbols)
    elif symbols and getattr(library, "_rnnumba_unnamed", False):
        codegen_._engine._load_defined_symbols(library._shared_module)
        library._rnnumba_unnamed = False
    mark(library)
    if key is not None and key not in _loaded:
        library._rnnumba_object = state[2][0]  # (for the bundles of drivers that call it)
        _loaded[key] = library
    if not hasattr(library, "_rnnumba_deps"):
        library._rnnumba_deps = list(deps)
    return library


def _referenced_environments(result):
    """Find the environments to cache as numba does, and those of the libraries called by symbol."""
    from numba.core.environment import lookup_environment

    envs = _standard_environments(result)
    for library in getattr(result.library, "_rnnumba_deps", ()):
        module = library._final_module if library._shared_module is None else library._shared_module
        for gv in module.global_variables:
            if gv.name.startswith("_ZN08NumbaEnv") and not gv.is_declaration:
                env = lookup_environment(gv.name)
                if env is not None and env.can_cache() and env not in envs:
                    envs.append(env)
    return envs


_standard_environments = _compiler.CompileResult._find_referenced_environments


# -- IR inlining: the callee's blocks copied with one memo ----------------------------------------


class _BlockCopies:
    """The ``copy`` module as numba's ``InlineWorker.inline_ir`` sees it while compiling rnnumba's kernels.

    numba copies the IR of a helper it inlines block by block, each block with a
    memo of its own, so every block's variables bring a copy of the helper's
    whole scope with them: quadratic in the helper's size, ~2 s of the seed
    fit's 33 s of compile (``benchmarks/compile_profile.py``). Here the blocks of
    one IR are copied with one memo, so they share one copy of the scope, as
    the blocks they are copied from share theirs. A block met again (the same
    IR copied a second time) or a block of another scope starts a new memo.
    """

    def __init__(self):
        self.memo, self.scope = {}, None

    def deepcopy(self, x, memo=None):
        if memo is not None or not isinstance(x, ir.Block):
            return copy.deepcopy(x, memo)
        if x.scope is not self.scope or id(x) in self.memo:
            self.memo, self.scope = {}, x.scope
        return copy.deepcopy(x, self.memo)

    def __getattr__(self, name):
        return getattr(copy, name)


_numba_inline_ir = getattr(getattr(_inlining, "InlineWorker", None), "inline_ir", None)


def _inline_ir(worker, *args, **kwargs):
    """Run numba's ``InlineWorker.inline_ir``; in a kernel of rnnumba's, copy with :class:`_BlockCopies`."""
    stack = _stack()
    if not stack or stack[-1] is None:
        return _numba_inline_ir(worker, *args, **kwargs)
    _inlining.copy = _BlockCopies()  # (numba compiles under its global compiler lock)
    try:
        return _numba_inline_ir(worker, *args, **kwargs)
    finally:
        _inlining.copy = copy


# numba 0.68's inline_ir copies with the module's ``copy``
INLINE_COPIES_SHARED = (
    os.environ.get("RNNUMBA_INLINE_COPIES", "1") != "0"
    and _numba_inline_ir is not None
    and getattr(_inlining, "copy", None) is copy
)
